package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	xmpp "github.com/parley-im/parley/client"
	"github.com/parley-im/parley/stanza"
)

// The admin REST API (/api/) against a real server process, and the
// `parley user` commands going through it while the server runs.

// apiClient talks to one server's admin API.
type apiClient struct {
	t     *testing.T
	base  string
	token string
}

func newAPIClient(t *testing.T, srv *server) *apiClient {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(srv.DataDir, "admin-token"))
	if err != nil {
		t.Fatalf("read the generated admin token: %v", err)
	}
	return &apiClient{t: t, base: "http://" + srv.HTTP, token: strings.TrimSpace(string(b))}
}

// apiResponse is one answer.
type apiResponse struct {
	status int
	header http.Header
	body   []byte
}

func (r apiResponse) String() string {
	return http.StatusText(r.status) + ": " + string(r.body)
}

// decode unmarshals the JSON body strictly (unknown fields fail the test:
// the documented shapes are the contract).
func (r apiResponse) decode(t *testing.T, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", r, err)
	}
}

// call sends a request with the client's token; auth overrides the
// Authorization header ("-" sends none).
func (c *apiClient) call(method, path, body string, auth ...string) apiResponse {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	switch {
	case len(auth) == 0:
		req.Header.Set("Authorization", "Bearer "+c.token)
	case auth[0] != "-":
		req.Header.Set("Authorization", auth[0])
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return apiResponse{status: resp.StatusCode, header: resp.Header, body: data}
}

// expect asserts the status and, for errors, the one JSON error shape
// with the code; it returns the response.
func (c *apiClient) expect(status int, method, path, body string, auth ...string) apiResponse {
	c.t.Helper()
	r := c.call(method, path, body, auth...)
	if r.status != status {
		c.t.Fatalf("%s %s %s: got %d %s, want %d", method, path, body, r.status, r.body, status)
	}
	if status >= 400 {
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			c.t.Errorf("%s %s: error Content-Type %q, want application/json", method, path, ct)
		}
		var eb struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		r.decode(c.t, &eb)
		if eb.Error.Code == "" || eb.Error.Message == "" {
			c.t.Errorf("%s %s: error body %s lacks code or message", method, path, r.body)
		}
	}
	return r
}

// errorOf returns the code and message of an error response.
func errorOf(t *testing.T, r apiResponse) (code, message string) {
	t.Helper()
	var eb struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(r.body, &eb); err != nil {
		t.Fatalf("error body %s: %v", r.body, err)
	}
	return eb.Error.Code, eb.Error.Message
}

func apiDial(t *testing.T, srv *server, user, pw, resource string) (*xmpp.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return xmpp.Dial(ctx, xmpp.Config{Addr: srv.C2S, JID: user + "@" + domain, Password: pw, Resource: resource,
		TLSConfig: &tls.Config{InsecureSkipVerify: true}, SendInitialPresence: true})
}

// expectKicked waits for the client's stream to end with the stream error.
func expectKicked(t *testing.T, c *xmpp.Client, condition string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	for {
		_, err := c.Recv(ctx)
		if err == nil {
			continue
		}
		se := stanza.AsStreamError(err)
		if se == nil || se.Condition != condition {
			t.Fatalf("stream ended with %v, want a %s stream error", err, condition)
		}
		return
	}
}

type apiUser struct {
	Username string    `json:"username"`
	JID      string    `json:"jid"`
	Exists   bool      `json:"exists"`
	Created  time.Time `json:"created"`
}

type apiSession struct {
	JID        string    `json:"jid"`
	Transport  string    `json:"transport"`
	RemoteIP   string    `json:"remote_ip"`
	Secure     bool      `json:"secure"`
	Available  bool      `json:"available"`
	Priority   int       `json:"priority"`
	Detached   bool      `json:"detached"`
	BoundSince time.Time `json:"bound_since"`
}

type apiSessions struct {
	Sessions  []apiSession `json:"sessions"`
	Total     int          `json:"total"`
	Truncated bool         `json:"truncated"`
}

