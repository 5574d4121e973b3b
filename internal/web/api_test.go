package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/jid"
)

// fakeAdmin is an in-memory Admin recording what the API asked of it.
type fakeAdmin struct {
	mu       sync.Mutex
	users    map[string]string // username -> password
	sessions []Session
	kicked   []string
	err      error // returned by every call when set
}

func newFakeAdmin(users ...string) *fakeAdmin {
	f := &fakeAdmin{users: map[string]string{}}
	for _, u := range users {
		f.users[u] = "pw"
	}
	return f
}

func (f *fakeAdmin) ListUsers(_ context.Context, after string, limit int) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var names []string
	for u := range f.users {
		if u > after {
			names = append(names, u)
		}
	}
	slices.Sort(names)
	if len(names) > limit {
		names = names[:limit]
	}
	return names, nil
}

func (f *fakeAdmin) GetUser(_ context.Context, u string) (User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return User{}, f.err
	}
	if _, ok := f.users[u]; !ok {
		return User{}, errors.Join(errors.New("user "+u), ErrNotFound)
	}
	return User{Username: u, JID: u + "@example.org", Exists: true}, nil
}

func (f *fakeAdmin) CreateUser(_ context.Context, u, pw string) (User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return User{}, f.err
	}
	if _, ok := f.users[u]; ok {
		return User{}, ErrExists
	}
	f.users[u] = pw
	return User{Username: u, JID: u + "@example.org", Exists: true}, nil
}

func (f *fakeAdmin) DeleteUser(_ context.Context, u string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[u]; !ok {
		return ErrNotFound
	}
	delete(f.users, u)
	return nil
}

func (f *fakeAdmin) SetPassword(_ context.Context, u, pw string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[u]; !ok {
		return ErrNotFound
	}
	if pw == "bad\u0000" {
		return BadInput("password not acceptable")
	}
	f.users[u] = pw
	return nil
}

func (f *fakeAdmin) Sessions(_ context.Context, user string) ([]Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Session
	for _, s := range f.sessions {
		if user == "" || strings.HasPrefix(s.JID, user+"@") {
			out = append(out, s)
		}
	}
	return out, nil
}

func (f *fakeAdmin) Kick(_ context.Context, target jid.JID) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, s := range f.sessions {
		j := jid.MustParse(s.JID)
		if j.Equal(target) || target.IsBare() && j.Bare().Equal(target) {
			n++
			f.kicked = append(f.kicked, s.JID)
		}
	}
	return n, nil
}

func (f *fakeAdmin) Stats(context.Context) (Stats, error) {
	return Stats{Version: "test", Sessions: len(f.sessions)}, nil
}

const testToken = "s3cret-token"

type apiHarness struct {
	t     *testing.T
	h     http.Handler
	admin *fakeAdmin
	now   time.Time
}

func newAPIHarness(t *testing.T, admin *fakeAdmin, failures int) *apiHarness {
	h := &apiHarness{t: t, admin: admin, now: time.Unix(1_700_000_000, 0)}
	h.h = New(Config{API: API(APIConfig{
		Token: testToken, Domain: "Example.ORG", Admin: admin, AuthFailures: failures,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:    func() time.Time { return h.now },
	})})
	return h
}

// do serves one request; token "" sends none.
func (h *apiHarness) do(method, target, body, token string) *httptest.ResponseRecorder {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	req.RemoteAddr = "192.0.2.7:40000"
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.h.ServeHTTP(w, req)
	return w
}

// expect serves a request with the right token and checks the status and,
// for errors, the JSON error shape and code.
func (h *apiHarness) expect(status int, code, method, target, body string) *httptest.ResponseRecorder {
	h.t.Helper()
	w := h.do(method, target, body, testToken)
	checkResponse(h.t, w, status, code)
	return w
}

