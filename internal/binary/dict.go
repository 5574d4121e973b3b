package binary

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// The dictionary is three static token tables shared by every connection:
// qualified names (namespace, local name) of elements, attribute names, and
// strings (attribute values and namespace URIs). Versions are append-only:
// version v of a table is its first n[v] entries, an index never changes
// meaning, and a new version may only add entries at the end (docs §8).
// Entries carry encoder policy too (which element content is base64, which
// attributes hold JIDs, ids or human text); policy is not part of the wire
// contract and can change without a new version.

// Latest is the newest dictionary version this build knows.
const Latest = 1

// attrClass says how the encoder types an attribute's value.
type attrClass uint8

const (
	classValue attrClass = iota // tokens and every typed form
	classID                     // as classValue, plus back-references to earlier ids
	classJID                    // JID forms; aliases on top-level from/to
	classText                   // human text: always a plain string
)

type qnameEntry struct {
	ns, local string
	since     int
	b64       bool // text content is written as bytes when it is canonical base64
	// nameIsValue marks elements whose name attribute is a protocol
	// identifier (the EME encryption name), typed like any value rather
	// than kept as human text.
	nameIsValue bool
}

type attrEntry struct {
	name  string
	since int
	class attrClass
}

type strEntry struct {
	s     string
	since int
}

type qname struct{ ns, local string }

// dictionary is one set of tables with every version's sizes.
type dictionary struct {
	qnames []qnameEntry
	attrs  []attrEntry
	strs   []strEntry

	qnameIdx map[qname]int
	attrIdx  map[string]int
	strIdx   map[string]int

	// Per version v (index v, 1..latest): how many entries of each table
	// it has, and its fingerprint.
	latest int
	nq     []int
	na     []int
	ns     []int
	fp     [][4]byte

	// Well-known attribute tokens the codec treats specially.
	attrID, attrFrom, attrTo int
}

// maxTokenString bounds the values looked up in the string table at all:
// longer ones are never tokens.
const maxTokenString = 80

func newDictionary(q []qnameEntry, a []attrEntry, s []strEntry) *dictionary {
	d := &dictionary{
		qnames:   q,
		attrs:    a,
		strs:     s,
		qnameIdx: make(map[qname]int, len(q)),
		attrIdx:  make(map[string]int, len(a)),
		strIdx:   make(map[string]int, len(s)),
	}
	latest := 1
	check := func(table string, i, since, prev int) {
		if since < 1 || since < prev {
			panic(fmt.Sprintf("binary: %s entry %d: version %d after %d: tables are append-only", table, i, since, prev))
		}
		latest = max(latest, since)
	}
	prev := 1
	for i, e := range q {
		check("qname", i, e.since, prev)
		prev = e.since
		k := qname{e.ns, e.local}
		if _, dup := d.qnameIdx[k]; dup {
			panic("binary: duplicate qname token {" + e.ns + "}" + e.local)
		}
		d.qnameIdx[k] = i
	}
	prev = 1
	for i, e := range a {
		check("attribute", i, e.since, prev)
		prev = e.since
		if _, dup := d.attrIdx[e.name]; dup {
			panic("binary: duplicate attribute token " + e.name)
		}
		d.attrIdx[e.name] = i
	}
	prev = 1
	for i, e := range s {
		check("string", i, e.since, prev)
		prev = e.since
		if len(e.s) > maxTokenString {
			panic("binary: string token too long: " + e.s)
		}
		if _, dup := d.strIdx[e.s]; dup {
			panic("binary: duplicate string token " + e.s)
		}
		d.strIdx[e.s] = i
	}
	d.latest = latest
	d.nq = make([]int, latest+1)
	d.na = make([]int, latest+1)
	d.ns = make([]int, latest+1)
	d.fp = make([][4]byte, latest+1)
	for v := 1; v <= latest; v++ {
		for _, e := range q {
			if e.since <= v {
				d.nq[v]++
			}
		}
		for _, e := range a {
			if e.since <= v {
				d.na[v]++
			}
		}
		for _, e := range s {
			if e.since <= v {
				d.ns[v]++
			}
		}
		sum := sha256.Sum256([]byte(d.canonical(v)))
		copy(d.fp[v][:], sum[:4])
	}
	d.attrID, d.attrFrom, d.attrTo = d.mustAttr("id"), d.mustAttr("from"), d.mustAttr("to")
	return d
}

func (d *dictionary) mustAttr(name string) int {
	i, ok := d.attrIdx[name]
	if !ok {
		panic("binary: the attribute table lacks " + name)
	}
	return i
}

// canonical is the text a version's fingerprint hashes (docs §8.2): the
// wire-relevant content of the tables only, not encoder policy.
func (d *dictionary) canonical(v int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "parley-bin dictionary %d\n", v)
	for _, e := range d.qnames[:d.nq[v]] {
		b.WriteString("Q " + e.ns + " " + e.local + "\n")
	}
	for _, e := range d.attrs[:d.na[v]] {
		b.WriteString("A " + e.name + "\n")
	}
	for _, e := range d.strs[:d.ns[v]] {
		b.WriteString("S " + e.s + "\n")
	}
	return b.String()
}

// fingerprintHex is version v's fingerprint as the lowercase hex the stream
// open carries.
func (d *dictionary) fingerprintHex(v int) string {
	return hex.EncodeToString(d.fp[v][:])
}

// std is the dictionary of this build.
var std = newDictionary(stdQNames, stdAttrs, stdStrings)
