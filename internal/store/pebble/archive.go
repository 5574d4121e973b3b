package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parley-im/parley/internal/store"
)

// Archive keys (XEP-0313 message archives):
//
//	h/<owner>\x00<pos>                 message (value: encodeArchived)
//	hi/<owner>\x00<id>                 id index (value: <pos>), only for ids
//	                                   that do not carry <pos> (below)
//	hw/<owner>\x00<with>\x00<pos>      with index (value: empty)
//	hc/<x>\x00<y>\x00<pos>             conversation index of a shared stanza
//	                                   (value: empty; below)
//	hp/<owner>                         preferences (value: encodeArchivePrefs)
//
// <owner> is a localpart or a room's bare JID, <with> a bare JID; neither
// contains NUL, so owner+NUL (and owner+NUL+with+NUL) are exact prefixes:
// owner "ann" never sees the keys of owner "ann\x00x" (which cannot exist),
// and a with-scan for "a@x" never sees "a@x.org". The id is last in its key
// and may hold any byte.
//
// <pos> is 20 bytes, a store.ArchivePos: the archive time as big-endian
// Unix seconds with the sign bit flipped (so byte order is time order,
// before 1970 too), then big-endian nanoseconds (4 bytes), then an 8-byte
// insertion sequence that orders messages with equal times. Keying by
// owner+pos makes Start, End, after-id and before-id bounds of one
// iterator (seeks, never scans), and a last page a backward walk from the
// upper bound.
//
// An id made by store.NewArchiveID carries a <pos> (store.ParseArchiveID).
// A message whose id carries the <pos> of its own Time is keyed by that
// <pos>, and has no id index entry: a lookup by id is a point read of the
// message key, checked against the id in the value. That saves one of the
// three memtable inserts of every archived copy, the largest single CPU
// cost of routing with the archive on. Every other id (a UUID, an id of an
// older version or of another writer, or an id whose time is not the
// message's) gets a <pos> of its own and an id index entry; a lookup tries
// the <pos> an id carries first and the index second (archivePosOf).
//
// A routed 1:1 message between two local users is archived twice, for
// its recipient and for its sender, with the same stanza and, as the
// router makes them, the same archive id. AppendArchives stores such a
// pair as one stanza and one index key instead of two of each:
//
//   - the first copy holds the stanza (value format archHolder, naming the
//     other copy's owner) and the second refers to it (archRef: the
//     holder's owner, no stanza), both at the one <pos>;
//   - neither has a with index entry. One conversation key hc/<x>\x00<y>\x00<pos>,
//     x and y being the two owners in byte order, stands for both: a
//     with-filtered page of owner x with a peer whose localpart is y walks
//     it beside x's with index (queryArchive), and keeps the entries whose
//     copy in x's archive is there and has that with.
//
// Three keys and one stanza per routed message instead of four and two:
// the archive's memtable inserts, flushes and compactions were most of the
// CPU a routed message cost (docs/archive.md). Copies with other ids, for
// one owner, or with different stanzas are stored as before (archInline).
//
// A holder never goes before the copy that refers to it: deleting a whole
// archive (DeleteArchive, DeleteAccount) first walks it and, for each
// holder, deletes the conversation key and rewrites a referring copy that
// is still there as a copy of its own (format 1, with a with index entry),
// then range-deletes. Expiry takes both copies in one run (one <pos>);
// a page that meets a reference whose holder an expiry batch has already
// taken skips it.
//
// The with index is keys only: a with-filtered page walks it and reads each
// message by point lookup. It costs one small key per message with a
// non-empty With; without it a page for a rarely-seen peer would read the
// whole archive (see BenchmarkArchive for both numbers).
//
// There is no count key: keeping one exact under concurrent appends and
// expiry needs a per-owner read-modify-write. QueryArchive reports Count
// only when the page itself proves it (see QueryArchive).
const (
	tagArchive      = "h/"
	tagArchiveID    = "hi/"
	tagArchiveWith  = "hw/"
	tagArchiveConv  = "hc/"
	tagArchivePrefs = "hp/"
)

// posLen is the length of <pos>: a store.ArchivePos.
const posLen = store.ArchivePosLen

func appendPos(b []byte, t time.Time, seq uint64) []byte {
	p := store.MakeArchivePos(t, seq)
	return append(b, p[:]...)
}

// posTime is the time of pos, which has posLen bytes.
func posTime(pos []byte) time.Time { return store.ArchivePos(pos).Time() }

// archivePrefix returns tag+owner+NUL (+with+NUL when with is given).
func archivePrefix(tag, owner, with string) []byte {
	return appendArchivePrefix(make([]byte, 0, len(tag)+len(owner)+len(with)+2+posLen+1), tag, owner, with)
}

// appendArchivePrefix appends archivePrefix's key to k.
func appendArchivePrefix(k []byte, tag, owner, with string) []byte {
	k = append(k, tag...)
	k = append(k, owner...)
	k = append(k, sep)
	if with != "" {
		k = append(k, with...)
		k = append(k, sep)
	}
	return k
}

