package e2e

import (
	"slices"
	"testing"
)

// Test 5: disco#info / disco#items on the server, XEP-0199 ping and
// XEP-0092 version.
func TestServiceDiscoveryPingVersion(t *testing.T) {
	t.Parallel()
	requirePython(t)
	dir := newDataDir(t, map[string]string{"alice": "secret"})
	srv := startServer(t, dir)
	alice := login(t, srv, "alice@localhost/desk", "secret", clientOpts{})

	info := alice.mustCall("disco_info", map[string]any{"to": domain})
	features := info.strs("features")
	for _, f := range []string{
		"http://jabber.org/protocol/disco#info",
		"http://jabber.org/protocol/disco#items",
		"urn:xmpp:ping",
		"jabber:iq:version",
		"vcard-temp",
	} {
		if !slices.Contains(features, f) {
			t.Errorf("server disco#info lacks feature %q; has %v", f, features)
		}
	}
	hasServerIdentity := false
	for _, id := range info.objs("identities") {
		if id.str("category") == "server" && id.str("type") == "im" {
			hasServerIdentity = true
		}
	}
	if !hasServerIdentity {
		t.Errorf("server disco#info has no server/im identity: %v", info.objs("identities"))
	}

	items := alice.call("disco_items", map[string]any{"to": domain})
	if !items.boolean("ok") {
		t.Errorf("disco#items on the server failed: %s", items)
	}

	ping := alice.mustCall("ping", map[string]any{"to": domain})
	if ping.str("type") != "result" {
		t.Errorf("ping answered with type %q, want result", ping.str("type"))
	}
	if f := ping.str("from"); f != domain {
		t.Errorf("ping result from %q, want %q", f, domain)
	}

	v := alice.mustCall("version", map[string]any{"to": domain})
	if v.str("name") != "Parley" {
		t.Errorf("software version name %q, want Parley", v.str("name"))
	}
	if v.str("version") == "" {
		t.Errorf("software version has an empty <version/>: %s", v)
	}

	alice.quit()
	srv.Stop()
}

// Test 7a: vcard-temp set/get round trip, read by the owner and by another
// user, and kept across a restart.
func TestVCardRoundTrip(t *testing.T) {
	t.Parallel()
	requirePython(t)
	dir := newDataDir(t, map[string]string{"alice": "secret", "bob": "hunter2"})
	srv := startServer(t, dir)
	alice := login(t, srv, "alice@localhost/desk", "secret", clientOpts{})

	// Before anything is stored: an empty vCard or item-not-found.
	empty := alice.call("vcard_get", nil)
	if empty.boolean("ok") && len(empty.obj("fields")) != 0 {
		t.Errorf("fresh account already has a vCard: %s", empty)
	} else if !empty.boolean("ok") && empty.obj("error").str("condition") != "item-not-found" {
		t.Errorf("vCard get on a fresh account failed with %s (want an empty vCard or item-not-found)", empty)
	}

	fields := map[string]string{
		"FN":             "Ålice Liddell ☃",
		"NICKNAME":       "al <&> 'ice'",
		"N/FAMILY":       "Liddell",
		"N/GIVEN":        "Alice",
		"EMAIL/USERID":   "alice@example.org",
		"ORG/ORGNAME":    "Wonderland",
		"DESC":           "line one\nline two",
		"TEL/NUMBER":     "+1 555 0100",
		"ADR/CTRY":       "UK",
		"ADR/LOCALITY":   "Oxford",
		"URL":            "https://example.org/~alice",
		"BDAY":           "1852-05-04",
		"TITLE":          "Protagonist",
		"ORG/ORGUNIT":    "Tea party",
		"JABBERID":       "alice@localhost",
		"NOTE":           "x",
		"ROLE":           "guest",
		"PHOTO/TYPE":     "image/png",
		"PHOTO/BINVAL":   "iVBORw0KGgo=",
		"EMAIL/INTERNET": "",
	}
	alice.mustCall("vcard_set", map[string]any{"fields": fields})

	// Every field comes back unchanged; a server may add empty elements
	// but nothing with content.
	check := func(who string, got event) {
		t.Helper()
		gotFields := got.obj("fields")
		for k, want := range fields {
			if v, ok := gotFields[k]; !ok {
				t.Errorf("%s: vCard field %s is missing, want %q", who, k, want)
			} else if v != want {
				t.Errorf("%s: vCard field %s = %q, want %q", who, k, v, want)
			}
		}
		for k, v := range gotFields {
			if _, set := fields[k]; !set && v != "" {
				t.Errorf("%s: vCard has field %s = %q that was never set", who, k, v)
			}
		}
	}
	check("alice (own vCard)", alice.mustCall("vcard_get", nil))

	bob := login(t, srv, "bob@localhost/phone", "hunter2", clientOpts{})
	fromBob := bob.mustCall("vcard_get", map[string]any{"to": "alice@localhost"})
	check("bob (alice's vCard)", fromBob)
	if f := fromBob.str("from"); f != "alice@localhost" {
		t.Errorf("vCard result from %q, want alice@localhost", f)
	}

	// vCards are per account: bob setting his own leaves alice's alone.
	bob.mustCall("vcard_set", map[string]any{"fields": map[string]string{"FN": "bob was here"}})
	if fn := bob.mustCall("vcard_get", nil).obj("fields").str("FN"); fn != "bob was here" {
		t.Errorf("bob's own vCard FN = %q, want %q", fn, "bob was here")
	}
	check("alice after bob set his own", alice.mustCall("vcard_get", nil))

	alice.quit()
	bob.quit()
	srv.Stop()

	srv2 := srv.Restart()
	bob2 := login(t, srv2, "bob@localhost/phone", "hunter2", clientOpts{})
	check("bob after restart", bob2.mustCall("vcard_get", map[string]any{"to": "alice@localhost"}))
	bob2.quit()
	srv2.Stop()
}
