package pebble

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Key layout. Every key starts with a short ASCII tag and a slash, so one
// aggregate's keys form a single contiguous range that can be scanned or
// range-deleted, and a raw dump of the database stays readable:
//
//	m/layout                        layout version of this database (value: one byte)
//	a/<user>                        account (value: encodeAccount)
//	r/<user>\x00<contact>           roster item (value: encodeRosterItem)
//	rv/<user>                       roster version (value: encodeUint)
//	q/<user>\x00<seq u64 BE>        queue item (value: encodeQueueItem)
//	qh/<user>                       highest queue seq ever deleted, raised in
//	                                every batch that deletes queue items, so
//	                                seqs are never reused (value: encodeUint)
//	v/<user>                        vCard (value: encodeVCard)
//
// <user> is the normalised localpart and <contact> the normalised bare JID,
// both as raw bytes. Neither may contain \x00: the NUL after <user> is what
// makes "all roster items / queue items of this user" an exact prefix (user
// "ann" must not see the items of "ann\x00x"), and a NUL can never occur in a
// valid localpart or JID anyway. Accounts, roster versions, vCards and qh
// have no terminator because they are point keys; scans over "a/" only ever
// read whole usernames.
//
// Tags never prefix one another at the slash ("r/" vs "rv/", "q/" vs "qh/"),
// so the ranges do not overlap. Queue sequence numbers are big-endian so that
// byte order is numeric order: the last key under a user's queue prefix is
// the highest seq, and Pending is a plain forward scan.
const (
	tagMeta       = "m/"
	tagAccount    = "a/"
	tagRoster     = "r/"
	tagRosterVer  = "rv/"
	tagQueue      = "q/"
	tagQueueHigh  = "qh/"
	tagVCard      = "v/"
	keyLayout     = tagMeta + "layout"
	layoutVersion = 2
	// minLayoutVersion is the oldest layout this build opens; it raises
	// the marker of an older one to layoutVersion. Layout 2 added the
	// shared archive values (archive.go), which a layout-1 build would
	// misread.
	minLayoutVersion = 1
)

// sep ends <user> inside composite keys.
const sep = 0x00

// prefixEnd returns the smallest key greater than every key starting with
// tag: the tag's trailing '/' bumped to '0'.
func prefixEnd(tag string) []byte {
	b := []byte(tag)
	b[len(b)-1]++
	return b
}

func validName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalidName, kind)
	}
	if strings.IndexByte(name, sep) >= 0 {
		return fmt.Errorf("%w: %s %q contains NUL", ErrInvalidName, kind, name)
	}
	return nil
}

func pointKey(tag, user string) []byte {
	k := make([]byte, 0, len(tag)+len(user))
	k = append(k, tag...)
	return append(k, user...)
}

// userPrefix returns tag+user+NUL, the prefix of all composite keys of user,
// and the exclusive upper bound of that range (the NUL bumped to 0x01).
func userPrefix(tag, user string) (lo, hi []byte) {
	lo = make([]byte, 0, len(tag)+len(user)+1)
	lo = append(lo, tag...)
	lo = append(lo, user...)
	lo = append(lo, sep)
	hi = append([]byte(nil), lo...)
	hi[len(hi)-1] = sep + 1
	return lo, hi
}

func rosterKey(user, contact string) []byte {
	k := make([]byte, 0, len(tagRoster)+len(user)+1+len(contact))
	k = append(k, tagRoster...)
	k = append(k, user...)
	k = append(k, sep)
	return append(k, contact...)
}

// appendQueueKey appends q/<user>\x00<seq> to dst (the hot path reuses dst).
func appendQueueKey(dst []byte, user string, seq uint64) []byte {
	dst = append(dst, tagQueue...)
	dst = append(dst, user...)
	dst = append(dst, sep)
	return binary.BigEndian.AppendUint64(dst, seq)
}

// parseQueueKey splits a q/ key into user and seq.
func parseQueueKey(k []byte) (user string, seq uint64, ok bool) {
	if len(k) < len(tagQueue)+1+8 || string(k[:len(tagQueue)]) != tagQueue || k[len(k)-9] != sep {
		return "", 0, false
	}
	return string(k[len(tagQueue) : len(k)-9]), binary.BigEndian.Uint64(k[len(k)-8:]), true
}