func archiveIDKey(owner, id string) []byte {
	return appendArchiveIDKey(nil, owner, id)
}

// appendArchiveIDKey appends archiveIDKey's key to k.
func appendArchiveIDKey(k []byte, owner, id string) []byte {
	return append(appendArchivePrefix(k, tagArchiveID, owner, ""), id...)
}

// archiveMessageKeys returns the keys of owner's message at pos with value
// a: the message, its id index entry unless the id carries pos
// (AppendArchives wrote none, and deleting a key that was never written
// would still write a tombstone), its with index entry (a copy of its
// own) or its conversation key (a holder; a reference has neither).
func archiveMessageKeys(owner string, pos []byte, a archivedValue) [][]byte {
	keys := make([][]byte, 0, 3)
	keys = append(keys, append(archivePrefix(tagArchive, owner, ""), pos...))
	if p, ok := store.ParseArchiveID(a.id); !ok || !bytes.Equal(p[:], pos) {
		keys = append(keys, archiveIDKey(owner, a.id))
	}
	switch {
	case a.format == archHolder:
		keys = append(keys, convKey(owner, a.other, pos))
	case a.format == archInline && a.with != "":
		keys = append(keys, append(archivePrefix(tagArchiveWith, owner, a.with), pos...))
	}
	return keys
}

// convPrefix returns the prefix of the conversation keys of owners x and
// y, in either order.
func convPrefix(x, y string) []byte {
	return appendConvPrefix(nil, x, y)
}

// appendConvPrefix appends convPrefix's prefix to k.
func appendConvPrefix(k []byte, x, y string) []byte {
	if x > y {
		x, y = y, x
	}
	return appendArchivePrefix(k, tagArchiveConv, x, y)
}

func convKey(x, y string, pos []byte) []byte {
	return append(convPrefix(x, y), pos...)
}

// archivePosOf returns the <pos> of the message with archive id id in
// owner's archive: the one the id carries if the message there has that
// id, else the one in the id index. ok is false when neither has it.
func archivePosOf(r pebble.Reader, owner, id string) (pos []byte, ok bool, err error) {
	if p, ok := store.ParseArchiveID(id); ok {
		k := append(archivePrefix(tagArchive, owner, ""), p[:]...)
		v, closer, err := r.Get(k)
		switch {
		case err == nil:
			// Decoded in place: nothing of it outlives the closer.
			a, derr := decodeArchived(v)
			if err := closer.Close(); err != nil {
				return nil, false, err
			}
			if derr != nil {
				return nil, false, fmt.Errorf("archive key %q: %w", k, derr)
			}
			if a.id == id {
				return p[:], true, nil
			}
			// Another message at that position: the id was stored
			// through the index, if at all.
		case !errors.Is(err, pebble.ErrNotFound):
			return nil, false, err
		}
	}
	pos, ok, err = get(r, archiveIDKey(owner, id))
	if err != nil || !ok || len(pos) != posLen {
		return nil, false, err
	}
	return pos, true, nil
}

// Archived message values. Every format starts with the format byte, the
// id and the with; the time is in the key:
//
//	archInline  format, id, with, stanza (the rest, no length)
//	archHolder  format, id, with, other owner, stanza
//	archRef     format, id, with, holder owner
//
// A holder and the copy that refers to it have the same <pos>.
const (
	archInline = formatV1
	archHolder = 2
	archRef    = 3
)

// archivedValue is a decoded archived message value. other is set for
// archHolder and archRef; stanza, which aliases the decoded buffer, for
// archInline and archHolder.
type archivedValue struct {
	format   byte
	id, with string
	other    string
	stanza   []byte
}

// encodeArchived returns the value of m in format archInline, or in
// archHolder or archRef with the other copy's owner.
func encodeArchived(format byte, m store.ArchivedMessage, other string) []byte {
	n := 1 + 2 + len(m.ID) + 2 + len(m.With)
	if format != archInline {
		n += 2 + len(other)
	}
	if format != archRef {
		n += len(m.Stanza)
	}
	return appendArchived(make([]byte, 0, n), format, m, other)
}

// appendArchived appends encodeArchived's value to b.
func appendArchived(b []byte, format byte, m store.ArchivedMessage, other string) []byte {
	b = append(b, format)
	b = appendString(b, m.ID)
	b = appendString(b, m.With)
	if format != archInline {
		b = appendString(b, other)
	}
	if format != archRef {
		b = append(b, m.Stanza...)
	}
	return b
}

// archiveBufs are AppendArchives' buffers for a key and a value.
type archiveBufs struct{ k, v []byte }

// archiveScratch pools archiveBufs.
var archiveScratch = sync.Pool{New: func() any { return &archiveBufs{k: make([]byte, 0, 128), v: make([]byte, 0, 1024)} }}

