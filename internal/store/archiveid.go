package store

import (
	"encoding/binary"
	"sync/atomic"
	"time"
)

// ArchivePosLen is the length of an ArchivePos.
const ArchivePosLen = 20

// ArchivePos is a position in an archive: the archive time as big-endian
// Unix seconds with the sign bit flipped (so byte order is time order,
// before 1970 too), then big-endian nanoseconds (4 bytes), then an 8-byte
// big-endian insertion sequence that orders messages with equal times.
// Byte order of positions is archive order. A backend may key messages by
// it (the Pebble store does), and an archive id made by NewArchiveID
// carries one.
type ArchivePos [ArchivePosLen]byte

// MakeArchivePos returns the position of time t with sequence seq.
func MakeArchivePos(t time.Time, seq uint64) ArchivePos {
	var p ArchivePos
	binary.BigEndian.PutUint64(p[0:], uint64(t.Unix())^(1<<63))
	binary.BigEndian.PutUint32(p[8:], uint32(t.Nanosecond()))
	binary.BigEndian.PutUint64(p[12:], seq)
	return p
}

// Time returns the position's time, in UTC.
func (p ArchivePos) Time() time.Time {
	sec := int64(binary.BigEndian.Uint64(p[0:]) ^ (1 << 63))
	return time.Unix(sec, int64(binary.BigEndian.Uint32(p[8:]))).UTC()
}

// Seq returns the position's insertion sequence.
func (p ArchivePos) Seq() uint64 { return binary.BigEndian.Uint64(p[12:]) }

// maxIDSeconds bounds the time of an id's position: the end of year 9999,
// the last a XEP-0082 DateTime can write.
const maxIDSeconds = 253402300800

// validID reports whether p may be carried by an archive id: a time from
// the Unix epoch (the first digit of the id is then g to v, so no hex or
// decimal string is an archive id) to the end of year 9999, with
// nanoseconds below one second. Those are exactly the positions
// MakeArchivePos makes for such times.
func (p ArchivePos) validID() bool {
	sec := binary.BigEndian.Uint64(p[0:]) ^ (1 << 63)
	return sec < maxIDSeconds && binary.BigEndian.Uint32(p[8:]) < 1e9
}

// archiveSeq issues insertion sequences (NextArchiveSeq). It starts at the
// wall clock in nanoseconds and counts up by one per call, so it stays
// below the clock of any later process (no process takes one per
// nanosecond): equal-time positions keep their insertion order across
// restarts without a stored counter, and the ids NewArchiveID makes stay
// unique, unless the clock is set back between two runs. It is shared by
// every archive in the process, which costs nothing.
var archiveSeq atomic.Uint64

func init() { archiveSeq.Store(uint64(time.Now().UnixNano())) }

// NextArchiveSeq returns the next insertion sequence of the process.
func NextArchiveSeq() uint64 { return archiveSeq.Add(1) }

// archiveIDLen is the length of an id made by NewArchiveID: 160 bits in
// 5-bit digits, which needs no padding.
const archiveIDLen = ArchivePosLen * 8 / 5

// archiveIDAlphabet is base32hex (RFC 4648 §7) in lower case: digits sort
// in the order of their values, so ids sort as their positions do.
const archiveIDAlphabet = "0123456789abcdefghijklmnopqrstuv"

// archiveIDValue maps a byte to its digit value, or 0xff.
var archiveIDValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := range len(archiveIDAlphabet) {
		t[archiveIDAlphabet[i]] = byte(i)
	}
	return t
}()

// NewArchiveID returns a new archive id (a XEP-0359 stanza-id) for a
// message archived at time t: the position of t with the next insertion
// sequence (NextArchiveSeq), as 32 characters of unpadded lower-case
// base32hex. Ids are unique in the process and across restarts (see
// NextArchiveSeq), and ids made later with a later or equal t sort later
// as strings. An archive that keys messages by position can find the
// message from its id without an id index (ParseArchiveID), for any t from
// 1970 to 9999; an id for another t is still unique but does not parse.
//
// The id reveals the archive time to the nanosecond, as the archive ids of
// other servers (ejabberd's are its microsecond timestamps) do; it is in
// the archived message anyway (<delay/> of every MAM result).
func NewArchiveID(t time.Time) string {
	return FormatArchiveID(MakeArchivePos(t, NextArchiveSeq()))
}

// FormatArchiveID returns the archive id that carries p.
func FormatArchiveID(p ArchivePos) string {
	var b [archiveIDLen]byte
	for g := range ArchivePosLen / 5 { // 5 bytes → 8 digits
		s := p[g*5 : g*5+5]
		v := uint64(s[0])<<32 | uint64(s[1])<<24 | uint64(s[2])<<16 | uint64(s[3])<<8 | uint64(s[4])
		for i := 7; i >= 0; i-- {
			b[g*8+i] = archiveIDAlphabet[v&31]
			v >>= 5
		}
	}
	return string(b[:])
}

// ParseArchiveID returns the position an id made by NewArchiveID (or
// FormatArchiveID) carries. It accepts exactly those ids: 32 characters
// of lower-case base32hex whose position is one MakeArchivePos makes for
// a time from 1970 to the end of 9999, so that FormatArchiveID(p) == id and
// MakeArchivePos(p.Time(), p.Seq()) == p whenever ok. Any other string (a
// UUID, with or without dashes, an id of a client or of an older version)
// is not ok: an archive finds such ids through an id index.
func ParseArchiveID(id string) (p ArchivePos, ok bool) {
	if len(id) != archiveIDLen {
		return ArchivePos{}, false
	}
	for g := range ArchivePosLen / 5 {
		var v uint64
		for i := range 8 {
			d := archiveIDValue[id[g*8+i]]
			if d == 0xff {
				return ArchivePos{}, false
			}
			v = v<<5 | uint64(d)
		}
		p[g*5], p[g*5+1], p[g*5+2], p[g*5+3], p[g*5+4] = byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	}
	if !p.validID() {
		return ArchivePos{}, false
	}
	return p, true
}

// ArchiveTime is the time to archive a message with id under: the time
// the id carries if it is one NewArchiveID made (the backend then keys the
// message by that position and needs no id index entry for it), else now.
func ArchiveTime(id string, now time.Time) time.Time {
	if p, ok := ParseArchiveID(id); ok {
		return p.Time()
	}
	return now
}
