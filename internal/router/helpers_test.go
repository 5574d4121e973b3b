package router_test

import (
	"testing"
	"time"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/router/routertest"
	"github.com/parley-im/parley/internal/store/pebble"
	"github.com/parley-im/parley/stanza"
)

const domain = "example.com"

// fakeSession is a router.Session that records what it is given.
type fakeSession = routertest.Session

func newSession(t *testing.T, full string, available bool, prio int) *fakeSession {
	t.Helper()
	return routertest.NewSession(t, full, available, prio)
}

// env is the router under test on a real store (see routertest.Env).
type env struct {
	*routertest.Env
	t  *testing.T
	st *pebble.Store
	r  *router.Router
}

type opts struct {
	maxOffline  int
	maxSessions int
	expiry      time.Duration
}

func newEnv(t *testing.T, o opts, users ...string) *env {
	t.Helper()
	e := routertest.New(t, domain, routertest.Options{MaxOffline: o.maxOffline, MaxSessions: o.maxSessions, Expiry: o.expiry}, users...)
	return &env{Env: e, t: t, st: e.Store, r: e.Router}
}

func (e *env) closeRouter() { e.CloseRouter() }
func (e *env) bind(full string, available bool, prio int) *fakeSession {
	return e.Bind(full, available, prio)
}
func (e *env) depth(user string) int        { return e.Depth(user) }
func (e *env) waitDepth(user string, n int) { e.WaitDepth(user, n) }

func msg(from, to, typ, body string) *stanza.Element { return routertest.Msg(from, to, typ, body) }

func errorCondition(el *stanza.Element) string { return routertest.ErrorCondition(el) }
