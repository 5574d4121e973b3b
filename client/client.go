package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

const (
	// readBufSize is the reader's buffer; stanzas larger than it simply
	// arrive over several reads.
	readBufSize = 4096
	// closeWait bounds how long Close waits for the server's
	// </stream:stream> before dropping the connection.
	closeWait = 2 * time.Second
	// maxPooledWriteBuf keeps the odd huge stanza's buffer out of the pool.
	maxPooledWriteBuf = 64 << 10
)

// nsPing is XEP-0199, which the reader answers by itself.
const nsPing = "urn:xmpp:ping"

var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Client is an authenticated XMPP session with a bound resource. Its
// methods are safe for concurrent use.
//
// One goroutine reads from the server: replies to IQ calls go to their
// callers, XMPP pings from the server are answered, everything else is
// handed to Incoming in order. That goroutine waits while Incoming is full,
// which is what keeps a slow application from making the client buffer
// without bound (the server then stops sending, and eventually drops a
// client that never reads). The flip side: an application that calls IQ
// must keep draining Incoming, or the reply can be stuck behind unread
// stanzas.
type Client struct {
	cfg   *resolved
	tr    transport
	codec codec
	jid   jid.JID // bound full JID

	// wmu serialises writes: an element goes out whole or not at all.
	// closed is set under wmu once our </stream:stream> is written (or
	// about to be), so nothing can follow it.
	wmu    sync.Mutex
	closed bool

	incoming  chan *stanza.Element
	done      chan struct{} // closed when the reader has ended
	closing   chan struct{} // closed by Close: stop delivering to Incoming
	closeOnce sync.Once
	closeReq  atomic.Bool

	// err is the reason the stream ended; written by the reader before
	// done is closed, so it may be read by anyone who has seen done closed.
	err error
	// writeErr is the first write failure; it closes the transport, and the
	// reader then reports it instead of the read error it provoked.
	errMu    sync.Mutex
	writeErr error

	mu      sync.Mutex
	pending map[string]pendingIQ

	// Stream management (XEP-0198). smOut is guarded by wmu; smIn is
	// written by the reader only; smAcked by the reader, read by anyone.
	smOn    bool
	smOut   uint32
	smIn    atomic.Uint32
	smAcked atomic.Uint32
	ackMu   sync.Mutex
	ackWake chan struct{} // closed and replaced on every <a/>
}

type pendingIQ struct {
	to    string // the request's to, normalised; "" for the own account
	reply chan *stanza.Element
}

// JID returns the full JID the server bound for this session.
func (c *Client) JID() jid.JID { return c.jid }

// Incoming delivers the stanzas the server sends (messages, presence, iqs
// that are not replies to IQ calls) in order. It is closed when the stream
// ends; Err then says why.
func (c *Client) Incoming() <-chan *stanza.Element { return c.incoming }

