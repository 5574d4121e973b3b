package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
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
// its recipient and for its sender, with the same stanza. The stanza is
// stored once (AppendArchives): the first copy holds it (value format
// archHolder, naming the other copy) and the second refers to it
// (archRef: the holder's owner and <pos>, no stanza). That halves the
// bytes every routed message adds to the write-ahead log, the memtable,
// flushes and compactions, which were most of the archive's CPU cost
// (docs/archive.md). A copy that holds a stanza for another never goes
// before that other copy does:
//
//   - deleting a whole archive (DeleteArchive, DeleteAccount) first
//     rewrites every copy elsewhere that refers to one of its stanzas as a
//     copy of its own (format 1), then range-deletes;
//   - expiry does the same for a holder it deletes whose referring copy
//     is not yet expired (the two positions differ by the microseconds
//     between the two ids).
//
// A reader that still meets a reference whose holder is gone (a crash
// between the two steps of expiry, which the next run finishes) skips it.
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
	k := make([]byte, 0, len(tag)+len(owner)+len(with)+2+posLen+1)
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
	return append(archivePrefix(tagArchiveID, owner, ""), id...)
}

// archiveMessageKeys returns the keys of owner's message at pos with
// archive id id and with with: the message, its id index entry unless the
// id carries pos (AppendArchives wrote none, and deleting a key that was
// never written would still write a tombstone), and its with index entry.
func archiveMessageKeys(owner string, pos []byte, id, with string) [][]byte {
	keys := make([][]byte, 0, 3)
	keys = append(keys, append(archivePrefix(tagArchive, owner, ""), pos...))
	if p, ok := store.ParseArchiveID(id); !ok || !bytes.Equal(p[:], pos) {
		keys = append(keys, archiveIDKey(owner, id))
	}
	if with != "" {
		keys = append(keys, append(archivePrefix(tagArchiveWith, owner, with), pos...))
	}
	return keys
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
			// Only the head is decoded, and the value is not copied.
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
// id and the with (decodeArchived reads that head alone for lookups by id
// and for expiry); the time is in the key:
//
//	archInline  format, id, with, stanza (the rest, no length)
//	archHolder  format, id, with, other owner, other <pos>, stanza
//	archRef     format, id, with, holder owner, holder <pos>
//
// A holder names the copy that refers to its stanza, so that deleting the
// holder can give that copy the stanza first.
const (
	archInline = formatV1
	archHolder = 2
	archRef    = 3
)

// archivedValue is a decoded archived message value. other and otherPos
// are set for archHolder and archRef; stanza for archInline and archHolder.
// otherPos and stanza alias the decoded buffer.
type archivedValue struct {
	format   byte
	id, with string
	other    string
	otherPos []byte
	stanza   []byte
}

// encodeArchived returns the value of m in format archInline, or in
// archHolder or archRef with the other copy's owner and <pos>.
func encodeArchived(format byte, m store.ArchivedMessage, other string, otherPos []byte) []byte {
	n := 1 + 2 + len(m.ID) + 2 + len(m.With)
	if format != archInline {
		n += 2 + len(other) + posLen
	}
	if format != archRef {
		n += len(m.Stanza)
	}
	b := make([]byte, 0, n)
	b = append(b, format)
	b = appendString(b, m.ID)
	b = appendString(b, m.With)
	if format != archInline {
		b = appendString(b, other)
		b = append(b, otherPos...)
	}
	if format != archRef {
		b = append(b, m.Stanza...)
	}
	return b
}

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
		if len(d.b) < posLen {
			d.fail()
		} else {
			a.otherPos, d.b = d.b[:posLen], d.b[posLen:]
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

// readArchived returns the message at pos with value v, reading the
// stanza from its holder if v refers to one. ok is false when the holder
// is gone (see the key layout).
func readArchived(r pebble.Reader, pos, v []byte) (m store.ArchivedMessage, ok bool, err error) {
	a, err := decodeArchived(v)
	if err != nil {
		return store.ArchivedMessage{}, false, err
	}
	m = store.ArchivedMessage{ID: a.id, Time: posTime(pos), With: a.with}
	if a.format != archRef {
		m.Stanza = bytes.Clone(a.stanza)
		return m, true, nil
	}
	hk := append(archivePrefix(tagArchive, a.other, ""), a.otherPos...)
	hv, found, err := get(r, hk)
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
	m.Stanza = h.stanza // get copied the value
	return m, true, nil
}

// inlineFromHolder returns, for holder value h, the value the copy that
// refers to it (ref, already decoded) gets when the holder goes: a copy
// of its own with the holder's stanza.
func inlineFromHolder(ref archivedValue, h archivedValue) []byte {
	return encodeArchived(archInline, store.ArchivedMessage{ID: ref.id, With: ref.with, Stanza: h.stanza}, "", nil)
}

// unshare gives the copy that refers to holder h (owner's copy at pos) a
// stanza of its own, in b: if that copy is still there and still refers
// to h. The caller holds s.archiveDel.
func unshare(r pebble.Reader, b *pebble.Batch, owner string, pos []byte, h archivedValue) error {
	rk := append(archivePrefix(tagArchive, h.other, ""), h.otherPos...)
	rv, found, err := get(r, rk)
	if err != nil || !found {
		return err
	}
	ref, err := decodeArchived(rv)
	if err != nil {
		return fmt.Errorf("archive key %q: %w", rk, err)
	}
	if ref.format != archRef || ref.other != owner || !bytes.Equal(ref.otherPos, pos) {
		return nil
	}
	return b.Set(rk, inlineFromHolder(ref, h), nil)
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
	pos     []byte
	carries bool
	format  byte
	other   int
}

// AppendArchives implements store.Archive: every entry in one batch. Two
// entries with the same stanza for different owners (a routed message's
// copies for its recipient and its sender) store it once: the first holds
// it, the second refers to it (see the key layout).
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
			p.pos = idPos[:]
		} else {
			p.pos = appendPos(nil, e.Message.Time, store.NextArchiveSeq())
		}
		places = append(places, p)
	}
	for i := range places {
		if places[i].other >= 0 || len(entries[i].Message.Stanza) == 0 {
			continue
		}
		for j := i + 1; j < len(places); j++ {
			if places[j].other < 0 && entries[j].Owner != entries[i].Owner &&
				bytes.Equal(entries[j].Message.Stanza, entries[i].Message.Stanza) {
				places[i].format, places[i].other = archHolder, j
				places[j].format, places[j].other = archRef, i
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
	for i, e := range entries {
		owner, m, p := e.Owner, e.Message, places[i]
		var other string
		var otherPos []byte
		if p.other >= 0 {
			other, otherPos = entries[p.other].Owner, places[p.other].pos
		}
		errs := []error{b.Set(append(archivePrefix(tagArchive, owner, ""), p.pos...), encodeArchived(p.format, m, other, otherPos), nil)}
		if !p.carries {
			errs = append(errs, b.Set(archiveIDKey(owner, m.ID), p.pos, nil))
		}
		if m.With != "" {
			errs = append(errs, b.Set(append(archivePrefix(tagArchiveWith, owner, m.With), p.pos...), nil, nil))
		}
		if err := errors.Join(errs...); err != nil {
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
	return nil
}

// QueryArchive implements store.Archive. Start, End, AfterID and BeforeID
// become the bounds of one iterator, so a page costs one or two id lookups
// (archivePosOf: a point read each, two for an id that carries a position
// but was indexed), one seek and Max steps whatever the archive's size;
// Last pages walk backwards from the upper bound. With walks the with
// index and reads each message by point lookup, all from one snapshot.
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
	prefix := msgPrefix
	if q.With != "" {
		prefix = archivePrefix(tagArchiveWith, owner, q.With)
	}
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
	it, err := r.NewIter(&pebble.IterOptions{
		LowerBound: append(slices.Clip(prefix), lo...),
		UpperBound: append(slices.Clip(prefix), hi...),
	})
	if err != nil {
		return store.ArchivePage{}, err
	}
	defer it.Close()
	var msgs *pebble.Iterator // the with path reads messages through this one
	if q.With != "" {
		mlo, mhi := userPrefix(tagArchive, owner)
		if msgs, err = r.NewIter(&pebble.IterOptions{LowerBound: mlo, UpperBound: mhi}); err != nil {
			return store.ArchivePage{}, err
		}
		defer msgs.Close()
	}

	step, first := it.Next, it.First
	if q.Last {
		step, first = it.Prev, it.Last
	}
	if q.Max > 0 {
		page.Items = make([]store.ArchivedMessage, 0, min(q.Max, 256))
	}
	ok := first()
	for ; ok && (q.Max <= 0 || len(page.Items) < q.Max); ok = step() {
		pos := it.Key()[len(prefix):]
		if len(pos) != posLen {
			return store.ArchivePage{}, fmt.Errorf("archive key %q: %w", it.Key(), errCorrupt)
		}
		var v []byte
		if msgs == nil {
			if v, err = it.ValueAndErr(); err != nil {
				return store.ArchivePage{}, err
			}
		} else {
			mk := append(slices.Clip(msgPrefix), pos...)
			// The snapshot holds index and message together, so a miss
			// is corruption, not a race.
			if !msgs.SeekGE(mk) || !bytes.Equal(msgs.Key(), mk) {
				if err := msgs.Error(); err != nil {
					return store.ArchivePage{}, err
				}
				return store.ArchivePage{}, fmt.Errorf("with index entry %q has no message: %w", it.Key(), errCorrupt)
			}
			if v, err = msgs.ValueAndErr(); err != nil {
				return store.ArchivePage{}, err
			}
		}
		m, found, err := readArchived(r, pos, v)
		if err != nil {
			return store.ArchivePage{}, fmt.Errorf("archive key %q: %w", it.Key(), err)
		}
		if found {
			page.Items = append(page.Items, m)
		}
	}
	if err := it.Error(); err != nil {
		return store.ArchivePage{}, err
	}
	page.Complete = !ok
	if q.Last {
		slices.Reverse(page.Items)
	}
	page.Count = countIfProven(q, page)
	return page, nil
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
// archive. It takes the locks that keep new holders in owner's archive
// and other rewrites of copies out (Store.archive, Store.archiveDel), then
// rewrites every copy in another archive that refers to a stanza owner's
// archive holds as a copy of its own. Those rewrites are committed in
// batches without an fsync: the deletion's own commit comes after them in
// the log, so a crash cannot keep the deletion and lose them. The caller
// commits the deletion (deleteArchiveBatch) and then calls end.
func (s *Store) beginArchiveDeletion(db *pebble.DB, owner string) (end func(), err error) {
	s.archiveDel.Lock()
	l := &s.archive[s.stripe(owner)]
	l.Lock()
	end = func() {
		l.Unlock()
		s.archiveDel.Unlock()
	}
	if err := unshareArchive(db, owner); err != nil {
		end()
		return nil, fmt.Errorf("pebble store: delete archive %q: %w", owner, err)
	}
	return end, nil
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

// unshareOne is unshare in a batch of its own, under Store.archiveDel.
func (s *Store) unshareOne(db *pebble.DB, owner string, pos []byte, h archivedValue) error {
	s.archiveDel.Lock()
	defer s.archiveDel.Unlock()
	b := db.NewBatch()
	defer b.Close()
	if err := unshare(db, b, owner, pos, h); err != nil || b.Empty() {
		return err
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
		// The copy that refers to this one's stanza was archived a
		// moment later and may not be expired yet: it gets the stanza
		// first, committed before this deletion.
		if a.format == archHolder && bytes.Compare(a.otherPos, cut) >= 0 {
			if err := s.unshareOne(db, owner, pos, a); err != nil {
				return n, err
			}
		}
		for _, dk := range archiveMessageKeys(owner, pos, a.id, a.with) {
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
