package pebble

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/parley-im/parley/internal/store"
)

// Value encoding. Every value starts with a format byte so the layout of one
// kind of value can change later without a migration of the whole database:
// a decoder that meets an unknown format fails loudly instead of guessing.
// Fields are hand-written with encoding/binary (uvarint lengths, varint
// times) because queue items are on the hot path and gob's per-value type
// descriptors would dominate a 200-byte stanza.
//
// A time is varint(Unix seconds) followed by uvarint(nanoseconds), which
// covers every time.Time a caller can build, including the zero time, and
// decodes to UTC.
const formatV1 = 1

var errCorrupt = errors.New("corrupt value")

func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendString(b []byte, v string) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// decoder reads the fields appended above; the first error sticks so that
// decode functions can read every field and check once.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	if nsec >= 1e9 {
		d.fail()
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// bytes returns a copy: decoded values outlive the pebble buffer they came from.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := append([]byte(nil), d.b[:n]...)
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

func (d *decoder) version() {
	if v := d.byte(); d.err == nil && v != formatV1 {
		d.err = fmt.Errorf("unsupported value format %d", v)
		d.b = nil
	}
}

// done reports the sticky error, or errCorrupt if bytes are left over.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = errCorrupt
	}
	return d.err
}

// Account: format, created, SCRAM-SHA-1, SCRAM-SHA-256. The username is the key.
func appendSCRAM(b []byte, s store.SCRAM) []byte {
	b = appendBytes(b, s.Salt)
	b = binary.AppendUvarint(b, uint64(max(s.Iterations, 0)))
	b = appendBytes(b, s.StoredKey)
	return appendBytes(b, s.ServerKey)
}

func (d *decoder) scram() store.SCRAM {
	var s store.SCRAM
	s.Salt = d.bytes()
	s.Iterations = int(d.uvarint())
	s.StoredKey = d.bytes()
	s.ServerKey = d.bytes()
	return s
}

func encodeAccount(a store.Account) []byte {
	b := make([]byte, 0, 16+len(a.SHA1.Salt)+len(a.SHA1.StoredKey)+len(a.SHA1.ServerKey)+
		len(a.SHA256.Salt)+len(a.SHA256.StoredKey)+len(a.SHA256.ServerKey)+24)
	b = append(b, formatV1)
	b = appendTime(b, a.Created)
	b = appendSCRAM(b, a.SHA1)
	return appendSCRAM(b, a.SHA256)
}

func decodeAccount(username string, v []byte) (store.Account, error) {
	d := decoder{b: v}
	d.version()
	a := store.Account{Username: username}
	a.Created = d.time()
	a.SHA1 = d.scram()
	a.SHA256 = d.scram()
	if err := d.done(); err != nil {
		return store.Account{}, fmt.Errorf("decode account %q: %w", username, err)
	}
	return a, nil
}

// Roster item: format, flags, subscription, name, groups. The JID is the key.
const (
	flagAskOut = 1 << iota
	flagPendingIn
	flagApproved
	flagInRoster
)

// subscriptions maps the stored byte to the subscription string; "" is kept
// distinct from "none" so that what a caller wrote is what it reads back.
var subscriptions = [...]string{"", store.SubNone, store.SubTo, store.SubFrom, store.SubBoth}

func subscriptionCode(s string) (byte, bool) {
	for i, v := range subscriptions {
		if v == s {
			return byte(i), true
		}
	}
	return 0, false
}

func encodeRosterItem(it store.RosterItem) ([]byte, error) {
	sub, ok := subscriptionCode(it.Subscription)
	if !ok {
		return nil, fmt.Errorf("roster item %q: unknown subscription %q", it.JID, it.Subscription)
	}
	var flags byte
	if it.AskOut {
		flags |= flagAskOut
	}
	if it.PendingIn {
		flags |= flagPendingIn
	}
	if it.Approved {
		flags |= flagApproved
	}
	if it.InRoster {
		flags |= flagInRoster
	}
	b := make([]byte, 0, 8+len(it.Name)+16*len(it.Groups))
	b = append(b, formatV1, flags, sub)
	b = appendString(b, it.Name)
	b = binary.AppendUvarint(b, uint64(len(it.Groups)))
	for _, g := range it.Groups {
		b = appendString(b, g)
	}
	return b, nil
}

func decodeRosterItem(contact string, v []byte) (store.RosterItem, error) {
	d := decoder{b: v}
	d.version()
	it := store.RosterItem{JID: contact}
	flags := d.byte()
	sub := d.byte()
	if int(sub) < len(subscriptions) {
		it.Subscription = subscriptions[sub]
	} else {
		d.fail()
	}
	it.AskOut = flags&flagAskOut != 0
	it.PendingIn = flags&flagPendingIn != 0
	it.Approved = flags&flagApproved != 0
	it.InRoster = flags&flagInRoster != 0
	it.Name = d.string()
	n := d.uvarint()
	if n > uint64(len(d.b)) { // each group takes at least one byte
		d.fail()
	}
	if n > 0 && d.err == nil {
		it.Groups = make([]string, 0, n)
		for range n {
			it.Groups = append(it.Groups, d.string())
		}
	}
	if err := d.done(); err != nil {
		return store.RosterItem{}, fmt.Errorf("decode roster item %q: %w", contact, err)
	}
	return it, nil
}

// Counters (roster version, queue high-water mark): format, uvarint.
func encodeUint(v uint64) []byte {
	return binary.AppendUvarint([]byte{formatV1}, v)
}

func decodeUint(what string, v []byte) (uint64, error) {
	d := decoder{b: v}
	d.version()
	n := d.uvarint()
	if err := d.done(); err != nil {
		return 0, fmt.Errorf("decode %s: %w", what, err)
	}
	return n, nil
}

// Queue item: format, expires, stored, stanza (the rest of the value, no
// length). Expires comes first so Expire can decide without decoding the
// rest. A zero expires means "never expires" (see Store.Enqueue).
func appendQueueItem(b []byte, stored, expires time.Time, stanza []byte) []byte {
	b = append(b, formatV1)
	b = appendTime(b, expires)
	b = appendTime(b, stored)
	return append(b, stanza...)
}

// decodeQueueExpires reads only the expiry of a queue item.
func decodeQueueExpires(v []byte) (time.Time, error) {
	d := decoder{b: v}
	d.version()
	t := d.time()
	return t, d.err
}

func decodeQueueItem(seq uint64, v []byte) (store.QueueItem, error) {
	d := decoder{b: v}
	d.version()
	it := store.QueueItem{Seq: seq}
	it.Expires = d.time()
	it.Stored = d.time()
	if d.err != nil {
		return store.QueueItem{}, fmt.Errorf("decode queue item %d: %w", seq, d.err)
	}
	it.Stanza = append([]byte(nil), d.b...)
	return it, nil
}

// vCard: format, the element's bytes (the rest of the value).
func encodeVCard(v []byte) []byte {
	return append([]byte{formatV1}, v...)
}

func decodeVCard(v []byte) ([]byte, error) {
	if len(v) == 0 || v[0] != formatV1 {
		return nil, fmt.Errorf("decode vcard: %w", errCorrupt)
	}
	return append([]byte{}, v[1:]...), nil
}