// Err returns nil while the stream is up, and the reason it ended once
// Incoming is closed: a *stanza.StreamError sent by the server, ErrClosed
// after Close, ErrServerClosed, or a network error.
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Recv returns the next incoming stanza, waiting for one until ctx is done.
// Once the stream has ended (and the buffered stanzas are read) it returns
// Err's error. It reads from the same channel as Incoming; use one or the
// other.
func (c *Client) Recv(ctx context.Context) (*stanza.Element, error) {
	select {
	case el, ok := <-c.incoming:
		if !ok {
			return nil, c.err
		}
		return el, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Send writes one top-level element (message, presence, iq). A top-level
// element with an empty namespace is sent in jabber:client; children must
// carry their own namespace (stanza.NSClient for <body/>), because an empty
// NS on a child means "no namespace". Send neither modifies nor keeps el.
func (c *Client) Send(el *stanza.Element) error {
	if el == nil || el.Name == "" {
		return errors.New("client: Send needs an element")
	}
	if el.NS == "" {
		el = el.ShallowCopy()
		el.NS = stanza.NSClient
	}
	counted := c.smOn && el.IsStanza()
	return c.writeLocked(func(dst []byte) []byte { return c.codec.appendElement(dst, el) }, false, counted)
}

// SendMessage sends a chat message with a body to a JID.
func (c *Client) SendMessage(to, body string) error {
	t, err := jid.Parse(to)
	if err != nil {
		return fmt.Errorf("client: SendMessage: %w", err)
	}
	m := stanza.New("message", stanza.NSClient).
		SetAttr("to", t.String()).
		SetAttr("type", "chat").
		SetAttr("id", NewID()).
		Append(stanza.New("body", stanza.NSClient).AppendText(body))
	return c.Send(m)
}

// SendPresence sends available presence without a recipient: the first
// one is the initial presence (RFC 6121 §4.2) that makes the server send
// contacts' presence and queued messages, later ones are updates.
func (c *Client) SendPresence() error {
	return c.Send(stanza.New("presence", stanza.NSClient))
}

// IQ sends an iq of type get or set and waits for its result or error
// reply, matched by id and sender as RFC 6120 §8.2.3 asks. An empty id is
// filled in (on a copy: iq is not modified). An error reply is returned
// together with its *stanza.Error. Cancelling ctx stops the wait, not the
// request.
func (c *Client) IQ(ctx context.Context, iq *stanza.Element) (*stanza.Element, error) {
	if iq == nil || iq.Name != "iq" || (iq.Type() != "get" && iq.Type() != "set") {
		return nil, errors.New("client: IQ needs an <iq/> of type get or set")
	}
	iq = iq.ShallowCopy()
	id := iq.ID()
	if id == "" {
		id = NewID()
		iq.SetAttr("id", id)
	}
	p := pendingIQ{to: normJID(iq.To()), reply: make(chan *stanza.Element, 1)}
	c.mu.Lock()
	if _, dup := c.pending[id]; dup {
		c.mu.Unlock()
		return nil, fmt.Errorf("client: an IQ with id %q is already waiting", id)
	}
	c.pending[id] = p
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	if err := c.Send(iq); err != nil {
		return nil, err
	}
	select {
	case r := <-p.reply:
		if r.Type() == "error" {
			return r, stanzaError(r)
		}
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, c.err
	}
}

// Close ends the stream: it sends </stream:stream>, waits briefly for the
// server to close its side (so that nothing it sent is lost to a reset),
// and closes the connection. Stanzas still arriving meanwhile are dropped.
// It returns nil if the stream had already ended, and is safe to call more
// than once.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.closeReq.Store(true)
		close(c.closing)
		select {
		case <-c.done:
			// Already over (the server closed or failed the stream).
			c.wmu.Lock()
			c.closed = true
			c.wmu.Unlock()
			return
		default:
		}
		err = c.writeLocked(func(dst []byte) []byte { return c.codec.appendClose(dst) }, true, false)
		if err == nil {
			t := time.NewTimer(closeWait)
			select {
			case <-c.done:
			case <-t.C:
			}
			t.Stop()
		}
		_ = c.tr.close()
		<-c.done
	})
	return err
}

func (c *Client) write(enc func([]byte) []byte) error {
	return c.writeLocked(enc, false, false)
}

// writeLocked encodes and writes under the write lock; last marks the
// stream's closing tag, after which nothing more may be written; counted
// marks a stanza that stream management counts.
func (c *Client) writeLocked(enc func([]byte) []byte, last, counted bool) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return ErrClosed
	}
	select {
	case <-c.done:
		return c.err
	default:
	}
	if last {
		c.closed = true
	}
	bp := writeBufs.Get().(*[]byte)
	buf := enc((*bp)[:0])
	_ = c.tr.setWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
	err := c.tr.write(buf)
	if cap(buf) <= maxPooledWriteBuf {
		*bp = buf[:0]
		writeBufs.Put(bp)
	}
	if err != nil {
		c.errMu.Lock()
		if c.writeErr == nil {
			c.writeErr = fmt.Errorf("client: write: %w", err)
		}
		c.errMu.Unlock()
		// Part of an element may be out: the stream is lost. Closing the
		// transport ends the reader, which reports writeErr.
		_ = c.tr.close()
		return err
	}
	if counted {
		c.smOut++
	}
	return nil
}

// readLoop is the reader goroutine started by Dial.
func (c *Client) readLoop() {
	err := c.readStanzas()
	c.finish(err)
}

// errServerClose is readStanzas' way of saying "</stream:stream> arrived".
var errServerClose = errors.New("server close")

func (c *Client) readStanzas() error {
	buf := make([]byte, readBufSize)
	for {
		for {
			ev, ok, err := c.codec.next()
			if err != nil {
				return &protocolError{stanza.AsStreamError(err)}
			}
			if !ok {
				break
			}
			if err := c.handle(ev); err != nil {
				return err
			}
		}
		p, err := c.tr.read(buf)
		if err != nil {
			return err
		}
		if err := c.codec.feed(p); err != nil {
			return &protocolError{stanza.AsStreamError(err)}
		}
	}
}

