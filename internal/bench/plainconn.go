package bench

import (
	"bytes"
	"errors"
	"net"
	"regexp"
)

// plainConn hides an optional STARTTLS offer from the client library, so
// that a session stays in the clear on a server that allows it (the plain
// mode). It buffers what the server sends until the end of the first
// <stream:features/>, removes a <starttls/> without <required/> from it and
// then passes everything through untouched. A required STARTTLS is left in
// place and reported: such a server cannot be measured in the clear.
type plainConn struct {
	net.Conn
	done bool   // first features seen: pass-through from now on
	buf  []byte // bytes read while looking for the end of the features
	out  []byte // filtered bytes not yet returned
}

// maxPreFeatures bounds the bytes held while looking for the features: a
// stream header and features are a few hundred bytes on every server.
const maxPreFeatures = 64 << 10

var (
	featuresEnd = regexp.MustCompile(`</([A-Za-z0-9_.-]+:)?features>|<([A-Za-z0-9_.-]+:)?features[^>]*/>`)
	starttlsEl  = regexp.MustCompile(`<starttls\s+xmlns=['"]urn:ietf:params:xml:ns:xmpp-tls['"]\s*(/>|>\s*</starttls>)`)
	// ErrStartTLSRequired is returned in plain mode by a server that
	// requires STARTTLS.
	ErrStartTLSRequired = errors.New("bench: the server requires STARTTLS; it cannot be measured in plain mode")
)

func (c *plainConn) Read(p []byte) (int, error) {
	for !c.done {
		var chunk [4096]byte
		n, err := c.Conn.Read(chunk[:])
		c.buf = append(c.buf, chunk[:n]...)
		if loc := featuresEnd.FindIndex(c.buf); loc != nil {
			head := starttlsEl.ReplaceAll(c.buf[:loc[1]], nil)
			if bytes.Contains(head, []byte("urn:ietf:params:xml:ns:xmpp-tls")) {
				return 0, ErrStartTLSRequired
			}
			c.out = append(head, c.buf[loc[1]:]...)
			c.buf, c.done = nil, true
			break
		}
		if len(c.buf) > maxPreFeatures {
			c.out, c.buf, c.done = c.buf, nil, true
			break
		}
		if err != nil {
			if len(c.buf) > 0 {
				c.out, c.buf, c.done = c.buf, nil, true
				break
			}
			return 0, err
		}
	}
	if len(c.out) > 0 {
		n := copy(p, c.out)
		c.out = c.out[n:]
		if len(c.out) == 0 {
			c.out = nil // let the buffer go: an idle session keeps nothing
		}
		return n, nil
	}
	return c.Conn.Read(p)
}
