package client

import (
	"context"
	"errors"
	"strconv"

	"github.com/parley-im/parley/stanza"
)

// nsSM is XEP-0198 stream management.
const nsSM = "urn:xmpp:sm:3"

// enableSM asks for stream management during negotiation (after binding).
func (c *Client) enableSM(feats *stanza.Element) error {
	if feats.Child("sm", nsSM) == nil {
		return errors.New("client: the server does not offer stream management")
	}
	if err := c.sendNegotiation(stanza.New("enable", nsSM)); err != nil {
		return err
	}
	el, err := c.nextElement()
	if err != nil {
		return err
	}
	if el.NS != nsSM || el.Name != "enabled" {
		return errors.New("client: stream management refused: <" + el.Name + "/>")
	}
	c.smOn = true
	c.ackWake = make(chan struct{})
	return nil
}

func (c *Client) handleSM(el *stanza.Element) error {
	switch el.Name {
	case "r":
		if c.cfg.NoAutoAck {
			return nil
		}
		h := strconv.FormatUint(uint64(c.smIn.Load()), 10)
		_ = c.write(func(dst []byte) []byte { return c.codec.appendElement(dst, stanza.New("a", nsSM).SetAttr("h", h)) })
	case "a":
		h, err := strconv.ParseUint(el.Attr("h"), 10, 32)
		if err != nil {
			return &protocolError{stanza.NewStreamError(stanza.StreamInvalidXML, "invalid h")}
		}
		c.smAcked.Store(uint32(h))
		c.ackMu.Lock()
		close(c.ackWake)
		c.ackWake = make(chan struct{})
		c.ackMu.Unlock()
	}
	return nil
}

// StreamManagement reports whether XEP-0198 is on for this session.
func (c *Client) StreamManagement() bool { return c.smOn }

// Sent returns how many stanzas this client has sent since stream
// management was enabled (modulo 2^32).
func (c *Client) Sent() uint32 {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.smOut
}

// Acked returns the server's last acknowledged count of this client's
// stanzas: the first Acked() stanzas sent are the server's responsibility.
func (c *Client) Acked() uint32 { return c.smAcked.Load() }

// Handled returns how many stanzas from the server this client has handled.
func (c *Client) Handled() uint32 { return c.smIn.Load() }

// RequestAck asks the server to acknowledge (<r/>); the answer updates Acked.
func (c *Client) RequestAck() error {
	if !c.smOn {
		return errors.New("client: stream management is not enabled")
	}
	return c.write(func(dst []byte) []byte { return c.codec.appendElement(dst, stanza.New("r", nsSM)) })
}

// WaitAcked waits until the server has acknowledged at least n stanzas, the
// stream ends, or ctx is done.
func (c *Client) WaitAcked(ctx context.Context, n uint32) error {
	for {
		c.ackMu.Lock()
		wake := c.ackWake
		c.ackMu.Unlock()
		if int32(c.smAcked.Load()-n) >= 0 {
			return nil
		}
		select {
		case <-wake:
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