// decodeArchived decodes an archived message value without copying the
// stanza.
func decodeArchived(v []byte) (archivedValue, error) {
	d := decoder{b: v}
	a := archivedValue{format: d.byte()}
	switch a.format {
	case archInline, archHolder, archRef:
	default:
		if d.err == nil {
			return archivedValue{}, fmt.Errorf("unsupported archive value format %d", a.format)
		}
	}
	a.id = d.string()
	a.with = d.string()
	if a.format != archInline {
		a.other = d.string()
		if a.other == "" {
			d.fail()
		}
	}
	if a.format != archRef {
		a.stanza, d.b = d.b, nil
	}
	if err := d.done(); err != nil {
		return archivedValue{}, fmt.Errorf("decode archived message: %w", err)
	}
	return a, nil
}

// holders reads the holders' values for a page's references through one
// iterator over every archive: a seek per reference instead of a Get,
// which builds an iterator of its own each time (a page of 50 references
// cost about 5x a page of copies of their own that way).
type holders struct {
	r  pebble.Reader
	it *pebble.Iterator
}

// get returns the value at key k, valid until the next call.
func (h *holders) get(k []byte) ([]byte, bool, error) {
	if h.it == nil {
		it, err := h.r.NewIter(&pebble.IterOptions{LowerBound: []byte(tagArchive), UpperBound: prefixEnd(tagArchive)})
		if err != nil {
			return nil, false, err
		}
		h.it = it
	}
	if !h.it.SeekGE(k) || !bytes.Equal(h.it.Key(), k) {
		return nil, false, h.it.Error()
	}
	v, err := h.it.ValueAndErr()
	return v, err == nil, err
}

func (h *holders) close() error {
	if h.it == nil {
		return nil
	}
	return h.it.Close()
}

// readArchived returns the message at pos with value v, reading the
// stanza from its holder if v refers to one. ok is false when the holder
// is gone (see the key layout).
func readArchived(hs *holders, pos, v []byte) (m store.ArchivedMessage, ok bool, err error) {
	a, err := decodeArchived(v)
	if err != nil {
		return store.ArchivedMessage{}, false, err
	}
	return resolveArchived(hs, pos, a)
}

// resolveArchived is readArchived for a decoded value.
func resolveArchived(hs *holders, pos []byte, a archivedValue) (m store.ArchivedMessage, ok bool, err error) {
	m = store.ArchivedMessage{ID: a.id, Time: posTime(pos), With: a.with}
	if a.format != archRef {
		m.Stanza = bytes.Clone(a.stanza)
		return m, true, nil
	}
	hk := append(archivePrefix(tagArchive, a.other, ""), pos...)
	hv, found, err := hs.get(hk)
	if err != nil || !found {
		return store.ArchivedMessage{}, false, err
	}
	h, err := decodeArchived(hv)
	if err != nil {
		return store.ArchivedMessage{}, false, fmt.Errorf("archive key %q: %w", hk, err)
	}
	if h.format != archHolder {
		return store.ArchivedMessage{}, false, fmt.Errorf("archive key %q is referred to but holds no shared stanza: %w", hk, errCorrupt)
	}
	m.Stanza = bytes.Clone(h.stanza)
	return m, true, nil
}

// unshare adds to b what owner's holder h at pos leaves behind when it
// goes: the deletion of its conversation key, and for the copy that
// refers to it, if that is still there, a value of its own with h's
// stanza and the with index entry a copy of its own has. The caller holds
// s.archiveDel.
func unshare(r pebble.Reader, b *pebble.Batch, owner string, pos []byte, h archivedValue) error {
	if err := b.Delete(convKey(owner, h.other, pos), nil); err != nil {
		return err
	}
	rk := append(archivePrefix(tagArchive, h.other, ""), pos...)
	rv, found, err := get(r, rk)
	if err != nil || !found {
		return err
	}
	ref, err := decodeArchived(rv)
	if err != nil {
		return fmt.Errorf("archive key %q: %w", rk, err)
	}
	if ref.format != archRef || ref.other != owner {
		return nil
	}
	own := encodeArchived(archInline, store.ArchivedMessage{ID: ref.id, With: ref.with, Stanza: h.stanza}, "")
	if err := b.Set(rk, own, nil); err != nil {
		return err
	}
	if ref.with == "" {
		return nil
	}
	return b.Set(append(archivePrefix(tagArchiveWith, h.other, ref.with), pos...), nil, nil)
}

// Prefs value: format, default, count + always JIDs, count + never JIDs.
func encodeArchivePrefs(p store.ArchivePrefs) []byte {
	b := []byte{formatV1}
	b = appendString(b, p.Default)
	for _, l := range [][]string{p.Always, p.Never} {
		b = binary.AppendUvarint(b, uint64(len(l)))
		for _, j := range l {
			b = appendString(b, j)
		}
	}
	return b
}

func decodeArchivePrefs(v []byte) (store.ArchivePrefs, error) {
	d := decoder{b: v}
	d.version()
	p := store.ArchivePrefs{Default: d.string()}
	for _, l := range []*[]string{&p.Always, &p.Never} {
		n := d.uvarint()
		if n > uint64(len(d.b)) { // each JID takes at least one byte
			d.fail()
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			*l = append(*l, d.string())
		}
	}
	if err := d.done(); err != nil {
		return store.ArchivePrefs{}, fmt.Errorf("decode archive prefs: %w", err)
	}
	return p, nil
}

