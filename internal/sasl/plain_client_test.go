package sasl

import (
	"errors"
	"strings"
	"testing"
)

func TestPLAINServer(t *testing.T) {
	a := newAccounts(map[string]string{"user": "pencil", "nul": "pa ss"})
	cfg := testConfig(a)
	for _, tc := range []struct {
		name, in string
		cond     string
		user     string
	}{
		{"plain", "\x00user\x00pencil", "", "user"},
		{"authzid equal", "user\x00user\x00pencil", "", "user"},
		{"authzid bare JID", "user@example.com\x00user\x00pencil", "", "user"},
		{"case-mapped authcid", "\x00USER\x00pencil", "", "user"},
		{"password is case-sensitive", "\x00user\x00Pencil", NotAuthorized, ""},
		{"wrong password", "\x00user\x00pencil2", NotAuthorized, ""},
		{"unknown user", "\x00nobody\x00pencil", NotAuthorized, ""},
		{"authzid other", "other\x00user\x00pencil", InvalidAuthzid, ""},
		{"NUL in password", "\x00user\x00pen\x00cil", MalformedRequest, ""},
		{"trailing NUL", "\x00user\x00pencil\x00", MalformedRequest, ""},
		{"empty authcid", "\x00\x00pencil", MalformedRequest, ""},
		{"empty password", "\x00user\x00", MalformedRequest, ""},
		{"one NUL", "\x00user", MalformedRequest, ""},
		{"no leading NUL", "user\x00pencil", MalformedRequest, ""},
		{"no NUL", "userpencil", MalformedRequest, ""},
		{"only NULs", "\x00\x00", MalformedRequest, ""},
		{"invalid UTF-8", "\x00user\x00pen\xffcil", MalformedRequest, ""},
		{"PRECIS refuses password", "\x00user\x00pen\x07cil", NotAuthorized, ""},
		{"bad authcid", "\x00us er\x00pencil", NotAuthorized, ""},
		{"too long", "\x00user\x00" + strings.Repeat("p", MaxMessageSize), MalformedRequest, ""},
	} {
		s, err := NewServer(MechPLAIN, cfg)
		if err != nil {
			t.Fatal(err)
		}
		out, done, err := s.Next([]byte(tc.in))
		if condition(err) != tc.cond || done != (tc.cond == "") || out != nil {
			t.Errorf("%s: %q, %v, %v; want %q", tc.name, out, done, err, tc.cond)
		}
		if s.Username() != tc.user {
			t.Errorf("%s: Username %q", tc.name, s.Username())
		}
		if _, _, err := s.Next([]byte("\x00user\x00pencil")); condition(err) != MalformedRequest {
			t.Errorf("%s: second Next: %v", tc.name, err)
		}
	}
}

