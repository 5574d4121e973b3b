package xmlstream

import (
	"errors"
	"fmt"

	"github.com/parley-im/parley/stanza"
)

// Storage is the server's storage format for stanzas (the durable queue,
// vCards): self-contained XML with every namespace declared, owned by the
// server and independent of what any client speaks. Its zero value uses
// DefaultLimits.
type Storage struct {
	Limits Limits
}

// NewStorage returns a Storage accepting stored stanzas of up to maxStanza
// bytes plus room for what the server stamps on them (stanza ids, delay).
func NewStorage(maxStanza int) Storage {
	lim := DefaultLimits()
	if maxStanza > 0 {
		lim.MaxStanzaBytes = maxStanza + 4096
	}
	return Storage{Limits: lim}
}

// Marshal writes el as self-contained XML.
func (Storage) Marshal(el *stanza.Element) []byte { return AppendElement(nil, el, "") }

// storageHeader gives a stored element the stream context it was read in.
var storageHeader = []byte(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`)

// Unmarshal reads the first element of b.
func (s Storage) Unmarshal(b []byte) (*stanza.Element, error) {
	d := NewDecoder(s.Limits)
	// Trailing input would keep the decoder busy; its parsing state is
	// better back in the pool than left to the garbage collector.
	defer d.detach()
	if err := d.Feed(storageHeader); err != nil {
		return nil, err
	}
	if err := d.Feed(b); err != nil {
		return nil, fmt.Errorf("decode stored stanza: %w", err)
	}
	for {
		tok, ok, err := d.Next()
		if err != nil {
			return nil, fmt.Errorf("decode stored stanza: %w", err)
		}
		if !ok {
			return nil, errors.New("decode stored stanza: truncated")
		}
		if tok.Kind == KindElement {
			return tok.Element, nil
		}
	}
}