func checkResponse(t *testing.T, w *httptest.ResponseRecorder, status int, code string) ErrorDetail {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d (%s), want %d", w.Code, w.Body.String(), status)
	}
	if status < 400 {
		return ErrorDetail{}
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	var eb ErrorBody
	dec := json.NewDecoder(w.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&eb); err != nil {
		t.Fatalf("error body: %v", err)
	}
	if eb.Error.Code != code || eb.Error.Message == "" {
		t.Errorf("error %+v, want code %q and a message", eb.Error, code)
	}
	return eb.Error
}

func TestAPIAuthAndThrottle(t *testing.T) {
	h := newAPIHarness(t, newFakeAdmin(), 3)
	for i, tok := range []string{"", "wrong", "s3cret-toke"} {
		w := h.do("GET", "/api/stats", "", tok)
		checkResponse(t, w, http.StatusUnauthorized, "unauthorized")
		if got := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
			t.Errorf("attempt %d: WWW-Authenticate %q", i, got)
		}
	}
	// Three failures: this address is now refused even with the token.
	w := h.do("GET", "/api/stats", "", testToken)
	checkResponse(t, w, http.StatusTooManyRequests, "too_many_requests")
	if w.Header().Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	// Other addresses are not affected.
	req := httptest.NewRequest("GET", "/api/stats", nil)
	req.RemoteAddr = "198.51.100.1:1234"
	req.Header.Set("Authorization", "Bearer "+testToken)
	other := httptest.NewRecorder()
	h.h.ServeHTTP(other, req)
	checkResponse(t, other, http.StatusOK, "")
	// The window ends.
	h.now = h.now.Add(AuthWindow)
	h.expect(http.StatusOK, "", "GET", "/api/stats", "")
}

func TestAPINoToken(t *testing.T) {
	h := New(Config{API: API(APIConfig{Domain: "example.org", Admin: newFakeAdmin()})})
	for _, tok := range []string{"", "Bearer ", "Bearer x"} {
		req := httptest.NewRequest("GET", "/api/stats", nil)
		if tok != "" {
			req.Header.Set("Authorization", tok)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		checkResponse(t, w, http.StatusServiceUnavailable, "unavailable")
	}
}

func TestBearer(t *testing.T) {
	for h, want := range map[string]string{
		"Bearer abc":    "abc",
		"bearer abc":    "abc",
		"BEARER  abc ":  "abc",
		"Bearer":        "",
		"Bearer ":       "",
		"Basic abc":     "",
		"abc":           "",
		"Bearerabc def": "",
	} {
		got, ok := bearer(h)
		if got != want || ok != (want != "") {
			t.Errorf("bearer(%q) = %q, %v; want %q", h, got, ok, want)
		}
	}
}

func TestAPIRouting(t *testing.T) {
	h := newAPIHarness(t, newFakeAdmin("alice"), -1)
	for _, p := range []string{"/api/", "/api/x", "/api/users/alice/x", "/api/users/alice/password/x", "/api/stats/"} {
		h.expect(http.StatusNotFound, "not_found", "GET", p, "")
	}
	for _, c := range []struct{ method, path, allow string }{
		{"POST", "/api/stats", "GET, HEAD"},
		{"DELETE", "/api/users", "GET, HEAD, POST"},
		{"PUT", "/api/users/alice", "GET, HEAD, DELETE"},
		{"POST", "/api/users/alice/password", "PUT"},
		{"GET", "/api/sessions/alice@example.org", "DELETE"},
		{"PATCH", "/api/sessions", "GET, HEAD"},
	} {
		w := h.expect(http.StatusMethodNotAllowed, "method_not_allowed", c.method, c.path, "")
		if got := w.Header().Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}
	h.expect(http.StatusOK, "", "HEAD", "/api/stats", "")
	w := h.expect(http.StatusOK, "", "GET", "/api/stats", "")
	if w.Header().Get("X-Content-Type-Options") != "nosniff" || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", w.Header())
	}
}