// AppendArchive implements store.Archive. The message, its id index entry
// (for an id that does not carry the message's position) and its with
// index entry are one batch, committed without an fsync of its own (see
// AppendArchives).
func (s *Store) AppendArchive(ctx context.Context, owner string, m store.ArchivedMessage) error {
	return s.AppendArchives(ctx, store.ArchiveEntry{Owner: owner, Message: m})
}

// archivePlace is where AppendArchives puts one entry: its <pos>, whether
// its id carries that <pos>, its value format, and for a shared stanza the
// index of the other entry.
type archivePlace struct {
	pos     store.ArchivePos
	carries bool
	format  byte
	other   int
}

// AppendArchives implements store.Archive: every entry in one batch. Two
// entries for different owners with the same id, time and stanza, each
// with the other's owner as its peer (a routed message's copies for its
// recipient and its sender), store the stanza once and share one
// conversation key instead of two with index entries (see the key
// layout).
func (s *Store) AppendArchives(ctx context.Context, entries ...store.ArchiveEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, e := range entries {
		if err := validName("archive owner", e.Owner); err != nil {
			return err
		}
		if e.Message.ID == "" {
			return fmt.Errorf("%w: empty archive id", ErrInvalidName)
		}
		if e.Message.With != "" {
			if err := validName("archive with", e.Message.With); err != nil {
				return err
			}
		}
	}
	if len(entries) == 0 {
		return nil
	}
	db, err := s.enter()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()

	var buf [2]archivePlace // a routed message has at most two copies
	places := buf[:0]
	for _, e := range entries {
		// No lookup of the id first: ids are generated by the server and
		// unique per owner (store.Archive), and a point lookup here cost
		// more than the rest of the routing of a message (profiled at
		// 2,000 chatting users: a memtable search of ~13 µs, a third of
		// the server's CPU).
		//
		// An id that carries the position of the message's time keys the
		// message, and needs no id index entry (see the key layout).
		p := archivePlace{format: archInline, other: -1}
		idPos, carries := store.ParseArchiveID(e.Message.ID)
		if p.carries = carries && e.Message.Time.Equal(idPos.Time()); p.carries {
			p.pos = idPos
		} else {
			p.pos = store.MakeArchivePos(e.Message.Time, store.NextArchiveSeq())
		}
		places = append(places, p)
	}
	for i := range places {
		if places[i].other >= 0 {
			continue
		}
		mi := entries[i].Message
		for j := i + 1; j < len(places); j++ {
			mj := entries[j].Message
			if places[j].other < 0 && entries[j].Owner != entries[i].Owner &&
				mj.ID == mi.ID && mj.Time.Equal(mi.Time) && bytes.Equal(mj.Stanza, mi.Stanza) &&
				peerIs(mi.With, entries[j].Owner) && peerIs(mj.With, entries[i].Owner) {
				places[i].format, places[i].other = archHolder, j
				places[j].format, places[j].other = archRef, i
				places[j].pos = places[i].pos // the same for an id that carries it
				break
			}
		}
	}

	// A holder's stripe is held until the commit: a deletion of its
	// owner's whole archive must not fall between its walk for holders
	// and its range deletion (Store.archive). Each stripe once, in
	// order: a read lock taken twice can deadlock with a waiting writer.
	var stripes [2]int
	locked := stripes[:0]
	for i, p := range places {
		if p.format == archHolder {
			if k := s.stripe(entries[i].Owner); !slices.Contains(locked, k) {
				locked = append(locked, k)
			}
		}
	}
	slices.Sort(locked)
	for _, k := range locked {
		s.archive[k].RLock()
		defer s.archive[k].RUnlock()
	}

	b := db.NewBatch()
	defer b.Close()
	// Keys and values are built in reused buffers: Set copies them into
	// the batch.
	sc := archiveScratch.Get().(*archiveBufs)
	defer archiveScratch.Put(sc)
	for i, e := range entries {
		owner, m, p := e.Owner, e.Message, &places[i]
		var other string
		if p.other >= 0 {
			other = entries[p.other].Owner
		}
		k := append(appendArchivePrefix(sc.k[:0], tagArchive, owner, ""), p.pos[:]...)
		sc.v = appendArchived(sc.v[:0], p.format, m, other)
		errs := [3]error{b.Set(k, sc.v, nil)}
		if !p.carries {
			k = appendArchiveIDKey(k[:0], owner, m.ID)
			errs[1] = b.Set(k, p.pos[:], nil)
		}
		switch {
		case p.format == archHolder:
			k = append(appendConvPrefix(k[:0], owner, other), p.pos[:]...)
			errs[2] = b.Set(k, nil, nil)
		case p.format == archInline && m.With != "":
			k = append(appendArchivePrefix(k[:0], tagArchiveWith, owner, m.With), p.pos[:]...)
			errs[2] = b.Set(k, nil, nil)
		}
		sc.k = k
		if err := errors.Join(errs[:]...); err != nil {
			return fmt.Errorf("pebble store: append to archive %q: %w", owner, err)
		}
	}
	// No fsync of its own: the message's durability is the recipient's
	// queue, appended just before and synced just after (the queue
	// journal, or Pebble's log without it). Pebble's write-ahead log is
	// ordered, so its next synced commit (another writer's, or the
	// journal checkpoint's, at least every 10 s) makes this one durable
	// too; the write itself reaches the OS at once, so a crash of the
	// process loses nothing, and a power loss at most the archive copies
	// of the last seconds, never a message. An fsync here would put one
	// or two more group commits on every routed message.
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("pebble store: append to archive %q: %w", entries[0].Owner, err)
	}
	if len(locked) > 0 && s.deletingN.Load() > 0 {
		s.noteHolders(entries, places) // before the stripes go (deferred)
	}
	return nil
}