func TestAPIAuth(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	api := newAPIClient(t, srv)
	if len(api.token) < 32 {
		t.Fatalf("generated admin token %q is too short", api.token)
	}

	for name, auth := range map[string]string{
		"missing":      "-",
		"wrong":        "Bearer not-the-token",
		"other_scheme": "Basic " + api.token,
		"prefix":       "Bearer " + api.token[:len(api.token)-1],
	} {
		r := api.expect(http.StatusUnauthorized, "GET", "/api/stats", "", auth)
		if code, _ := errorOf(t, r); code != "unauthorized" {
			t.Errorf("%s token: code %q, want unauthorized", name, code)
		}
		if h := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
			t.Errorf("%s token: WWW-Authenticate %q, want Bearer …", name, h)
		}
	}
	// Unknown paths and methods are not revealed without the token.
	api.expect(http.StatusUnauthorized, "GET", "/api/nothing-here", "", "-")
	api.expect(http.StatusUnauthorized, "DELETE", "/api/stats", "", "Bearer nope")

	// The right token; the scheme is case-insensitive.
	api.expect(http.StatusOK, "GET", "/api/stats", "")
	api.expect(http.StatusOK, "GET", "/api/stats", "", "bearer "+api.token)

	// Everything else under /api/ is a JSON 404; a wrong method a JSON 405.
	for _, p := range []string{"/api/", "/api/nothing-here", "/api/users/alice/nothing", "/api/stats/x"} {
		r := api.expect(http.StatusNotFound, "GET", p, "")
		if code, _ := errorOf(t, r); code != "not_found" {
			t.Errorf("GET %s: code %q, want not_found", p, code)
		}
	}
	for _, c := range []struct{ method, path, allow string }{
		{"DELETE", "/api/stats", "GET, HEAD"},
		{"PUT", "/api/users", "GET, HEAD, POST"},
		{"POST", "/api/users/alice", "GET, HEAD, DELETE"},
		{"GET", "/api/users/alice/password", "PUT"},
		{"POST", "/api/sessions", "GET, HEAD"},
	} {
		r := api.expect(http.StatusMethodNotAllowed, c.method, c.path, "")
		if code, _ := errorOf(t, r); code != "method_not_allowed" {
			t.Errorf("%s %s: code %q, want method_not_allowed", c.method, c.path, code)
		}
		if got := r.header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}
}

func TestAPIAuthConfiguredToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := startServer(t, dir, "--admin-token", "configured-token-123")
	api := &apiClient{t: t, base: "http://" + srv.HTTP, token: "configured-token-123"}
	api.expect(http.StatusOK, "GET", "/api/users", "")
	if _, err := os.Stat(filepath.Join(dir, "admin-token")); err == nil {
		// A generated token must not work when one is configured.
		b, _ := os.ReadFile(filepath.Join(dir, "admin-token"))
		api.expect(http.StatusUnauthorized, "GET", "/api/users", "", "Bearer "+strings.TrimSpace(string(b)))
	}
}

