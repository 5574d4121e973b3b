package jid

import "testing"

var sinkJID JID

func BenchmarkParse(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"bare", "juliet@example.com"},
		{"full", "juliet@example.com/balcony-4f2a9c"},
		{"domain", "conference.example.com"},
		{"uppercase", "Juliet@Example.COM/Balcony"},
		{"unicode", "josé@example.com/café"},
		{"idn", "juliet@xn--mnchen-3ya.de/balcony"},
		{"ipv6", "juliet@[2001:db8::1]/balcony"},
		{"invalid", "ju<liet@example.com"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkJID, _ = Parse(bc.in)
			}
		})
	}
}

func BenchmarkBareString(b *testing.B) {
	j := MustParse("juliet@example.com/balcony")
	b.ReportAllocs()
	var s string
	for b.Loop() {
		s = j.BareString()
	}
	_ = s
}