// QueryArchive implements store.Archive. Start, End, AfterID and BeforeID
// become the bounds of one iterator, so a page costs one or two id lookups
// (archivePosOf: a point read each, two for an id that carries a position
// but was indexed), one seek and Max steps whatever the archive's size;
// Last pages walk backwards from the upper bound. With walks the with
// index and the conversation keys with that peer together and reads each
// message by point lookup; a reference reads its holder's stanza by one
// more seek. All from one snapshot.
//
// Count is exact when the page holds the whole matching range (no AfterID or
// BeforeID, and Complete), and -1 otherwise: an exact count of a large
// archive is a scan of the whole range on every page.
func (s *Store) QueryArchive(ctx context.Context, owner string, q store.ArchiveQuery) (store.ArchivePage, error) {
	if err := ctx.Err(); err != nil {
		return store.ArchivePage{}, err
	}
	if err := validName("archive owner", owner); err != nil {
		return store.ArchivePage{}, err
	}
	if q.With != "" {
		if err := validName("archive with", q.With); err != nil {
			return store.ArchivePage{}, err
		}
	}
	db, err := s.enter()
	if err != nil {
		return store.ArchivePage{}, err
	}
	defer s.mu.RUnlock()
	snap := db.NewSnapshot()
	defer snap.Close()
	page, err := queryArchive(snap, owner, q)
	if err != nil {
		return store.ArchivePage{}, fmt.Errorf("pebble store: query archive %q: %w", owner, err)
	}
	return page, nil
}

func queryArchive(r pebble.Reader, owner string, q store.ArchiveQuery) (store.ArchivePage, error) {
	msgPrefix := archivePrefix(tagArchive, owner, "")
	// Bounds in <pos> space; lo inclusive, hi exclusive. A 21-byte bound
	// (pos + NUL) sorts right after that pos.
	lo := []byte{}
	hi := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00}
	raise := func(b []byte) {
		if bytes.Compare(b, lo) > 0 {
			lo = b
		}
	}
	lower := func(b []byte) {
		if bytes.Compare(b, hi) < 0 {
			hi = b
		}
	}
	if !q.Start.IsZero() {
		raise(appendPos(nil, q.Start, 0))
	}
	if !q.End.IsZero() {
		lower(append(appendPos(nil, q.End, math.MaxUint64), 0))
	}
	for _, b := range []struct {
		id    string
		after bool
	}{{q.AfterID, true}, {q.BeforeID, false}} {
		if b.id == "" {
			continue
		}
		pos, ok, err := archivePosOf(r, owner, b.id)
		if err != nil {
			return store.ArchivePage{}, err
		}
		if !ok {
			return store.ArchivePage{}, fmt.Errorf("archive id %q: %w", b.id, store.ErrNotFound)
		}
		if b.after {
			raise(append(pos, 0))
		} else {
			lower(pos)
		}
	}
	var page store.ArchivePage
	if bytes.Compare(lo, hi) >= 0 {
		page.Complete = true
		page.Count = countIfProven(q, page)
		return page, nil
	}
	// The positions come from the archive itself, or for a with page
	// from the with index and from the conversation keys shared with a
	// local peer, merged in <pos> order.
	prefixes := [][]byte{msgPrefix}
	if q.With != "" {
		prefixes[0] = archivePrefix(tagArchiveWith, owner, q.With)
		if peer, ok := localpartOf(q.With); ok {
			prefixes = append(prefixes, convPrefix(owner, peer))
		}
	}
	srcs := make([]posSource, len(prefixes))
	for i, prefix := range prefixes {
		it, err := r.NewIter(&pebble.IterOptions{
			LowerBound: append(slices.Clip(prefix), lo...),
			UpperBound: append(slices.Clip(prefix), hi...),
		})
		if err != nil {
			return store.ArchivePage{}, err
		}
		defer it.Close()
		srcs[i] = posSource{it: it, prefix: prefix, conv: i == 1}
		if q.Last {
			srcs[i].valid = it.Last()
		} else {
			srcs[i].valid = it.First()
		}
	}
	var msgs *pebble.Iterator // the with path reads messages through this one
	if q.With != "" {
		mlo, mhi := userPrefix(tagArchive, owner)
		var err error
		if msgs, err = r.NewIter(&pebble.IterOptions{LowerBound: mlo, UpperBound: mhi}); err != nil {
			return store.ArchivePage{}, err
		}
		defer msgs.Close()
	}
	hs := &holders{r: r}
	defer hs.close()
	if q.Max > 0 {
		page.Items = make([]store.ArchivedMessage, 0, min(q.Max, 256))
	}
	for q.Max <= 0 || len(page.Items) < q.Max {
		src, pos, err := nextPos(srcs, q.Last)
		if err != nil || src == nil {
			if err != nil {
				return store.ArchivePage{}, err
			}
			break
		}
		m, found, err := pageItem(hs, msgs, msgPrefix, pos, src, q.With)
		if err != nil {
			return store.ArchivePage{}, err
		}
		if found {
			page.Items = append(page.Items, m)
		}
		if q.Last {
			src.valid = src.it.Prev()
		} else {
			src.valid = src.it.Next()
		}
	}
	page.Complete = true
	for _, src := range srcs {
		if err := src.it.Error(); err != nil {
			return store.ArchivePage{}, err
		}
		page.Complete = page.Complete && !src.valid
	}
	if q.Last {
		slices.Reverse(page.Items)
	}
	page.Count = countIfProven(q, page)
	return page, nil
}

