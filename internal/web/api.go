package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parley-im/parley/internal/auth"
	"github.com/parley-im/parley/jid"
)

// The admin REST API (/api/): accounts, sessions and statistics, behind the
// admin bearer token. This file owns its routing, authentication, input
// validation and JSON shapes; the operations come from an Admin the server
// implements over its store and router. docs/api.md documents every
// endpoint.

// Limits and defaults of the API.
const (
	// MaxAPIBody bounds a request body.
	MaxAPIBody = 64 << 10
	// DefaultUserLimit and MaxUserLimit bound one page of GET /api/users.
	DefaultUserLimit = 100
	MaxUserLimit     = 1000
	// DefaultSessionLimit and MaxSessionLimit bound GET /api/sessions.
	DefaultSessionLimit = 1000
	MaxSessionLimit     = 10000
	// DefaultAuthFailures is how many failed authentications an address
	// may make per AuthWindow before it gets 429 for the rest of it.
	DefaultAuthFailures = 20
	AuthWindow          = time.Minute
)

// Errors an Admin returns (wrapped is fine); the API maps them to statuses.
var (
	// ErrNotFound: no such user or session (404).
	ErrNotFound = errors.New("not found")
	// ErrExists: the user already exists (409).
	ErrExists = errors.New("already exists")
)

// InputError is an error caused by the request (400); its message is shown
// to the client.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// BadInput returns an *InputError with a formatted message.
func BadInput(format string, args ...any) error {
	return &InputError{Msg: fmt.Sprintf(format, args...)}
}

// Admin is what the API needs of the server. Usernames it receives are
// already validated and normalised (the localpart of a JID of the served
// domain); passwords are non-empty.
type Admin interface {
	// ListUsers returns up to limit usernames greater than after, in order.
	ListUsers(ctx context.Context, after string, limit int) ([]string, error)
	// GetUser returns the account or ErrNotFound.
	GetUser(ctx context.Context, username string) (User, error)
	// CreateUser creates the account; ErrExists if it is taken, an
	// *InputError if the password is not acceptable.
	CreateUser(ctx context.Context, username, password string) (User, error)
	// DeleteUser removes the account and ends its sessions; ErrNotFound
	// if there is none.
	DeleteUser(ctx context.Context, username string) error
	// SetPassword replaces the account's credentials; ErrNotFound if there
	// is no such account, an *InputError if the password is not acceptable.
	SetPassword(ctx context.Context, username, password string) error
	// Sessions lists the bound sessions, of one user when user is not
	// empty. The order does not matter.
	Sessions(ctx context.Context, user string) ([]Session, error)
	// Kick ends the session bound to target (a full JID) or every session
	// of the user (a bare JID) with a stream error and returns how many it
	// ended; 0 means none was bound.
	Kick(ctx context.Context, target jid.JID) (int, error)
	// Stats returns the server's figures.
	Stats(ctx context.Context) (Stats, error)
}

// User is an account as the API shows it.
type User struct {
	Username string    `json:"username"`
	JID      string    `json:"jid"`
	Exists   bool      `json:"exists"`
	Created  time.Time `json:"created,omitzero"`
}

// UserList is one page of GET /api/users. Next, when not empty, is the
// after= value of the next page.
type UserList struct {
	Users []string `json:"users"`
	Next  string   `json:"next,omitempty"`
}

// CreateUserRequest is the body of POST /api/users: either JID or Username.
type CreateUserRequest struct {
	JID      string `json:"jid,omitempty"`
	Username string `json:"username,omitempty"`
	Password string `json:"password"`
}

// PasswordRequest is the body of PUT /api/users/{user}/password.
type PasswordRequest struct {
	Password string `json:"password"`
}

// Session is a bound client session. Fields the server cannot tell are
// left empty.
type Session struct {
	JID        string    `json:"jid"`
	Transport  string    `json:"transport,omitempty"`
	RemoteIP   string    `json:"remote_ip,omitempty"`
	Secure     bool      `json:"secure"`
	Available  bool      `json:"available"`
	Priority   int       `json:"priority"`
	Detached   bool      `json:"detached"`
	BoundSince time.Time `json:"bound_since,omitzero"`
}