func TestAPIUserValidation(t *testing.T) {
	admin := newFakeAdmin("alice")
	h := newAPIHarness(t, admin, -1)
	for _, p := range []string{"alice", "ALICE", "alice@example.org", "alice@EXAMPLE.org", "Alice%40example.org"} {
		var u User
		w := h.expect(http.StatusOK, "", "GET", "/api/users/"+p, "")
		if err := json.NewDecoder(w.Body).Decode(&u); err != nil || u.Username != "alice" {
			t.Errorf("GET %s: %+v %v", p, u, err)
		}
	}
	for _, p := range []string{"alice@other.org", "al%20ice", "@example.org", "alice@example.org%2Fres"} {
		h.expect(http.StatusBadRequest, "bad_request", "GET", "/api/users/"+p, "")
	}
	h.expect(http.StatusNotFound, "not_found", "GET", "/api/users/bob", "")

	for body, want := range map[string]string{
		`{"jid":"bob@other.org","password":"x"}`:                    "served domain",
		`{"username":"bob/x","password":"x"}`:                       "invalid username",
		`{"username":"bob","password":"x","extra":1}`:               `unknown field "extra"`,
		`{"username":["bob"],"password":"x"}`:                       `field "username": want a JSON string, got array`,
		`{"username":"bob","password":"x"}x`:                        "trailing",
		`{"username":"bob"`:                                         "truncated",
		`{"username":"bob","password":""}`:                          "password is required",
		`{"jid":"bob@example.org","username":"bob","password":"x"}`: "not both",
		`null`: "jid or username is required",
	} {
		d := checkResponse(t, h.do("POST", "/api/users", body, testToken), http.StatusBadRequest, "bad_request")
		if !strings.Contains(d.Message, want) {
			t.Errorf("POST %s: message %q, want it to mention %q", body, d.Message, want)
		}
	}
	checkResponse(t, h.do("POST", "/api/users", `{"password":"`+strings.Repeat("x", MaxAPIBody)+`"}`, testToken),
		http.StatusRequestEntityTooLarge, "payload_too_large")

	w := h.expect(http.StatusCreated, "", "POST", "/api/users", `{"jid":"Bob@Example.org","password":"pw"}`)
	if w.Header().Get("Location") != "/api/users/bob" || admin.users["bob"] != "pw" {
		t.Errorf("create: Location %q, users %v", w.Header().Get("Location"), admin.users)
	}
	h.expect(http.StatusConflict, "conflict", "POST", "/api/users", `{"username":"BOB","password":"pw"}`)

	h.expect(http.StatusNoContent, "", "PUT", "/api/users/bob/password", `{"password":"new"}`)
	h.expect(http.StatusBadRequest, "bad_request", "PUT", "/api/users/bob/password", "{\"password\":\"bad\\u0000\"}")
	h.expect(http.StatusNotFound, "not_found", "PUT", "/api/users/carol/password", `{"password":"new"}`)
	h.expect(http.StatusBadRequest, "bad_request", "PUT", "/api/users/bob/password", ``)
	if admin.users["bob"] != "new" {
		t.Errorf("password not changed: %v", admin.users)
	}
	h.expect(http.StatusNoContent, "", "DELETE", "/api/users/bob@example.org", "")
	h.expect(http.StatusNotFound, "not_found", "DELETE", "/api/users/bob", "")
}