// posSource is one ordered source of archive positions for queryArchive:
// an iterator over keys that end in <pos>.
type posSource struct {
	it     *pebble.Iterator
	prefix []byte
	valid  bool
	conv   bool // conversation keys: the owner's copy may be missing or with another peer
}

// nextPos returns the source whose current position comes next (the
// lowest, or the highest for a last page), and that position; nil when
// every source is exhausted.
func nextPos(srcs []posSource, last bool) (*posSource, []byte, error) {
	var best *posSource
	var bestPos []byte
	for i := range srcs {
		src := &srcs[i]
		if !src.valid {
			continue
		}
		k := src.it.Key()
		pos := k[len(src.prefix):]
		if len(pos) != posLen {
			return nil, nil, fmt.Errorf("archive key %q: %w", k, errCorrupt)
		}
		if c := bytes.Compare(pos, bestPos); best == nil || (c < 0) != last && c != 0 {
			best, bestPos = src, pos
		}
	}
	return best, bestPos, nil
}

// pageItem reads the message at pos that src yielded. A page without with
// reads src's own value; a with page reads the owner's copy through msgs.
// found is false for a conversation key without a copy with that peer in
// the owner's archive, and for a reference whose holder is gone.
func pageItem(hs *holders, msgs *pebble.Iterator, msgPrefix, pos []byte, src *posSource, with string) (store.ArchivedMessage, bool, error) {
	if msgs == nil {
		v, err := src.it.ValueAndErr()
		if err != nil {
			return store.ArchivedMessage{}, false, err
		}
		m, found, err := readArchived(hs, pos, v)
		if err != nil {
			return store.ArchivedMessage{}, false, fmt.Errorf("archive key %q: %w", src.it.Key(), err)
		}
		return m, found, nil
	}
	mk := append(slices.Clip(msgPrefix), pos...)
	if !msgs.SeekGE(mk) || !bytes.Equal(msgs.Key(), mk) {
		if err := msgs.Error(); err != nil {
			return store.ArchivedMessage{}, false, err
		}
		if src.conv {
			// The peer's copy alone (this owner's was not archived, or
			// its archive was deleted).
			return store.ArchivedMessage{}, false, nil
		}
		// The snapshot holds index and message together, so a miss is
		// corruption, not a race.
		return store.ArchivedMessage{}, false, fmt.Errorf("with index entry %q has no message: %w", src.it.Key(), errCorrupt)
	}
	v, err := msgs.ValueAndErr()
	if err != nil {
		return store.ArchivedMessage{}, false, err
	}
	a, err := decodeArchived(v)
	if err != nil {
		return store.ArchivedMessage{}, false, fmt.Errorf("archive key %q: %w", mk, err)
	}
	if src.conv && (a.format == archInline || a.with != with) {
		return store.ArchivedMessage{}, false, nil
	}
	m, found, err := resolveArchived(hs, pos, a)
	if err != nil {
		return store.ArchivedMessage{}, false, fmt.Errorf("archive key %q: %w", mk, err)
	}
	return m, found, nil
}

// peerIs reports whether with, a copy's peer, is the owner of the other
// copy: a with page finds shared copies through the conversation key of
// the owner and the peer's localpart.
func peerIs(with, owner string) bool {
	l, ok := localpartOf(with)
	return ok && l == owner
}

// localpartOf returns the localpart of bare JID j, if it has one: the
// owner a local peer's archive has.
func localpartOf(j string) (string, bool) {
	i := strings.IndexByte(j, '@')
	if i <= 0 {
		return "", false
	}
	return j[:i], true
}

// countIfProven returns the page's length if it provably holds every item
// matching the filters, else -1.
func countIfProven(q store.ArchiveQuery, p store.ArchivePage) int {
	if p.Complete && q.AfterID == "" && q.BeforeID == "" {
		return len(p.Items)
	}
	return -1
}

