package e2e

import (
	"errors"
	"slices"
	"testing"
)

const registerFeature = "{" + nsRegFeat + "}register"

// Test 7b: in-band registration (XEP-0077) with --allow-registration: a new
// account is created and can log in; an existing account cannot be
// registered again (and keeps its password).
func TestInBandRegistration(t *testing.T) {
	t.Parallel()
	requirePython(t)
	dir := newDataDir(t, map[string]string{"alice": "secret"})
	srv := startServer(t, dir, "--allow-registration")

	reg := runPy(t, "register", "register.py", "--port", srv.C2SPort(), "--jid", "newbie@localhost", "--password", "n3wb!e pass")
	reg.expectExit(pyExitOK, pyScriptTimeout)
	reg.expectEv("features", map[string]string{"tls": "false"})
	post := reg.expectEv("features", map[string]string{"tls": "true"})
	if !slices.Contains(post.strs("features"), registerFeature) {
		t.Errorf("post-TLS features do not advertise %s: %s", registerFeature, post)
	}
	form := reg.expectEv("register_form", nil)
	for _, f := range []string{"username", "password"} {
		if !slices.Contains(form.strs("fields"), f) {
			t.Errorf("registration form lacks <%s/>: %s", f, form)
		}
	}
	if form.boolean("registered") {
		t.Errorf("registration form says <registered/> for a new user: %s", form)
	}
	reg.expectEv("registered", nil)
	sess := reg.expectEv("session_start", nil)
	if bareJID(sess.str("jid")) != "newbie@localhost" {
		t.Errorf("session after registration bound %q", sess.str("jid"))
	}

	// The new account works on a fresh connection too.
	again := runPy(t, "login-newbie", "login.py", "--port", srv.C2SPort(), "--jid", "newbie@localhost", "--password", "n3wb!e pass")
	again.expectExit(pyExitOK, pyScriptTimeout)
	assertSCRAM(t, again.expectEv("session_start", nil).str("mech"))

	// The account survives a restart.
	srv.Stop()
	srv = srv.Restart("--allow-registration")
	p := runPy(t, "login-newbie-restart", "login.py", "--port", srv.C2SPort(), "--jid", "newbie@localhost", "--password", "n3wb!e pass")
	p.expectExit(pyExitOK, pyScriptTimeout)

	// Registering an existing username is refused with <conflict/> (done
	// on the restarted server: the server limits registrations per IP
	// address, and this must not be confused with that limit) ...
	dup := runPy(t, "register-dup", "register.py", "--port", srv.C2SPort(), "--jid", "alice@localhost", "--password", "hijacked")
	dup.expectExit(pyExitAuth, pyScriptTimeout)
	if e := dup.expectEv("register_error", nil); e.str("condition") != "conflict" {
		t.Errorf("re-registering alice: error %q, want conflict (XEP-0077 3.1)", e.str("condition"))
	}
	// ... and alice's password is untouched.
	p = runPy(t, "login-alice", "login.py", "--port", srv.C2SPort(), "--jid", "alice@localhost", "--password", "secret")
	p.expectExit(pyExitOK, pyScriptTimeout)
	p = runPy(t, "login-alice-hijacked", "login.py", "--port", srv.C2SPort(), "--jid", "alice@localhost", "--password", "hijacked")
	p.expectExit(pyExitAuth, pyScriptTimeout)
	srv.Stop()
}

// Test 7c: without --allow-registration, registration is not offered (or
// refused with service-unavailable), and a forced attempt creates nothing.
func TestInBandRegistrationDisabled(t *testing.T) {
	t.Parallel()
	requirePython(t)
	dir := newDataDir(t, map[string]string{"alice": "secret"})
	srv := startServer(t, dir)

	reg := runPy(t, "register", "register.py", "--port", srv.C2SPort(), "--jid", "newbie@localhost", "--password", "pw")
	code := reg.waitExit(pyScriptTimeout)
	post := reg.expectEv("features", map[string]string{"tls": "true"})
	offered := slices.Contains(post.strs("features"), registerFeature)
	switch {
	case !offered && code == pyExitAuthFailed:
		// Not offered; slixmpp went on to authenticate, which failed.
		reg.expectEv("failed_auth", nil)
	case code == pyExitAuth:
		e := reg.expectEv("register_error", nil)
		if e.str("condition") != "service-unavailable" {
			t.Errorf("registration refused with %q, want service-unavailable", e.str("condition"))
		}
	default:
		t.Fatalf("register.py exited %d (feature offered: %v); want registration not offered or refused", code, offered)
	}
	if got := reg.all(evMatch("registered", nil)); len(got) != 0 {
		t.Fatalf("registration succeeded without --allow-registration: %v", got)
	}

	// Forcing the issue on a raw socket: a jabber:iq:register set before
	// authentication must not create the account.
	c := dialRaw(t, srv.C2S)
	c.openStream()
	c.startTLS()
	c.send(`<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>sneaky</username><password>pw</password></query></iq>`)
	n, err := c.next(stepTimeout)
	switch {
	case err != nil:
		if !errors.Is(err, errStreamClosed) {
			t.Logf("forced registration: connection ended: %v", err)
		}
	case n.is(nsClient, "iq") && n.attr("type") == "error":
		t.Logf("forced registration refused: %s", n)
	case n.is(nsStreams, "error"):
		t.Logf("forced registration refused with a stream error: %s", n)
	default:
		t.Errorf("forced pre-auth registration answered with %s, want an IQ error or a stream error", n)
	}
	for _, u := range []string{"newbie", "sneaky"} {
		p := runPy(t, "login-"+u, "login.py", "--port", srv.C2SPort(), "--jid", u+"@localhost", "--password", map[string]string{"newbie": "pw", "sneaky": "pw"}[u])
		p.expectExit(pyExitAuth, pyScriptTimeout)
	}
	srv.Stop()
}
