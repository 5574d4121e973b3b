package binary

import "strings"

// JID alias tables (docs §7). Each direction of a connection has its own
// table, written only by that direction's sender and mirrored by its
// receiver: the sender defines an entry inline the first time it writes a
// JID in a top-level from or to, and from then on writes the entry's index.
// The sender chooses the index of every definition, so the receiver applies
// no policy of its own and both ends always hold identical tables. The
// receiver fixes the table's budget in its stream open; an entry costs its
// JID's length plus 32.

type encAlias struct {
	jid  string
	used uint32 // clock value of the last use, for eviction
}

// encAliases is the sender's copy of a table, with the eviction policy:
// least recently used, replaced in place.
type encAliases struct {
	e      []encAlias
	bytes  int // budget in use
	budget int
	clock  uint32
}

func (t *encAliases) reset(budget int) {
	clear(t.e)
	t.e = t.e[:0]
	if budget == 0 || cap(t.e) > budget/aliasOverhead {
		t.e = nil
	}
	t.bytes, t.budget, t.clock = 0, budget, 0
}

// maxAliasJID bounds the JIDs worth an entry.
const maxAliasJID = 256

func (t *encAliases) find(jid string) int {
	for i := range t.e {
		if t.e[i].jid == jid {
			t.clock++
			t.e[i].used = t.clock
			return i
		}
	}
	return -1
}

// add decides where jid goes: appended at index len (set false), replacing
// the entry at index (set true), or nowhere (ok false) when it does not fit.
func (t *encAliases) add(jid string) (index int, set, ok bool) {
	cost := len(jid) + aliasOverhead
	if len(jid) > maxAliasJID || cost > t.budget {
		return 0, false, false
	}
	t.clock++
	if t.bytes+cost <= t.budget {
		if t.e == nil {
			t.e = make([]encAlias, 0, min(8, t.budget/aliasOverhead))
		}
		// The table's own copy: the caller's string may pin a whole stanza.
		t.e = append(t.e, encAlias{jid: strings.Clone(jid), used: t.clock})
		t.bytes += cost
		return len(t.e) - 1, false, true
	}
	// Full: replace the least recently used entry if that makes room.
	victim := -1
	for i := range t.e {
		if victim < 0 || t.e[i].used < t.e[victim].used {
			victim = i
		}
	}
	if victim < 0 || t.bytes-len(t.e[victim].jid)+len(jid) > t.budget {
		return 0, false, false
	}
	t.bytes += len(jid) - len(t.e[victim].jid)
	t.e[victim] = encAlias{jid: strings.Clone(jid), used: t.clock}
	return victim, true, true
}

func (t *encAliases) stateBytes() int {
	n := cap(t.e) * 24
	for _, e := range t.e {
		n += len(e.jid)
	}
	return n
}

type decAlias struct {
	jid string
	esc int // bytes of jid that XML escapes, for the XML-size bound
}

// decAliases is the receiver's copy of a table.
type decAliases struct {
	e      []decAlias
	bytes  int
	budget int
}

func (t *decAliases) reset(budget int) {
	clear(t.e)
	t.e = t.e[:0]
	if budget == 0 || cap(t.e) > budget/aliasOverhead {
		t.e = nil
	}
	t.bytes, t.budget = 0, budget
}

// define stores jid at index i: i == len appends, i < len replaces.
func (t *decAliases) define(i int, jid string) error {
	old := 0
	if i < len(t.e) {
		old = len(t.e[i].jid) + aliasOverhead
	}
	if t.bytes-old+len(jid)+aliasOverhead > t.budget {
		return errLimit("alias table over its budget")
	}
	t.bytes += len(jid) + aliasOverhead - old
	e := decAlias{jid: jid, esc: escCount(jid)}
	if i == len(t.e) {
		if t.e == nil {
			t.e = make([]decAlias, 0, min(8, t.budget/aliasOverhead))
		}
		t.e = append(t.e, e)
	} else {
		t.e[i] = e
	}
	return nil
}

func (t *decAliases) stateBytes() int {
	n := cap(t.e) * 24
	for _, e := range t.e {
		n += len(e.jid)
	}
	return n
}
