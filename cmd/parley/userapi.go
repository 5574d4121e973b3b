package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/parley-im/parley/internal/certs"
	"github.com/parley-im/parley/internal/sasl"
	"github.com/parley-im/parley/internal/server"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/internal/store/pebble"
	"github.com/parley-im/parley/internal/web"
)

// accounts is what the account commands do: directly on the store when no
// server runs on the data directory, through the running server's admin
// API when one does (it holds the store's lock). Both report a missing
// account as store.ErrNotFound and a taken one as store.ErrExists.
type accounts interface {
	add(ctx context.Context, user, password string) error
	passwd(ctx context.Context, user, password string) error
	del(ctx context.Context, user string) error
	// list calls f for every username, in order.
	list(ctx context.Context, f func(string)) error
}

// storeAccounts works on an opened store.
type storeAccounts struct{ st *pebble.Store }

func (s storeAccounts) add(ctx context.Context, user, password string) error {
	sha1, sha256, err := sasl.NewCredentials(password)
	if err != nil {
		return err
	}
	return s.st.CreateAccount(ctx, store.Account{Username: user, Created: time.Now(), SHA1: sha1, SHA256: sha256})
}

func (s storeAccounts) passwd(ctx context.Context, user, password string) error {
	sha1, sha256, err := sasl.NewCredentials(password)
	if err != nil {
		return err
	}
	return s.st.SetCredentials(ctx, user, sha1, sha256)
}

func (s storeAccounts) del(ctx context.Context, user string) error {
	return s.st.DeleteAccount(ctx, user)
}

func (s storeAccounts) list(ctx context.Context, f func(string)) error {
	after := ""
	for {
		names, err := s.st.ListAccounts(ctx, after, 1000)
		if err != nil {
			return err
		}
		for _, n := range names {
			f(n)
		}
		if len(names) < 1000 {
			return nil
		}
		after = names[len(names)-1]
	}
}

// apiAccounts goes through the admin API of the server running on data.
type apiAccounts struct {
	data      string
	base      string // http://host:port
	token     string
	tokenFrom string // where the token came from, for error messages
	hc        *http.Client
}

// apiTimeout bounds one API request (creating an account derives SCRAM
// keys and waits for an fsync: well under a second).
const apiTimeout = 30 * time.Second

// newAPIAccounts finds the running server from <data>/run.json and the
// admin token from --admin-token, PARLEY_ADMIN_TOKEN or <data>/admin-token.
func newAPIAccounts(data, tokenFlag string) (*apiAccounts, error) {
	runPath := filepath.Join(data, server.RunFile)
	b, err := os.ReadFile(runPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("the data directory %s is in use by another process (its store is locked), but %s does not exist: "+
			"a server that is still starting, or another parley command; try again in a moment", data, runPath)
	}
	if err != nil {
		return nil, fmt.Errorf("the data directory %s is in use by a running server, but its run file cannot be read: %w", data, err)
	}
	var info server.RunInfo
	if err := json.Unmarshal(b, &info); err != nil || info.HTTP == "" {
		return nil, fmt.Errorf("the data directory %s is in use by a running server, but %s has no usable HTTP address (%q)", data, runPath, b)
	}
	a := &apiAccounts{data: data, base: "http://" + dialable(info.HTTP), hc: &http.Client{Timeout: apiTimeout}}
	switch {
	case tokenFlag != "":
		a.token, a.tokenFrom = tokenFlag, "--admin-token"
	case os.Getenv("PARLEY_ADMIN_TOKEN") != "":
		a.token, a.tokenFrom = os.Getenv("PARLEY_ADMIN_TOKEN"), "PARLEY_ADMIN_TOKEN"
	default:
		p := filepath.Join(data, certs.AdminTokenFile)
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("a server is running on %s; its admin token is needed to change accounts, but %s cannot be read (%v): "+
				"pass the server's token with --admin-token or PARLEY_ADMIN_TOKEN", data, p, err)
		}
		a.token, a.tokenFrom = strings.TrimSpace(string(b)), p
	}
	return a, nil
}

// dialable turns a listening address into one to connect to: an
// unspecified host (":5280", "[::]:5280", "0.0.0.0:5280") means this
// machine, and Go's wildcard listeners accept IPv4 even on "[::]".
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// apiError is a non-success answer of the API.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.status, e.code, e.message)
}

// do sends one request; out, if not nil, receives the JSON answer.
func (a *apiAccounts) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("a server is running on %s, but its admin API at %s (from %s) cannot be reached: %w",
			a.data, a.base, filepath.Join(a.data, server.RunFile), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin API %s %s: reading the answer: %w", method, a.base+path, err)
	}
	if resp.StatusCode/100 == 2 {
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("admin API %s %s: unexpected answer: %w", method, a.base+path, err)
		}
		return nil
	}
	e := &apiError{status: resp.StatusCode, code: strconv.Itoa(resp.StatusCode), message: strings.TrimSpace(string(data))}
	var eb web.ErrorBody
	if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
		e.code, e.message = eb.Error.Code, eb.Error.Message
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		if e.code == "not_found" && strings.HasPrefix(path, "/api/users/") {
			return fmt.Errorf("%w (%s)", store.ErrNotFound, e.message)
		}
	case http.StatusConflict:
		return fmt.Errorf("%w (%s)", store.ErrExists, e.message)
	case http.StatusUnauthorized:
		return fmt.Errorf("the admin API of the server running on %s refused the admin token from %s (%s); "+
			"if the server was started with --admin-token, pass the same token with --admin-token or PARLEY_ADMIN_TOKEN", a.data, a.tokenFrom, e)
	}
	return fmt.Errorf("the admin API of the server running on %s (%s) answered %s %s: %w", a.data, a.base, method, path, e)
}

func userPath(user string) string { return "/api/users/" + url.PathEscape(user) }

func (a *apiAccounts) add(ctx context.Context, user, password string) error {
	return a.do(ctx, http.MethodPost, "/api/users", web.CreateUserRequest{Username: user, Password: password}, nil)
}

func (a *apiAccounts) passwd(ctx context.Context, user, password string) error {
	return a.do(ctx, http.MethodPut, userPath(user)+"/password", web.PasswordRequest{Password: password}, nil)
}

func (a *apiAccounts) del(ctx context.Context, user string) error {
	return a.do(ctx, http.MethodDelete, userPath(user), nil, nil)
}

func (a *apiAccounts) list(ctx context.Context, f func(string)) error {
	after := ""
	for {
		q := url.Values{"limit": {strconv.Itoa(web.MaxUserLimit)}}
		if after != "" {
			q.Set("after", after)
		}
		var page web.UserList
		if err := a.do(ctx, http.MethodGet, "/api/users?"+q.Encode(), nil, &page); err != nil {
			return err
		}
		for _, n := range page.Users {
			f(n)
		}
		if page.Next == "" {
			return nil
		}
		after = page.Next
	}
}