// SessionList is GET /api/sessions.
type SessionList struct {
	Sessions []Session `json:"sessions"`
	// Total is how many sessions matched; Truncated is true when Sessions
	// holds only the first limit of them.
	Total     int  `json:"total"`
	Truncated bool `json:"truncated"`
}

// Stats is GET /api/stats.
type Stats struct {
	Version       string    `json:"version"`
	Started       time.Time `json:"started"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	Sessions      int       `json:"sessions"`
	Connections   int       `json:"connections"`
	Accounts      int       `json:"accounts"`
	StanzasIn     int64     `json:"stanzas_in"`
	StanzasOut    int64     `json:"stanzas_out"`
	// StanzasInRate and StanzasOutRate are per second, averaged over the
	// last RateWindowSeconds.
	StanzasInRate     float64 `json:"stanzas_in_per_second"`
	StanzasOutRate    float64 `json:"stanzas_out_per_second"`
	RateWindowSeconds float64 `json:"rate_window_seconds"`
	QueueDepth        int64   `json:"queue_depth"`
	StoreBytes        int64   `json:"store_bytes"`
}

// APIConfig configures API.
type APIConfig struct {
	// Token is the admin bearer token. Empty disables the API: every
	// request gets 503.
	Token string
	// Domain is the served XMPP domain: JIDs of other domains are refused.
	Domain string
	Admin  Admin
	Logger *slog.Logger
	// AuthFailures is how many failed authentications one address may make
	// per AuthWindow; 0 means DefaultAuthFailures, negative no limit.
	AuthFailures int
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
}

type api struct {
	cfg      APIConfig
	log      *slog.Logger
	token    [sha256.Size]byte
	domain   string // normalised
	throttle *auth.Throttle
}

// API returns the /api/ handler.
func API(cfg APIConfig) http.Handler {
	a := &api{cfg: cfg, log: cfg.Logger, token: sha256.Sum256([]byte(cfg.Token)), domain: cfg.Domain}
	if a.log == nil {
		a.log = slog.Default()
	}
	if d, err := jid.Parse(cfg.Domain); err == nil {
		a.domain = d.Domain()
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	limit := cfg.AuthFailures
	if limit == 0 {
		limit = DefaultAuthFailures
	}
	if limit < 0 {
		limit = 0 // Throttle: never blocks
	}
	a.throttle = auth.NewThrottle(limit, AuthWindow, now)

	mux := http.NewServeMux()
	mux.Handle("/api/users", methods{http.MethodGet: a.listUsers, http.MethodPost: a.createUser})
	mux.Handle("/api/users/{user}", methods{http.MethodGet: a.getUser, http.MethodDelete: a.deleteUser})
	mux.Handle("/api/users/{user}/password", methods{http.MethodPut: a.setPassword})
	mux.Handle("/api/sessions", methods{http.MethodGet: a.listSessions})
	mux.Handle("/api/sessions/{jid...}", methods{http.MethodDelete: a.kick})
	mux.Handle("/api/stats", methods{http.MethodGet: a.stats})
	mux.Handle("/api/debug/pprof/", http.StripPrefix("/api", profiler()))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, http.StatusNotFound, "not_found", "no such API endpoint: "+r.URL.Path)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cfg.Token == "" {
			WriteError(w, http.StatusServiceUnavailable, "unavailable", "the admin API has no token configured")
			return
		}
		if !a.authorize(w, r) {
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// profiler serves Go's runtime profiles (CPU, heap, goroutines, execution
// trace) under /api/debug/pprof/, behind the admin token: measuring a
// production server under its real load is how its costs are found.
func profiler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// methods dispatches on the request method and answers 405 (with Allow)
// in the one JSON error shape; HEAD is served like GET.
type methods map[string]func(http.ResponseWriter, *http.Request)

func (m methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	if h := m[method]; h != nil {
		h(w, r)
		return
	}
	allow := make([]string, 0, len(m)+1)
	for _, k := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		if m[k] != nil {
			allow = append(allow, k)
			if k == http.MethodGet {
				allow = append(allow, http.MethodHead)
			}
		}
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed",
		fmt.Sprintf("method %s is not allowed here; allowed: %s", r.Method, strings.Join(allow, ", ")))
}

// authorize checks the bearer token in constant time. Failures count per
// remote address; an address past the limit gets 429 without its token
// being looked at, until its window ends.
func (a *api) authorize(w http.ResponseWriter, r *http.Request) bool {
	ip := remoteIP(r)
	if a.throttle.Blocked(ip) {
		w.Header().Set("Retry-After", strconv.Itoa(int(AuthWindow/time.Second)))
		WriteError(w, http.StatusTooManyRequests, "too_many_requests", "too many failed authentications from this address; try again later")
		return false
	}
	got, ok := bearer(r.Header.Get("Authorization"))
	if ok {
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], a.token[:]) == 1 {
			return true
		}
	}
	a.throttle.Add(ip)
	msg := "missing bearer token: send Authorization: Bearer <admin token>"
	challenge := `Bearer realm="parley"`
	if ok {
		msg = "invalid admin token"
		challenge = `Bearer realm="parley", error="invalid_token"`
		a.log.Info("admin api: invalid token", "remote", ip, "path", r.URL.Path)
	}
	w.Header().Set("WWW-Authenticate", challenge)
	WriteError(w, http.StatusUnauthorized, "unauthorized", msg)
	return false
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func remoteIP(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// ---------------------------------------------------------------------------
// Users

func (a *api) listUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := intParam(q, "limit", DefaultUserLimit, MaxUserLimit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	after := q.Get("after")
	// One more than asked tells whether there is a next page.
	names, err := a.cfg.Admin.ListUsers(r.Context(), after, limit+1)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := UserList{Users: names}
	if len(names) > limit {
		out.Users = names[:limit]
		out.Next = names[limit-1]
	}
	if out.Users == nil {
		out.Users = []string{}
	}
	WriteJSON(w, http.StatusOK, out)
}

func (a *api) getUser(w http.ResponseWriter, r *http.Request) {
	user, err := a.username(r.PathValue("user"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	u, err := a.cfg.Admin.GetUser(r.Context(), user)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, u)
}

func (a *api) createUser(w http.ResponseWriter, r *http.Request) {
	var req CreateUserRequest
	if !a.decode(w, r, &req) {
		return
	}
	var user string
	var err error
	switch {
	case req.JID != "" && req.Username != "":
		err = BadInput("give either jid or username, not both")
	case req.JID != "":
		user, err = a.username(req.JID)
	case req.Username != "":
		if strings.ContainsAny(req.Username, "@/") {
			err = BadInput("invalid username %q: a bare localpart, without @ or /; use jid for a JID", req.Username)
		} else {
			user, err = a.username(req.Username)
		}
	default:
		err = BadInput("jid or username is required")
	}
	if err == nil && req.Password == "" {
		err = BadInput("password is required")
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	u, err := a.cfg.Admin.CreateUser(r.Context(), user, req.Password)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.Info("admin api: user created", "user", user, "remote", remoteIP(r))
	w.Header().Set("Location", "/api/users/"+url.PathEscape(user))
	WriteJSON(w, http.StatusCreated, u)
}

func (a *api) deleteUser(w http.ResponseWriter, r *http.Request) {
	user, err := a.username(r.PathValue("user"))
	if err == nil {
		err = a.cfg.Admin.DeleteUser(r.Context(), user)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.Info("admin api: user deleted", "user", user, "remote", remoteIP(r))
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) setPassword(w http.ResponseWriter, r *http.Request) {
	user, err := a.username(r.PathValue("user"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var req PasswordRequest
	if !a.decode(w, r, &req) {
		return
	}
	if req.Password == "" {
		a.fail(w, r, BadInput("password is required"))
		return
	}
	if err := a.cfg.Admin.SetPassword(r.Context(), user, req.Password); err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.Info("admin api: password changed", "user", user, "remote", remoteIP(r))
	w.WriteHeader(http.StatusNoContent)
}

// username validates and normalises a user given as a localpart ("alice")
// or a bare JID of the served domain ("alice@example.org"), the rules of
// `parley user`, and returns the normalised localpart (PRECIS
// UsernameCaseMapped), which is what the store keys accounts by.
func (a *api) username(s string) (string, error) {
	j, err := a.parseJID(s)
	if err != nil {
		return "", err
	}
	if j.Local() == "" || j.Resource() != "" {
		return "", BadInput("invalid user %q: want a username or a bare JID user@%s", s, a.domain)
	}
	return j.Local(), nil
}

// parseJID parses a JID of the served domain; a string without @ is a
// localpart of it.
func (a *api) parseJID(s string) (jid.JID, error) {
	if s == "" {
		return jid.JID{}, BadInput("a user or JID is required")
	}
	full := s
	if !strings.Contains(s, "@") {
		full = s + "@" + a.domain
	}
	j, err := jid.Parse(full)
	if err != nil {
		return jid.JID{}, BadInput("invalid JID %q: %v", s, err)
	}
	if j.Domain() != a.domain {
		return jid.JID{}, BadInput("JID %q is not of the served domain %s", s, a.domain)
	}
	return j, nil
}

// ---------------------------------------------------------------------------
// Sessions

func (a *api) listSessions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := intParam(q, "limit", DefaultSessionLimit, MaxSessionLimit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var user string
	if u := q.Get("user"); u != "" {
		if user, err = a.username(u); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	list, err := a.cfg.Admin.Sessions(r.Context(), user)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	sortSessions(list)
	out := SessionList{Sessions: list, Total: len(list)}
	if len(list) > limit {
		out.Sessions, out.Truncated = list[:limit], true
	}
	if out.Sessions == nil {
		out.Sessions = []Session{}
	}
	WriteJSON(w, http.StatusOK, out)
}

func sortSessions(list []Session) {
	slices.SortFunc(list, func(x, y Session) int { return strings.Compare(x.JID, y.JID) })
}

func (a *api) kick(w http.ResponseWriter, r *http.Request) {
	target, err := a.parseJID(r.PathValue("jid"))
	if err == nil && target.Local() == "" {
		err = BadInput("invalid JID %q: want user@domain or user@domain/resource", r.PathValue("jid"))
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	n, err := a.cfg.Admin.Kick(r.Context(), target)
	if err == nil && n == 0 {
		err = fmt.Errorf("no session bound to %s: %w", target, ErrNotFound)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.Info("admin api: sessions kicked", "jid", target.String(), "count", n, "remote", remoteIP(r))
	w.WriteHeader(http.StatusNoContent)
}

// ---------------------------------------------------------------------------
// Stats

func (a *api) stats(w http.ResponseWriter, r *http.Request) {
	st, err := a.cfg.Admin.Stats(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, st)
}

// ---------------------------------------------------------------------------
// Helpers

// decode reads a JSON object strictly: bounded size, no unknown fields,
// nothing after it. On failure it has answered already.
func (a *api) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body := http.MaxBytesReader(w, r.Body, MaxAPIBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.Decode(&struct{}{}) != io.EOF {
			err = errors.New("trailing data after the JSON object")
		}
	}
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		WriteError(w, http.StatusRequestEntityTooLarge, "payload_too_large", fmt.Sprintf("request body larger than %d bytes", MaxAPIBody))
		return false
	case errors.Is(err, io.EOF):
		err = errors.New("empty body: want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		err = errors.New("truncated JSON")
	case errors.As(err, &syntax):
		err = fmt.Errorf("invalid JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.As(err, &typ):
		if typ.Field != "" {
			err = fmt.Errorf("field %q: want a JSON %s, got %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
		} else {
			err = fmt.Errorf("want a JSON object, got %s", typ.Value)
		}
	default:
		// Unknown fields: `json: unknown field "x"`.
		err = errors.New(strings.TrimPrefix(err.Error(), "json: "))
	}
	a.fail(w, r, &InputError{Msg: "bad request body: " + err.Error()})
	return false
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	case "bool":
		return "boolean"
	}
	return "number"
}

// intParam reads a positive integer query parameter, clamped to max.
func intParam(q url.Values, name string, def, max int) (int, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, BadInput("%s must be a positive integer, got %q", name, s)
	}
	return min(n, max), nil
}

// fail answers with the status an error means.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	var in *InputError
	switch {
	case errors.As(err, &in):
		WriteError(w, http.StatusBadRequest, "bad_request", in.Msg)
	case errors.Is(err, ErrNotFound):
		WriteError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, ErrExists):
		WriteError(w, http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		WriteError(w, http.StatusServiceUnavailable, "unavailable", "the request was cancelled")
	default:
		a.log.Error("admin api", "method", r.Method, "path", r.URL.Path, "err", err)
		WriteError(w, http.StatusInternalServerError, "internal_error", "internal error; see the server log")
	}
}