func TestAPIUserPaging(t *testing.T) {
	admin := newFakeAdmin()
	for _, u := range []string{"a", "b", "c", "d", "e"} {
		admin.users[u] = "pw"
	}
	h := newAPIHarness(t, admin, -1)
	page := func(q string) UserList {
		t.Helper()
		var l UserList
		w := h.expect(http.StatusOK, "", "GET", "/api/users"+q, "")
		if err := json.NewDecoder(w.Body).Decode(&l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l := page("?limit=2"); !slices.Equal(l.Users, []string{"a", "b"}) || l.Next != "b" {
		t.Errorf("first page %+v", l)
	}
	if l := page("?limit=2&after=b"); !slices.Equal(l.Users, []string{"c", "d"}) || l.Next != "d" {
		t.Errorf("second page %+v", l)
	}
	if l := page("?limit=2&after=d"); !slices.Equal(l.Users, []string{"e"}) || l.Next != "" {
		t.Errorf("last page %+v", l)
	}
	if l := page("?limit=5"); len(l.Users) != 5 || l.Next != "" {
		t.Errorf("exact page %+v", l)
	}
	w := h.expect(http.StatusOK, "", "GET", "/api/users?after=z", "")
	if !strings.Contains(w.Body.String(), `"users": []`) {
		t.Errorf("empty page is not an empty array: %s", w.Body)
	}
	for _, q := range []string{"?limit=0", "?limit=x", "?limit=-3"} {
		h.expect(http.StatusBadRequest, "bad_request", "GET", "/api/users"+q, "")
	}
	admin.err = errors.New("disk on fire")
	d := checkResponse(t, h.do("GET", "/api/users", "", testToken), http.StatusInternalServerError, "internal_error")
	if strings.Contains(d.Message, "fire") {
		t.Errorf("internal error leaked: %q", d.Message)
	}
}

func TestAPISessions(t *testing.T) {
	admin := newFakeAdmin("alice", "bob")
	admin.sessions = []Session{
		{JID: "bob@example.org/x", Available: true},
		{JID: "alice@example.org/b", Transport: "tls"},
		{JID: "alice@example.org/a"},
	}
	h := newAPIHarness(t, admin, -1)
	list := func(q string) SessionList {
		t.Helper()
		var l SessionList
		w := h.expect(http.StatusOK, "", "GET", "/api/sessions"+q, "")
		if err := json.NewDecoder(w.Body).Decode(&l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := list("")
	var jids []string
	for _, s := range l.Sessions {
		jids = append(jids, s.JID)
	}
	if !slices.Equal(jids, []string{"alice@example.org/a", "alice@example.org/b", "bob@example.org/x"}) || l.Total != 3 || l.Truncated {
		t.Errorf("sessions %+v", l)
	}
	if l := list("?user=ALICE"); l.Total != 2 {
		t.Errorf("alice's sessions %+v", l)
	}
	if l := list("?limit=1"); len(l.Sessions) != 1 || l.Total != 3 || !l.Truncated {
		t.Errorf("limited %+v", l)
	}
	h.expect(http.StatusBadRequest, "bad_request", "GET", "/api/sessions?user=a@other.org", "")

	h.expect(http.StatusNoContent, "", "DELETE", "/api/sessions/alice@example.org/b", "")
	h.expect(http.StatusNoContent, "", "DELETE", "/api/sessions/bob", "")
	h.expect(http.StatusNotFound, "not_found", "DELETE", "/api/sessions/carol@example.org", "")
	h.expect(http.StatusNotFound, "not_found", "DELETE", "/api/sessions/alice@example.org/zzz", "")
	h.expect(http.StatusBadRequest, "bad_request", "DELETE", "/api/sessions/@example.org", "")
	h.expect(http.StatusBadRequest, "bad_request", "DELETE", "/api/sessions/", "")
	if !slices.Equal(admin.kicked, []string{"alice@example.org/b", "bob@example.org/x"}) {
		t.Errorf("kicked %v", admin.kicked)
	}
}

// TestAPIProfiles: the runtime profiles are served behind the token only.
func TestAPIProfiles(t *testing.T) {
	h := newAPIHarness(t, newFakeAdmin(), 10)
	checkResponse(t, h.do("GET", "/api/debug/pprof/", "", ""), http.StatusUnauthorized, "unauthorized")
	w := h.expect(http.StatusOK, "", "GET", "/api/debug/pprof/", "")
	if !strings.Contains(w.Body.String(), "goroutine") {
		t.Fatalf("profile index without goroutine: %.200s", w.Body.String())
	}
	w = h.expect(http.StatusOK, "", "GET", "/api/debug/pprof/goroutine?debug=1", "")
	if !strings.Contains(w.Body.String(), "TestAPIProfiles") {
		t.Fatalf("goroutine profile does not show this test: %.200s", w.Body.String())
	}
}