// GetArchivePrefs implements store.Archive.
func (s *Store) GetArchivePrefs(ctx context.Context, owner string) (store.ArchivePrefs, error) {
	if err := ctx.Err(); err != nil {
		return store.ArchivePrefs{}, err
	}
	if err := validName("archive owner", owner); err != nil {
		return store.ArchivePrefs{}, err
	}
	db, err := s.enter()
	if err != nil {
		return store.ArchivePrefs{}, err
	}
	defer s.mu.RUnlock()
	v, ok, err := get(db, pointKey(tagArchivePrefs, owner))
	if err != nil {
		return store.ArchivePrefs{}, fmt.Errorf("pebble store: archive prefs of %q: %w", owner, err)
	}
	if !ok {
		return store.ArchivePrefs{}, fmt.Errorf("archive prefs of %q: %w", owner, store.ErrNotFound)
	}
	p, err := decodeArchivePrefs(v)
	if err != nil {
		return store.ArchivePrefs{}, fmt.Errorf("pebble store: archive prefs of %q: %w", owner, err)
	}
	return p, nil
}

// SetArchivePrefs implements store.Archive: a blind write of one key.
func (s *Store) SetArchivePrefs(ctx context.Context, owner string, p store.ArchivePrefs) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validName("archive owner", owner); err != nil {
		return err
	}
	db, err := s.enter()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if err := db.Set(pointKey(tagArchivePrefs, owner), encodeArchivePrefs(p), s.syncWrites); err != nil {
		return fmt.Errorf("pebble store: set archive prefs of %q: %w", owner, err)
	}
	return nil
}

// DeleteArchive implements store.Archive: a walk over the archive that
// gives the other owners' copies of the stanzas it holds stanzas of their
// own (beginArchiveDeletion), then range deletions in one batch. An append
// running concurrently lands either before the deletion (and goes with
// it) or after it (and starts a new archive).
func (s *Store) DeleteArchive(ctx context.Context, owner string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validName("archive owner", owner); err != nil {
		return err
	}
	db, err := s.enter()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	end, err := s.beginArchiveDeletion(db, owner)
	if err != nil {
		return err
	}
	defer end()
	b := db.NewBatch()
	defer b.Close()
	if err := s.deleteArchiveBatch(b, owner); err != nil {
		return err
	}
	if err := b.Commit(s.syncWrites); err != nil {
		return fmt.Errorf("pebble store: delete archive %q: %w", owner, err)
	}
	return nil
}

// beginArchiveDeletion prepares the range deletion of owner's whole
// archive: it rewrites every copy in another archive that refers to a
// stanza owner's archive holds as a copy of its own. The walk over the
// archive runs while appends go on (a large archive takes seconds, and
// appends to every archive in the owner's lock stripe would wait); the
// holders appended meanwhile note their positions (noteHolders), and a
// second step takes the stripe exclusively (Store.archive) and rewrites
// theirs. The rewrites are committed in batches without an fsync: the
// deletion's own commit comes after them in the log, so a crash cannot
// keep the deletion and lose them. Store.archiveDel is held throughout.
// The caller commits the deletion (deleteArchiveBatch), with the stripe
// still held, and then calls end.
func (s *Store) beginArchiveDeletion(db *pebble.DB, owner string) (end func(), err error) {
	s.archiveDel.Lock()
	s.deletingMu.Lock()
	if s.deleting == nil {
		s.deleting = map[string][][]byte{}
	}
	s.deleting[owner] = [][]byte{}
	s.deletingMu.Unlock()
	s.deletingN.Add(1)
	appended := func() [][]byte {
		s.deletingMu.Lock()
		defer s.deletingMu.Unlock()
		ps := s.deleting[owner]
		delete(s.deleting, owner)
		s.deletingN.Add(-1)
		return ps
	}
	if err := unshareArchive(db, owner); err != nil {
		appended()
		s.archiveDel.Unlock()
		return nil, fmt.Errorf("pebble store: delete archive %q: %w", owner, err)
	}
	l := &s.archive[s.stripe(owner)]
	l.Lock()
	end = func() {
		l.Unlock()
		s.archiveDel.Unlock()
	}
	// Every append that made a holder in owner's archive has committed
	// and noted it by now (it holds the stripe shared until then), and no
	// other can start before end.
	if err := unshareAt(db, owner, appended()); err != nil {
		end()
		return nil, fmt.Errorf("pebble store: delete archive %q: %w", owner, err)
	}
	return end, nil
}

// noteHolders records the holders AppendArchives just committed for the
// archives whose deletion is walking them (beginArchiveDeletion).
func (s *Store) noteHolders(entries []store.ArchiveEntry, places []archivePlace) {
	s.deletingMu.Lock()
	defer s.deletingMu.Unlock()
	for i, p := range places {
		if p.format != archHolder {
			continue
		}
		if ps, ok := s.deleting[entries[i].Owner]; ok {
			s.deleting[entries[i].Owner] = append(ps, bytes.Clone(p.pos[:]))
		}
	}
}

