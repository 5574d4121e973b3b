package store

import (
	"encoding/base32"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

var idTimes = []time.Time{
	time.Unix(-1<<40, 0), time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(-1, 999_999_999),
	time.Unix(0, 0), time.Unix(0, 1), time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
	time.Date(2025, 1, 2, 3, 4, 5, 7, time.UTC), time.Date(2025, 1, 2, 3, 4, 6, 0, time.UTC), time.Unix(1<<40, 0),
}

func TestArchivePos(t *testing.T) {
	var prev ArchivePos
	for i, tm := range idTimes {
		p := MakeArchivePos(tm, 7)
		if !p.Time().Equal(tm) || p.Seq() != 7 || p.Time().Location() != time.UTC {
			t.Fatalf("pos of %v: %x decodes to %v, seq %d", tm, p, p.Time(), p.Seq())
		}
		if i > 0 && string(prev[:]) >= string(p[:]) {
			t.Fatalf("pos of %v does not sort after the one of %v", tm, idTimes[i-1])
		}
		prev = p
	}
	// Equal times order by sequence.
	a, b := MakeArchivePos(idTimes[4], 1), MakeArchivePos(idTimes[4], 2)
	if string(a[:]) >= string(b[:]) {
		t.Fatalf("sequence 1 does not sort before 2")
	}
	// A local time and its UTC twin are the same position.
	loc := time.FixedZone("x", 3600)
	if MakeArchivePos(idTimes[5].In(loc), 1) != MakeArchivePos(idTimes[5], 1) {
		t.Fatalf("position depends on the location")
	}
}

func TestArchiveIDRoundTrip(t *testing.T) {
	for _, tm := range append(slices.Clone(idTimes), time.Now()) {
		id := NewArchiveID(tm)
		if len(id) != 32 || strings.Trim(id, archiveIDAlphabet) != "" {
			t.Fatalf("NewArchiveID(%v) = %q", tm, id)
		}
		p, ok := ParseArchiveID(id)
		if tm.Before(time.Unix(0, 0)) || tm.Year() > 9999 {
			// Unique, but not an id that carries its position.
			if ok {
				t.Fatalf("ParseArchiveID(%q) of %v before 1970 = %x, true", id, tm, p)
			}
			continue
		}
		if !ok || !p.Time().Equal(tm) {
			t.Fatalf("ParseArchiveID(%q) = %v (%x), %v; want %v", id, p.Time(), p, ok, tm)
		}
		if FormatArchiveID(p) != id {
			t.Fatalf("FormatArchiveID(ParseArchiveID(%q)) = %q", id, FormatArchiveID(p))
		}
		// The codec is base32hex (RFC 4648) in lower case, unpadded.
		std := base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(p[:])
		if strings.ToLower(std) != id {
			t.Fatalf("id %q is not base32hex of %x (%q)", id, p, std)
		}
	}
	// Extremes of the byte space that are positions of ids.
	for _, p := range []ArchivePos{
		MakeArchivePos(time.Unix(0, 0), 0),
		MakeArchivePos(time.Unix(0, 999_999_999), math.MaxUint64),
		MakeArchivePos(time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC), math.MaxUint64),
	} {
		if q, ok := ParseArchiveID(FormatArchiveID(p)); !ok || q != p {
			t.Fatalf("round trip of %x: %x, %v", p, q, ok)
		}
	}
}

func TestArchiveIDOrder(t *testing.T) {
	// Ids made later sort later: by time, then by sequence for equal
	// times (as for every id of one clock reading).
	var ids []string
	for _, tm := range idTimes {
		for range 300 {
			ids = append(ids, NewArchiveID(tm))
		}
	}
	for i := 1; i < len(ids); i++ {
		if ids[i-1] >= ids[i] {
			t.Fatalf("id %d %q does not sort after id %d %q", i, ids[i], i-1, ids[i-1])
		}
	}
}

func TestParseArchiveIDRejects(t *testing.T) {
	good := NewArchiveID(time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC))
	if _, ok := ParseArchiveID(good); !ok || strings.ToUpper(good) == good {
		t.Fatalf("test id %q", good)
	}
	tooManyNanos := MakeArchivePos(time.Unix(5, 0), 1)
	tooManyNanos[8], tooManyNanos[9], tooManyNanos[10], tooManyNanos[11] = 0x3b, 0x9a, 0xca, 0x00 // 1e9
	hugeSeconds := MakeArchivePos(time.Unix(0, 0), 1)
	hugeSeconds[0] = 0xff // about 2^63 seconds: far past year 9999
	for _, id := range []string{
		"",
		"6ba7b810-9dad-11d1-80b4-00c04fd430c8", // a UUID
		"6ba7b8109dad11d180b400c04fd430c8",     // the same without dashes: 32 digits of the alphabet, but hex
		"f47ac10b58cc4372a5670e02b2c3d479",
		"ffffffffffffffffffffffffffffffff",
		"99999999999999999999999999999999",
		"sid-1",
		good[:31],
		good + "0",
		strings.ToUpper(good),       // base32hex, but not lower case
		good[:31] + "w",             // past the alphabet
		good[:31] + "=",             // padding
		good[:31] + "\n",            // a newline (base32.Decode skips them)
		good[:10] + "é" + good[12:], // not ASCII
		good[:31] + "\x00",          // NUL
		good[:31] + "\xff",          // high byte
		strings.Repeat(" ", 32),     // spaces
		good[:5] + strings.ToUpper(good[5:10]) + good[10:],
		FormatArchiveID(tooManyNanos),                               // not a position MakeArchivePos makes
		FormatArchiveID(hugeSeconds),                                // nor this
		strings.Repeat("v", 32),                                     // all ones: the same
		NewArchiveID(time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC)), // before 1970
		NewArchiveID(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)),  // after 9999
	} {
		if p, ok := ParseArchiveID(id); ok {
			t.Fatalf("ParseArchiveID(%q) = %x, true", id, p)
		}
	}
}

func FuzzParseArchiveID(f *testing.F) {
	f.Add(NewArchiveID(time.Now()))
	f.Add(NewArchiveID(time.Unix(-1<<40, 0)))
	f.Add(strings.Repeat("0", 32))
	f.Add(strings.Repeat("v", 32))
	f.Add("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
	f.Add("")
	f.Fuzz(func(t *testing.T, id string) {
		p, ok := ParseArchiveID(id)
		if !ok {
			if p != (ArchivePos{}) {
				t.Fatalf("ParseArchiveID(%q) not ok but returned %x", id, p)
			}
			return
		}
		if got := FormatArchiveID(p); got != id {
			t.Fatalf("ParseArchiveID(%q) = %x, which formats as %q", id, p, got)
		}
		if q := MakeArchivePos(p.Time(), p.Seq()); q != p {
			t.Fatalf("ParseArchiveID(%q) = %x, whose time and sequence make %x", id, p, q)
		}
	})
}

func TestArchiveTime(t *testing.T) {
	at := time.Date(2026, 11, 23, 19, 0, 0, 123456789, time.UTC)
	now := at.Add(time.Second)
	if got := ArchiveTime(NewArchiveID(at), now); !got.Equal(at) {
		t.Errorf("ArchiveTime of an archive id = %v, want the id's time %v", got, at)
	}
	if got := ArchiveTime("2f0a4e3c-1b2d-4c5e-8f90-a1b2c3d4e5f6", now); !got.Equal(now) {
		t.Errorf("ArchiveTime of a UUID = %v, want now %v", got, now)
	}
}
