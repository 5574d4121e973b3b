package xmlstream

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/parley-im/parley/stanza"
)

// State that idle decoders would otherwise each carry a copy of. Everything
// here is read-only once published, which is what makes sharing it safe.

// streamScope is what a stream header leaves in force until the stream
// ends: the prefix it was written with, which </stream:stream> must repeat,
// and its namespace declarations, which every top-level element inherits.
type streamScope struct {
	prefix string
	ns     []binding // each prefix at most once; never appended to
}

// noScope is the scope before the stream header, and all along in framed
// mode, where there is no header element.
var noScope = &streamScope{}

// commonScopes are the headers nearly every peer sends (client, server,
// server with dialback), in whatever attribute order. The slices are full
// (len == cap), so even an append by mistake would copy.
var commonScopes = [...]*streamScope{
	{prefix: "stream", ns: []binding{{"", stanza.NSClient}, {"stream", stanza.NSStream}}},
	{prefix: "stream", ns: []binding{{"", stanza.NSServer}, {"stream", stanza.NSStream}}},
	{prefix: "stream", ns: []binding{{"", stanza.NSServer}, {"stream", stanza.NSStream}, {"db", "jabber:server:dialback"}}},
}

// newScope returns the scope of a stream header written with prefix and
// declaring ns, which it does not keep.
func newScope(prefix string, ns []binding) *streamScope {
	for _, s := range commonScopes {
		if s.prefix == prefix && sameBindings(s.ns, ns) {
			return s
		}
	}
	s := &streamScope{prefix: prefix, ns: make([]binding, len(ns))}
	for i, b := range ns {
		// Own copies: the decoded values may share an arena chunk with the
		// header's other attributes, which the stream would then pin.
		s.ns[i] = binding{prefix: internString(b.prefix), uri: internString(b.uri)}
	}
	return s
}

// sameBindings reports whether a and b bind the same prefixes to the same
// namespaces. Neither binds a prefix twice (one element cannot declare a
// prefix twice), so equal lengths and inclusion suffice.
func sameBindings(a, b []binding) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range b {
		found := false
		for _, y := range a {
			if x == y {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// internString returns s shared if it is a known word, else a copy of it.
func internString(s string) string {
	if t, ok := internTab[s]; ok {
		return t
	}
	return strings.Clone(s)
}

// A server builds the decoders of one listener from one configuration, so
// decoders point to a shared copy of each distinct Limits rather than carry
// 40 bytes of it each. The first few distinct values seen are kept for the
// life of the process; any beyond (only tests make many) get a private copy.
const maxSharedLimits = 8

var (
	sharedLimitsMu  sync.Mutex // serialises additions
	sharedLimitsTab atomic.Pointer[[]*Limits]
)

// sharedLimits returns a read-only copy of l with defaults filled in.
func sharedLimits(l Limits) *Limits {
	l = l.withDefaults()
	if p := lookupLimits(l); p != nil {
		return p
	}
	sharedLimitsMu.Lock()
	defer sharedLimitsMu.Unlock()
	if p := lookupLimits(l); p != nil {
		return p
	}
	var tab []*Limits
	if t := sharedLimitsTab.Load(); t != nil {
		tab = *t
	}
	p := &l
	if len(tab) < maxSharedLimits {
		// Copy on write: readers hold the old table without locking.
		tab = append(tab[:len(tab):len(tab)], p)
		sharedLimitsTab.Store(&tab)
	}
	return p
}

func lookupLimits(l Limits) *Limits {
	if t := sharedLimitsTab.Load(); t != nil {
		for _, p := range *t {
			if *p == l {
				return p
			}
		}
	}
	return nil
}