// unshareAt is unshareArchive for the holders at the given positions of
// owner's archive.
func unshareAt(db *pebble.DB, owner string, positions [][]byte) error {
	if len(positions) == 0 {
		return nil
	}
	b := db.NewBatch()
	defer b.Close()
	for _, pos := range positions {
		k := append(archivePrefix(tagArchive, owner, ""), pos...)
		v, found, err := get(db, k)
		if err != nil {
			return err
		}
		if !found {
			continue
		}
		a, err := decodeArchived(v)
		if err != nil {
			return fmt.Errorf("archive key %q: %w", k, err)
		}
		if a.format != archHolder {
			continue
		}
		if err := unshare(db, b, owner, pos, a); err != nil {
			return err
		}
	}
	if b.Empty() {
		return nil
	}
	return b.Commit(pebble.NoSync)
}

// unshareArchive gives every copy that refers to a stanza in owner's
// archive a stanza of its own. It reads the whole archive: deleting an
// archive is rare, and keeping a count of holders would cost every append.
func unshareArchive(db *pebble.DB, owner string) error {
	lo, hi := userPrefix(tagArchive, owner)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	b := db.NewBatch()
	defer func() { b.Close() }()
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		a, err := decodeArchived(v)
		if err != nil {
			return fmt.Errorf("archive key %q: %w", it.Key(), err)
		}
		if a.format != archHolder {
			continue
		}
		if err := unshare(db, b, owner, it.Key()[len(lo):], a); err != nil {
			return err
		}
		if b.Count() >= archiveExpireBatch {
			if err := b.Commit(pebble.NoSync); err != nil {
				return err
			}
			b.Close()
			b = db.NewBatch()
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if b.Empty() {
		return nil
	}
	return b.Commit(pebble.NoSync)
}

// deleteArchiveBatch adds the deletion of owner's archive, indexes and
// preferences to b. DeleteAccount calls it so that an account and its
// archive go in one batch. The caller has called beginArchiveDeletion.
func (s *Store) deleteArchiveBatch(b *pebble.Batch, owner string) error {
	if err := validName("archive owner", owner); err != nil {
		return err
	}
	var errs []error
	for _, tag := range []string{tagArchive, tagArchiveID, tagArchiveWith} {
		lo, hi := userPrefix(tag, owner)
		errs = append(errs, b.DeleteRange(lo, hi, nil))
	}
	errs = append(errs, b.Delete(pointKey(tagArchivePrefs, owner), nil))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pebble store: delete archive %q: %w", owner, err)
	}
	return nil
}

// archiveExpireBatch bounds the messages deleted per batch, and so the memory of
// one ExpireArchive step.
const archiveExpireBatch = 1024

// ExpireArchive implements store.Archive. Keys are owner-major, so each
// owner's expired messages are the head of its range: the walk reads those
// (their values name the index keys to delete) and then seeks past the
// owner. An hourly run costs one seek per owner with an archive plus one
// step and up to three deletions per expired message (no id index
// deletion for an id that carries its position), and no reads of messages
// it keeps. Deletions are not fsynced: one lost in a crash is deleted
// again on the next run.
func (s *Store) ExpireArchive(ctx context.Context, before time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	db, err := s.enter()
	if err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	n, err := s.expireArchive(ctx, db, before)
	if err != nil {
		return n, fmt.Errorf("pebble store: expire archives: %w", err)
	}
	return n, nil
}

func (s *Store) expireArchive(ctx context.Context, db *pebble.DB, before time.Time) (int, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte(tagArchive), UpperBound: prefixEnd(tagArchive)})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	cut := appendPos(nil, before, 0)
	b := db.NewBatch()
	defer func() { b.Close() }()
	n, pending := 0, 0
	commit := func() error {
		if pending == 0 {
			return nil
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			return err
		}
		n += pending
		pending = 0
		b.Close()
		b = db.NewBatch()
		return ctx.Err()
	}
	for ok := it.First(); ok; {
		k := it.Key()
		i := bytes.IndexByte(k[len(tagArchive):], sep)
		if i < 0 || len(k)-len(tagArchive)-i-1 != posLen {
			return n, fmt.Errorf("archive key %q: %w", k, errCorrupt)
		}
		owner := string(k[len(tagArchive) : len(tagArchive)+i])
		pos := k[len(k)-posLen:]
		if bytes.Compare(pos, cut) >= 0 {
			_, hi := userPrefix(tagArchive, owner)
			ok = it.SeekGE(hi)
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return n, err
		}
		a, err := decodeArchived(v)
		if err != nil {
			return n, fmt.Errorf("archive key %q: %w", k, err)
		}
		// A holder's referring copy has the same <pos>, and so goes in
		// this run too.
		for _, dk := range archiveMessageKeys(owner, pos, a) {
			if err := b.Delete(dk, nil); err != nil {
				return n, err
			}
		}
		if pending++; pending >= archiveExpireBatch {
			if err := commit(); err != nil {
				return n, err
			}
		}
		ok = it.Next()
	}
	if err := it.Error(); err != nil {
		return n, err
	}
	return n, commit()
}