func TestPLAINClient(t *testing.T) {
	c, err := NewClient(MechPLAIN, "user", "pencil", ChannelBinding{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Start()
	if err != nil || string(out) != "\x00user\x00pencil" {
		t.Fatalf("%q %v", out, err)
	}
	if _, err := c.Start(); !errors.Is(err, ErrSequence) {
		t.Error("second Start")
	}
	if err := c.Verify([]byte("junk")); err == nil {
		t.Error("data with PLAIN success accepted")
	}
	if err := c.Verify(nil); err != nil {
		t.Error(err)
	}
	// A challenge to PLAIN is refused rather than answered.
	c, _ = NewClient(MechPLAIN, "user", "pencil", ChannelBinding{})
	c.Start()
	if _, err := c.Next([]byte("x")); err == nil {
		t.Error("PLAIN answered a challenge")
	}
	if _, err := NewClient(MechPLAIN, "us\x00er", "pencil", ChannelBinding{}); err == nil {
		t.Error("NUL in username accepted")
	}
}

func TestNewClientErrors(t *testing.T) {
	for _, tc := range []struct {
		mech, user, pw string
		cb             ChannelBinding
	}{
		{"DIGEST-MD5", "u", "p", ChannelBinding{}},
		{MechSCRAMSHA256, "", "p", ChannelBinding{}},
		{MechSCRAMSHA256, "u\xff", "p", ChannelBinding{}},
		{MechSCRAMSHA256, "u", "", ChannelBinding{}},
		{MechSCRAMSHA256Plus, "u", "p", ChannelBinding{}},
		{MechSCRAMSHA256Plus, "u", "p", ChannelBinding{Type: CBTLSExporter}},
		{MechSCRAMSHA256Plus, "u", "p", ChannelBinding{Type: "bad,type", Data: []byte("x")}},
	} {
		if _, err := NewClient(tc.mech, tc.user, tc.pw, tc.cb); err == nil {
			t.Errorf("NewClient(%q, %q, %q, %v) succeeded", tc.mech, tc.user, tc.pw, tc.cb)
		}
	}
}

func TestClientGS2Header(t *testing.T) {
	for _, tc := range []struct {
		mech string
		cb   ChannelBinding
		want string
	}{
		{MechSCRAMSHA1, ChannelBinding{}, "n,,"},
		{MechSCRAMSHA256, ChannelBinding{CBTLSExporter, exporterData}, "y,,"},
		{MechSCRAMSHA256Plus, ChannelBinding{CBTLSExporter, exporterData}, "p=tls-exporter,,"},
		{MechSCRAMSHA1Plus, ChannelBinding{CBTLSServerEndPoint, endpointData}, "p=tls-server-end-point,,"},
	} {
		c, err := NewClient(tc.mech, "a=b,c", "pw", tc.cb)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := c.Start()
		if !strings.HasPrefix(string(out), tc.want+"n=a=3Db=2Cc,r=") {
			t.Errorf("%s: %q", tc.mech, out)
		}
	}
}

// TestClientHostileServer feeds the client bad server messages: each must
// be refused before any expensive or unsafe step.
func TestClientHostileServer(t *testing.T) {
	const cn = "clientnonce"
	ok := "r=" + cn + "srv,s=QSXCR+Q6sek8bf92,i=4096"
	for _, tc := range []struct {
		name, first string
	}{
		{"empty", ""},
		{"too long", ok + ",x=" + strings.Repeat("a", MaxMessageSize)},
		{"too many iterations", "r=" + cn + "srv,s=QSXCR+Q6sek8bf92,i=1000001"},
		{"huge iterations", "r=" + cn + "srv,s=QSXCR+Q6sek8bf92,i=99999999999999999999"},
		{"too few iterations", "r=" + cn + "srv,s=QSXCR+Q6sek8bf92,i=4095"},
		{"zero iterations", "r=" + cn + "srv,s=QSXCR+Q6sek8bf92,i=0"},
		{"leading zero", "r=" + cn + "srv,s=QSXCR+Q6sek8bf92,i=04096"},
		{"signed iterations", "r=" + cn + "srv,s=QSXCR+Q6sek8bf92,i=+4096"},
		{"negative iterations", "r=" + cn + "srv,s=QSXCR+Q6sek8bf92,i=-1"},
		{"no server nonce", "r=" + cn + ",s=QSXCR+Q6sek8bf92,i=4096"},
		{"other nonce", "r=otherclientnonce,s=QSXCR+Q6sek8bf92,i=4096"},
		{"nonce with space", "r=" + cn + " x,s=QSXCR+Q6sek8bf92,i=4096"},
		{"bad salt", "r=" + cn + "srv,s=QSXCR+Q6sek8bf9,i=4096"},
		{"empty salt", "r=" + cn + "srv,s=,i=4096"},
		{"mandatory extension", "m=x," + ok},
		{"wrong order", "s=QSXCR+Q6sek8bf92,r=" + cn + "srv,i=4096"},
		{"missing i", "r=" + cn + "srv,s=QSXCR+Q6sek8bf92"},
		{"bad extension", ok + ",zz"},
		{"invalid UTF-8", ok + ",x=\xff"},
	} {
		c, _ := NewClient(MechSCRAMSHA256, "user", "pencil", ChannelBinding{})
		c.(*scramClient).nonce = fixedNonce(cn)
		c.Start()
		if out, err := c.Next([]byte(tc.first)); err == nil {
			t.Errorf("%s: accepted, answered %q", tc.name, out)
		}
		if _, err := c.Next([]byte(ok)); err == nil {
			t.Errorf("%s: client continued after failure", tc.name)
		}
	}
}

func TestClientServerFinal(t *testing.T) {
	v := vectors[0]
	newClient := func() ClientMech {
		c, _ := NewClient(v.mech, "user", "pencil", ChannelBinding{})
		c.(*scramClient).nonce = fixedNonce(v.cnonce)
		c.Start()
		if _, err := c.Next([]byte(v.serverFirst)); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		name, final string
		is          error
	}{
		{"wrong signature", "v=rmF9pqV8S7suAoZWja4dJRkFsKQ", nil},
		{"flipped signature", "v=smF9pqV8S7suAoZWja4dJRkFsKQ=", ErrServerSignature},
		{"error", "e=invalid-proof", ErrServerFailure},
		{"missing", "", nil},
		{"garbage", "x=1", nil},
	} {
		if err := newClient().Verify([]byte(tc.final)); err == nil || (tc.is != nil && !errors.Is(err, tc.is)) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// Server-final as a challenge, then <success/> without data.
	c := newClient()
	if out, err := c.Next([]byte(v.serverFinal)); err != nil || len(out) != 0 {
		t.Fatalf("%q %v", out, err)
	}
	if err := c.Verify(nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify([]byte("v=AAAA")); err == nil {
		t.Error("conflicting v= with success accepted")
	}
	// Success before the exchange finished is refused.
	c, _ = NewClient(v.mech, "user", "pencil", ChannelBinding{})
	c.Start()
	if err := c.Verify(nil); !errors.Is(err, ErrSequence) {
		t.Errorf("early success: %v", err)
	}
	c, _ = NewClient(v.mech, "user", "pencil", ChannelBinding{})
	if _, err := c.Next([]byte(v.serverFirst)); !errors.Is(err, ErrSequence) {
		t.Errorf("Next before Start: %v", err)
	}
}