func TestAPIUsers(t *testing.T) {
	t.Parallel()
	srv := startServer(t, newDataDir(t, map[string]string{"alice": "pw-alice"}))
	api := newAPIClient(t, srv)

	// Create by JID and by username; the answer is the account.
	r := api.expect(http.StatusCreated, "POST", "/api/users", `{"jid":"Bob@LocalHost","password":"pw-bob"}`)
	var u apiUser
	r.decode(t, &u)
	if u.Username != "bob" || u.JID != "bob@localhost" || !u.Exists || u.Created.IsZero() || time.Since(u.Created) > time.Minute {
		t.Errorf("created user = %+v, want bob, bob@localhost, exists, created now", u)
	}
	if loc := r.header.Get("Location"); loc != "/api/users/bob" {
		t.Errorf("Location %q, want /api/users/bob", loc)
	}
	api.expect(http.StatusCreated, "POST", "/api/users", `{"username":"carol","password":"pw-carol"}`)

	// Conflicts, in any spelling of the same account.
	for _, body := range []string{
		`{"jid":"alice@localhost","password":"x"}`,
		`{"username":"ALICE","password":"x"}`,
		`{"jid":"bob@localhost","password":"x"}`,
	} {
		r := api.expect(http.StatusConflict, "POST", "/api/users", body)
		if code, _ := errorOf(t, r); code != "conflict" {
			t.Errorf("POST %s: code %q, want conflict", body, code)
		}
	}

	// Bad input: 400 with a message saying what is wrong.
	for _, c := range []struct{ body, want string }{
		{`{"jid":"dave@localhost","password":""}`, "password"},
		{`{"jid":"dave@localhost"}`, "password"},
		{`{"password":"x"}`, "jid or username"},
		{`{"jid":"da ve@localhost","password":"x"}`, "invalid JID"},
		{`{"jid":"dave@example.com","password":"x"}`, "domain"},
		{`{"jid":"dave@localhost/phone","password":"x"}`, "bare JID"},
		{`{"username":"dave@localhost","password":"x"}`, "username"},
		{`{"jid":"dave@localhost","username":"dave","password":"x"}`, "not both"},
		{`{"jid":"dave@localhost","password":"x","admin":true}`, `unknown field "admin"`},
		{`{"jid":"dave@localhost","password":7}`, `"password"`},
		{`{"jid":"dave@localhost",`, "JSON"},
		{`not json`, "invalid JSON"},
		{`{"jid":"dave@localhost","password":"x"} {}`, "trailing"},
		{`[]`, "object"},
		{``, "empty body"},
	} {
		r := api.expect(http.StatusBadRequest, "POST", "/api/users", c.body)
		code, msg := errorOf(t, r)
		if code != "bad_request" || !strings.Contains(msg, c.want) {
			t.Errorf("POST %s: %s %q, want bad_request mentioning %q", c.body, code, msg, c.want)
		}
	}
	huge := `{"jid":"dave@localhost","password":"` + strings.Repeat("x", 70<<10) + `"}`
	r = api.expect(http.StatusRequestEntityTooLarge, "POST", "/api/users", huge)
	if code, _ := errorOf(t, r); code != "payload_too_large" {
		t.Errorf("huge body: code %q, want payload_too_large", code)
	}
	api.expect(http.StatusNotFound, "GET", "/api/users/dave", "")

	// Get.
	for _, p := range []string{"/api/users/alice", "/api/users/alice@localhost", "/api/users/ALICE%40localhost"} {
		var got apiUser
		api.expect(http.StatusOK, "GET", p, "").decode(t, &got)
		if got.Username != "alice" || got.JID != "alice@localhost" || !got.Exists || got.Created.IsZero() {
			t.Errorf("GET %s = %+v", p, got)
		}
	}
	r = api.expect(http.StatusNotFound, "GET", "/api/users/nobody", "")
	if code, msg := errorOf(t, r); code != "not_found" || !strings.Contains(msg, "nobody") {
		t.Errorf("unknown user: %s %q", code, msg)
	}
	api.expect(http.StatusBadRequest, "GET", "/api/users/someone@example.com", "")

	// The created accounts log in.
	for user, pw := range map[string]string{"bob": "pw-bob", "carol": "pw-carol"} {
		c, err := apiDial(t, srv, user, pw, "")
		if err != nil {
			t.Fatalf("%s cannot log in after POST /api/users: %v", user, err)
		}
		c.Close()
	}

	// Password change: the old one stops working, the new one works.
	api.expect(http.StatusNoContent, "PUT", "/api/users/bob/password", `{"password":"new-bob"}`)
	if c, err := apiDial(t, srv, "bob", "pw-bob", ""); err == nil {
		c.Close()
		t.Errorf("bob logged in with the old password")
	}
	c, err := apiDial(t, srv, "bob", "new-bob", "")
	if err != nil {
		t.Fatalf("bob cannot log in with the new password: %v", err)
	}
	c.Close()
	api.expect(http.StatusNotFound, "PUT", "/api/users/nobody/password", `{"password":"x"}`)
	api.expect(http.StatusBadRequest, "PUT", "/api/users/bob/password", `{"password":""}`)
	api.expect(http.StatusBadRequest, "PUT", "/api/users/bob/password", `{"pass":"x"}`)

	// Paging: alice, bob, carol and u0…u4, in byte order.
	for _, n := range []string{"u3", "u0", "u4", "u2", "u1"} {
		api.expect(http.StatusCreated, "POST", "/api/users", `{"username":"`+n+`","password":"pw"}`)
	}
	var all []string
	after := ""
	pages := 0
	for {
		var page struct {
			Users []string `json:"users"`
			Next  string   `json:"next"`
		}
		api.expect(http.StatusOK, "GET", "/api/users?limit=3&after="+after, "").decode(t, &page)
		pages++
		if len(page.Users) > 3 {
			t.Fatalf("page of %d users with limit=3", len(page.Users))
		}
		all = append(all, page.Users...)
		if page.Next == "" {
			break
		}
		if page.Next != page.Users[len(page.Users)-1] {
			t.Errorf("next %q is not the page's last user %v", page.Next, page.Users)
		}
		after = page.Next
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	want := []string{"alice", "bob", "carol", "u0", "u1", "u2", "u3", "u4"}
	if !slices.Equal(all, want) || pages != 3 {
		t.Errorf("paged users %v in %d pages, want %v in 3", all, pages, want)
	}
	var first struct {
		Users []string `json:"users"`
		Next  string   `json:"next"`
	}
	api.expect(http.StatusOK, "GET", "/api/users", "").decode(t, &first)
	if !slices.Equal(first.Users, want) || first.Next != "" {
		t.Errorf("GET /api/users = %+v, want all users and no next", first)
	}
	api.expect(http.StatusOK, "GET", "/api/users?limit=100000", "") // clamped, not refused
	for _, q := range []string{"limit=0", "limit=-1", "limit=ten"} {
		api.expect(http.StatusBadRequest, "GET", "/api/users?"+q, "")
	}

	// Delete.
	api.expect(http.StatusNoContent, "DELETE", "/api/users/carol@localhost", "")
	api.expect(http.StatusNotFound, "DELETE", "/api/users/carol", "")
	api.expect(http.StatusNotFound, "GET", "/api/users/carol", "")
	if c, err := apiDial(t, srv, "carol", "pw-carol", ""); err == nil {
		c.Close()
		t.Errorf("carol logged in after DELETE")
	}
}

func TestAPISessionsAndKick(t *testing.T) {
	t.Parallel()
	srv := startServer(t, newDataDir(t, map[string]string{"alice": "pw-a", "bob": "pw-b"}))
	api := newAPIClient(t, srv)

	var list apiSessions
	api.expect(http.StatusOK, "GET", "/api/sessions", "").decode(t, &list)
	if len(list.Sessions) != 0 || list.Total != 0 {
		t.Fatalf("sessions before any login: %+v", list)
	}

	phone, err := apiDial(t, srv, "alice", "pw-a", "phone")
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	laptop, err := apiDial(t, srv, "alice", "pw-a", "laptop")
	if err != nil {
		t.Fatal(err)
	}
	defer laptop.Close()
	bob, err := apiDial(t, srv, "bob", "pw-b", "desk")
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()

	// Initial presence is processed asynchronously: wait until all three
	// sessions show up available.
	deadline := time.Now().Add(stepTimeout)
	for {
		api.expect(http.StatusOK, "GET", "/api/sessions", "").decode(t, &list)
		avail := 0
		for _, s := range list.Sessions {
			if s.Available {
				avail++
			}
		}
		if avail == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions: %+v, want 3 available", list)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var jids []string
	for _, s := range list.Sessions {
		jids = append(jids, s.JID)
		if s.Transport != "starttls" || s.RemoteIP != "127.0.0.1" || !s.Secure || s.Detached {
			t.Errorf("session %+v: want transport starttls, remote_ip 127.0.0.1, secure, attached", s)
		}
	}
	if want := []string{"alice@localhost/laptop", "alice@localhost/phone", "bob@localhost/desk"}; !slices.Equal(jids, want) || list.Total != 3 || list.Truncated {
		t.Errorf("sessions %v (total %d, truncated %v), want %v", jids, list.Total, list.Truncated, want)
	}
	api.expect(http.StatusOK, "GET", "/api/sessions?user=alice", "").decode(t, &list)
	if list.Total != 2 {
		t.Errorf("alice's sessions: %+v, want 2", list)
	}
	api.expect(http.StatusOK, "GET", "/api/sessions?limit=1", "").decode(t, &list)
	if len(list.Sessions) != 1 || list.Total != 3 || !list.Truncated {
		t.Errorf("limit=1: %+v, want one session of 3, truncated", list)
	}

	// Kick one resource: that client gets the stream error, the others stay.
	api.expect(http.StatusNoContent, "DELETE", "/api/sessions/alice@localhost/phone", "")
	expectKicked(t, phone, stanza.StreamPolicyViolation)
	waitSessions(t, api, 2)
	api.expect(http.StatusNotFound, "DELETE", "/api/sessions/alice@localhost/phone", "")
	api.expect(http.StatusNotFound, "DELETE", "/api/sessions/nobody@localhost", "")
	api.expect(http.StatusBadRequest, "DELETE", "/api/sessions/alice@example.com", "")
	if laptop.Err() != nil || bob.Err() != nil {
		t.Fatalf("other sessions ended: laptop %v, bob %v", laptop.Err(), bob.Err())
	}

	// Deleting an account ends its sessions.
	api.expect(http.StatusNoContent, "DELETE", "/api/users/bob", "")
	expectKicked(t, bob, stanza.StreamPolicyViolation)

	// A bare JID kicks every session of the user.
	api.expect(http.StatusNoContent, "DELETE", "/api/sessions/alice@localhost", "")
	expectKicked(t, laptop, stanza.StreamPolicyViolation)
	waitSessions(t, api, 0)
}

// waitSessions waits until GET /api/sessions reports n sessions.
func waitSessions(t *testing.T, api *apiClient, n int) {
	t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		var list apiSessions
		api.expect(http.StatusOK, "GET", "/api/sessions", "").decode(t, &list)
		if list.Total == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions %+v, want %d", list, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAPIStats(t *testing.T) {
	t.Parallel()
	srv := startServer(t, newDataDir(t, map[string]string{"alice": "pw-a", "bob": "pw-b"}))
	api := newAPIClient(t, srv)

	a, err := apiDial(t, srv, "alice", "pw-a", "")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// bob is offline: the message waits in his queue.
	if err := a.SendMessage("bob@"+domain, "queued"); err != nil {
		t.Fatal(err)
	}

	type stats struct {
		Version           string    `json:"version"`
		Started           time.Time `json:"started"`
		UptimeSeconds     float64   `json:"uptime_seconds"`
		Sessions          int       `json:"sessions"`
		Connections       int       `json:"connections"`
		Accounts          int       `json:"accounts"`
		StanzasIn         int64     `json:"stanzas_in"`
		StanzasOut        int64     `json:"stanzas_out"`
		StanzasInRate     float64   `json:"stanzas_in_per_second"`
		StanzasOutRate    float64   `json:"stanzas_out_per_second"`
		RateWindowSeconds float64   `json:"rate_window_seconds"`
		QueueDepth        int64     `json:"queue_depth"`
		StoreBytes        int64     `json:"store_bytes"`
	}
	var st stats
	deadline := time.Now().Add(stepTimeout)
	for {
		api.expect(http.StatusOK, "GET", "/api/stats", "").decode(t, &st)
		if st.QueueDepth == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v: the queued message never showed in queue_depth", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.Version == "" || st.Started.IsZero() || st.UptimeSeconds <= 0 {
		t.Errorf("stats %+v: want version, started and uptime", st)
	}
	if st.Sessions != 1 || st.Connections != 1 || st.Accounts != 2 {
		t.Errorf("stats %+v: want 1 session, 1 connection, 2 accounts", st)
	}
	// Initial presence and the message at least.
	if st.StanzasIn < 2 || st.StoreBytes <= 0 {
		t.Errorf("stats %+v: want stanzas_in >= 2 and a store size", st)
	}
	if st.StanzasInRate < 0 || st.StanzasOutRate < 0 || st.RateWindowSeconds <= 0 {
		t.Errorf("stats %+v: want rates over a positive window", st)
	}
}

// runParley runs the parley binary with the test's hermetic environment
// plus env, and returns its stdout, stderr and exit code.
func runParley(t *testing.T, stdin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, parleyBin, args...)
	cmd.Env = append(hermeticEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("parley %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func TestUserCommandThroughAPI(t *testing.T) {
	t.Parallel()
	dir := newDataDir(t, map[string]string{"alice": "pw-a"})
	srv := startServer(t, dir)
	user := func(wantCode int, args ...string) (string, string) {
		t.Helper()
		stdout, stderr, code := runParley(t, "", nil, append(append([]string{"user"}, args...), "--data", dir)...)
		if code != wantCode {
			t.Fatalf("parley user %v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, wantCode, stdout, stderr)
		}
		return stdout, stderr
	}

	// add: same output as without a server, and the user can log in.
	if out, _ := user(0, "add", "Carol@localhost", "--password", "pw-c"); out != "added carol\n" {
		t.Errorf("user add output %q, want %q", out, "added carol\n")
	}
	c, err := apiDial(t, srv, "carol", "pw-c", "")
	if err != nil {
		t.Fatalf("carol cannot log in after parley user add through the API: %v", err)
	}
	c.Close()
	if _, stderr := user(1, "add", "carol", "--password", "x"); !strings.Contains(stderr, "carol already exists") {
		t.Errorf("duplicate add: stderr %q", stderr)
	}

	// list sees it.
	if out, _ := user(0, "list"); out != "alice\ncarol\n" {
		t.Errorf("user list output %q, want alice and carol", out)
	}

	// passwd, with the password on stdin.
	stdout, stderr, code := runParley(t, "pw-c2\n", nil, "user", "passwd", "carol", "--password-stdin", "--data", dir)
	if code != 0 || stdout != "password changed for carol\n" {
		t.Fatalf("user passwd: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	c, err = apiDial(t, srv, "carol", "pw-c2", "")
	if err != nil {
		t.Fatalf("carol cannot log in with the password set through the API: %v", err)
	}

	// del ends the session too.
	if out, _ := user(0, "del", "carol@localhost"); out != "deleted carol\n" {
		t.Errorf("user del output %q", out)
	}
	expectKicked(t, c, stanza.StreamPolicyViolation)
	c.Close()
	if _, stderr := user(1, "del", "carol"); !strings.Contains(stderr, "carol does not exist") {
		t.Errorf("del of a missing user: stderr %q", stderr)
	}
	if _, stderr := user(1, "passwd", "carol", "--password", "x"); !strings.Contains(stderr, "carol does not exist") {
		t.Errorf("passwd of a missing user: stderr %q", stderr)
	}

	// import stays store-only and says so.
	if _, stderr := user(1, "import"); !strings.Contains(stderr, "server is running") || !strings.Contains(stderr, "stop") {
		t.Errorf("import while running: stderr %q", stderr)
	}

	// A wrong token is reported as such.
	if _, stderr := user(1, "list", "--admin-token", "wrong"); !strings.Contains(stderr, "refused the admin token") {
		t.Errorf("wrong token: stderr %q", stderr)
	}

	// Without run.json the command says what is missing.
	if err := os.Remove(filepath.Join(dir, "run.json")); err != nil {
		t.Fatal(err)
	}
	if _, stderr := user(1, "list"); !strings.Contains(stderr, "run.json") {
		t.Errorf("missing run.json: stderr %q", stderr)
	}

	// After the server stops, the same commands work on the store.
	srv.Stop()
	if out, _ := user(0, "list"); out != "alice\n" {
		t.Errorf("user list on the stopped server's store: %q", out)
	}
}

func TestUserCommandThroughAPIConfiguredToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	startServer(t, dir, "--admin-token", "cfg-token-456")
	// No generated token file: the CLI needs the configured token.
	_, stderr, code := runParley(t, "", nil, "user", "add", "dave", "--password", "pw", "--data", dir)
	if _, err := os.Stat(filepath.Join(dir, "admin-token")); err != nil {
		if code != 1 || !strings.Contains(stderr, "--admin-token") {
			t.Errorf("add without the configured token: exit %d, stderr %q", code, stderr)
		}
	} else if code != 1 || !strings.Contains(stderr, "refused the admin token") {
		t.Errorf("add with a stale generated token: exit %d, stderr %q", code, stderr)
	}
	stdout, stderr, code := runParley(t, "", nil, "user", "add", "dave", "--password", "pw", "--data", dir, "--admin-token", "cfg-token-456")
	if code != 0 || stdout != "added dave\n" {
		t.Fatalf("add with --admin-token: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	stdout, stderr, code = runParley(t, "", []string{"PARLEY_ADMIN_TOKEN=cfg-token-456"}, "user", "list", "--data", dir)
	if code != 0 || stdout != "dave\n" {
		t.Fatalf("list with PARLEY_ADMIN_TOKEN: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