func (c *Client) handle(ev event) error {
	switch ev.kind {
	case eventClose:
		return errServerClose
	case eventOpen:
		return &protocolError{stanza.NewStreamError(stanza.StreamNotWellFormed, "unexpected stream header")}
	}
	el := ev.element
	if isStreamError(el) {
		return parseStreamError(el)
	}
	if el.NS == nsSM {
		return c.handleSM(el)
	}
	if el.IsStanza() {
		// Handled once this function returns (given to the application
		// or answered here): counted for the server's <r/>.
		defer c.smIn.Add(1)
	}
	if el.Name == "iq" && el.NS == stanza.NSClient {
		switch el.Type() {
		case "result", "error":
			if c.replied(el) {
				return nil
			}
		case "get":
			if el.Child("ping", nsPing) != nil {
				// XEP-0199: servers ping to check liveness; answering is
				// every client's duty and needs nothing from the app.
				_ = c.Send(stanza.Result(el).SetAttr("from", ""))
				return nil
			}
		}
	}
	select {
	case c.incoming <- el:
	case <-c.closing:
		// Closing: nobody is going to read it.
	}
	return nil
}

// replied hands an iq result or error to the IQ call waiting for it. The
// sender must be whom the request went to (or, for a request without to,
// the server or the own account), so that another entity cannot answer in
// its place.
func (c *Client) replied(el *stanza.Element) bool {
	id := el.ID()
	c.mu.Lock()
	p, ok := c.pending[id]
	if ok && !c.fromMatches(p.to, normJID(el.From())) {
		ok = false
	}
	if ok {
		delete(c.pending, id)
	}
	c.mu.Unlock()
	if ok {
		p.reply <- el // buffered, and only one send per id
	}
	return ok
}

func (c *Client) fromMatches(to, from string) bool {
	if to == from {
		return true
	}
	if to == "" || to == c.jid.Bare().String() {
		return from == "" || from == c.jid.Domain() || from == c.jid.Bare().String() || from == c.jid.String()
	}
	return false
}

// protocolError is a fault this side found in the server's stream (not
// well-formed XML, a limit exceeded, a second header): the server is told
// with a stream error of our own before we leave.
type protocolError struct{ se *stanza.StreamError }

func (e *protocolError) Error() string {
	return "client: invalid stream from the server: " + e.se.Error()
}
func (e *protocolError) Unwrap() error { return e.se }

// finish records why the stream ended and releases everything.
func (c *Client) finish(err error) {
	var (
		se *stanza.StreamError
		pe *protocolError
	)
	c.errMu.Lock()
	werr := c.writeErr
	c.errMu.Unlock()
	switch {
	case errors.As(err, &pe):
		c.sendFinal(pe.se)
	case errors.As(err, &se):
		// The server's stream error wins over anything else; RFC 6120
		// §4.9.1.1 has us answer it with our closing tag.
		c.sendFinal(nil)
	case errors.Is(err, errServerClose):
		err = ErrServerClosed
		if c.closeReq.Load() {
			err = ErrClosed
		} else {
			// RFC 6120 §4.4: answer the server's close with ours.
			c.sendFinal(nil)
		}
	case c.closeReq.Load():
		err = ErrClosed
	case werr != nil:
		err = werr
	case errors.Is(err, io.EOF):
		err = fmt.Errorf("client: connection closed by the server without closing the stream: %w", io.ErrUnexpectedEOF)
	default:
		err = fmt.Errorf("client: read: %w", err)
	}
	c.err = err
	_ = c.tr.close()
	// done first: whoever sees Incoming closed (Recv) may call Err or
	// Close at once, and both go by done.
	close(c.done)
	close(c.incoming)
}

// sendFinal writes our closing tag, preceded by a stream error when se is
// set. Best effort: the connection is dropped right after.
func (c *Client) sendFinal(se *stanza.StreamError) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	var buf []byte
	if se != nil {
		buf = c.codec.appendElement(buf, se.Element())
	}
	buf = c.codec.appendClose(buf)
	_ = c.tr.setWriteDeadline(time.Now().Add(time.Second))
	_ = c.tr.write(buf)
}
