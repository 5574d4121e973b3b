package pebble

// The queue journal.
//
// Most queue items live for one round trip: the router enqueues a message,
// delivers it, and the recipient's acknowledgement deletes it a few
// milliseconds later. Written to Pebble, each such item costs a memtable
// insert for the item, one for its deletion and one for the qh/ mark, and a
// commit for each; profiles of the chat benchmark put that at a fifth of
// the server's CPU. The journal keeps those items out of Pebble: Enqueue
// appends the item to an append-only file (group-committed and fsynced like
// Pebble's own log) and keeps it in memory as a "hot" item; an Ack of a hot
// item only appends a small ack record. A checkpoint, run when the current
// segment file has grown past a limit or has been open for a while, moves
// the hot items that are still unacknowledged (the recipient is offline or
// slow) into Pebble in one synced batch, together with the qh/ marks of the
// users whose seqs the journal issued, and deletes the segments it covered.
//
// Files: <store dir>/queue-journal/<segment id, 16 hex digits>.log. A
// record is a header (payload length, CRC-32C of the payload; both uint32
// little-endian) and a payload: a type byte and its fields (see appendPut
// and friends). The meta key m/queue-journal holds the highest segment id
// whose items are already in Pebble; it is written in the checkpoint's
// batch, so a crash between that commit and the deletion of the files
// never replays a segment twice.
//
// Open replays the segments above the mark: puts minus the acks that
// follow them, a drop record (DeleteAccount) clearing the user's earlier
// items. It writes the survivors and qh/ marks to Pebble like a checkpoint
// and deletes the files. A record that is cut short or fails its CRC ends
// its segment: a crash can tear only the tail of the last write, and
// nothing after a torn record was ever acknowledged (the fsync that would
// have acknowledged it covers the torn bytes too).

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	journalDirName = "queue-journal"
	journalExt     = ".log"
	keyJournalMark = tagMeta + "queue-journal"

	recPut  = 1
	recAck  = 2
	recDrop = 3

	recHeader = 8
	// maxRecord bounds a record's payload on replay; a length above it is
	// a torn or corrupt header, not a record. Stanzas are far smaller.
	maxRecord = 64 << 20

	// DefaultJournalSegment is the segment size after which a checkpoint
	// runs (Options.JournalSegmentSize).
	DefaultJournalSegment = 8 << 20
	// journalMaxAge is how long a non-empty segment may stay open: it
	// bounds how long an offline recipient's items stay in memory.
	journalMaxAge = 10 * time.Second

	// DefaultJournalSyncGap is the least time between the starts of two
	// fsyncs of the journal (Options.JournalSyncGap). Group commit alone
	// fsyncs as often as the disk allows (about 2,200 times a second at
	// 12,000 msgs/s here, 5 messages each), and each fsync cost ~50 µs of
	// CPU; at most one per 2 ms took the server's CPU per message from 71
	// to 53-58 µs at that rate (docs/benchmarks.md). Delivery does not
	// wait for it (EnqueueVisible); the sender's acknowledgement waits up
	// to this much longer, and only when fsyncs come this close together.
	DefaultJournalSyncGap = 2 * time.Millisecond
	// syncGapMinBatch: the gap applies only after an fsync that carried
	// at least this many puts and drops. A session's stanzas are routed
	// one after the other, each waiting for its fsync, so a lone client
	// sending a burst gets one message per fsync: paced, 500 a second.
	// Unpaced batches of one to three are such few senders; under load
	// there are many per fsync.
	syncGapMinBatch = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// journal is the append side: an in-memory buffer that a leader (whoever
// needs its bytes written and finds nobody writing) writes and, if asked,
// fsyncs; the others wait. Appends made while a write is in progress are
// written by the next leader, so concurrent Enqueues share one write and
// one fsync, as in Pebble's commit pipeline. Positions are byte offsets in
// the journal as a whole, across segments.
type journal struct {
	dir   string
	fsync bool
	limit int64

	mu       sync.Mutex
	cond     sync.Cond // L = &mu; signalled when a write ends
	f        *os.File  // current segment; nil after close
	seg      uint64    // id of the segment new appends go to
	segBytes int64
	segStart time.Time
	buf      []byte // appended, not yet handed to a writer
	spare    []byte
	appended int64 // position after the last append
	written  int64 // position up to which bytes are written to a file
	synced   int64 // position up to which bytes are fsynced
	syncWant int64 // highest position some waiter wants fsynced
	busy     bool  // a leader or rotate is writing
	// syncGap is the least time between the starts of two fsyncs (0:
	// none) once they carry syncGapMinBatch records each; lastSync is when
	// the last one started, lastBatch how many puts and drops it carried.
	syncGap   time.Duration
	lastSync  time.Time
	lastBatch int64
	durables  int64 // puts and drops appended
	syncedRec int64 // durables at the start of the last fsync
	syncs     int64 // fsyncs made, for tests
	// observeSync, if set, gets the duration of each write+fsync.
	observeSync func(time.Duration)
	log         *slog.Logger // for contained callback panics; may be nil
	err         error        // sticky: after a failed write nothing is acknowledged

	kick chan struct{} // a checkpoint is due (segment over limit)

	// async are the commitAsync callers waiting for their position;
	// the completer goroutine commits for them and calls them back.
	async     []asyncWait
	asyncKick chan struct{} // wakes the completer
	closed    bool          // close has run: the completer exits once async is empty
}

// asyncWait is one commitAsync caller: fn runs once pos is committed.
type asyncWait struct {
	pos int64
	fn  func(error)
}

// openJournal creates the directory and the first segment, id seg.
func openJournal(dir string, seg uint64, fsync bool, limit int64) (*journal, error) {
	j := &journal{dir: dir, fsync: fsync, limit: limit, kick: make(chan struct{}, 1), asyncKick: make(chan struct{}, 1)}
	j.cond.L = &j.mu
	f, err := j.create(seg)
	if err != nil {
		return nil, err
	}
	j.f, j.seg, j.segStart = f, seg, time.Now()
	go j.completer()
	return j, nil
}

func segmentName(id uint64) string { return fmt.Sprintf("%016x%s", id, journalExt) }

// create opens a new segment file and makes its directory entry durable.
func (j *journal) create(id uint64) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(j.dir, segmentName(id)), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("queue journal: create segment: %w", err)
	}
	if j.fsync {
		if err := syncDir(j.dir); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("queue journal: %w", err)
		}
	}
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// begin starts a record in j.buf: it takes j.mu and reserves the header.
// The caller appends the payload and calls end.
func (j *journal) begin() int {
	j.mu.Lock()
	start := len(j.buf)
	j.buf = append(j.buf, make([]byte, recHeader)...)
	return start
}

// end fills in the header of the record begun at start, releases j.mu and
// returns the position after the record and the segment it belongs to.
func (j *journal) end(start int) (pos int64, seg uint64) {
	payload := j.buf[start+recHeader:]
	binary.LittleEndian.PutUint32(j.buf[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(j.buf[start+4:], crc32.Checksum(payload, castagnoli))
	n := int64(len(j.buf) - start)
	j.appended += n
	j.segBytes += n
	pos, seg = j.appended, j.seg
	over := j.segBytes >= j.limit
	j.mu.Unlock()
	if over {
		select {
		case j.kick <- struct{}{}:
		default:
		}
	}
	return pos, seg
}

func (j *journal) put(user string, seq uint64, stored, expires time.Time, stanza []byte) (int64, uint64) {
	start := j.begin()
	j.buf = appendPut(j.buf, user, seq, stored, expires, stanza)
	j.durables++
	return j.end(start)
}

func (j *journal) ack(user string, seqs []uint64) int64 {
	start := j.begin()
	j.buf = appendAck(j.buf, user, seqs)
	pos, _ := j.end(start)
	return pos
}

func (j *journal) drop(user string) int64 {
	start := j.begin()
	j.buf = appendDrop(j.buf, user)
	j.durables++
	pos, _ := j.end(start)
	return pos
}

func appendPut(b []byte, user string, seq uint64, stored, expires time.Time, stanza []byte) []byte {
	b = append(b, recPut)
	b = appendString(b, user)
	b = binary.AppendUvarint(b, seq)
	b = appendTime(b, stored)
	b = appendTime(b, expires)
	return append(b, stanza...)
}

func appendAck(b []byte, user string, seqs []uint64) []byte {
	b = append(b, recAck)
	b = appendString(b, user)
	b = binary.AppendUvarint(b, uint64(len(seqs)))
	for _, s := range seqs {
		b = binary.AppendUvarint(b, s)
	}
	return b
}

func appendDrop(b []byte, user string) []byte {
	return appendString(append(b, recDrop), user)
}

// commit returns once every byte up to pos is written (and fsynced if
// sync), or with the journal's sticky error.
func (j *journal) commit(pos int64, sync bool) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if sync && pos > j.syncWant {
		j.syncWant = pos
	}
	for {
		// Done first: bytes that reached the file before a failure, or
		// before close, stay committed.
		if j.committed(pos, sync) {
			return nil
		}
		if j.err != nil {
			j.buf = j.buf[:0] // nothing is written any more: do not pile up
			return j.err
		}
		if j.busy {
			j.cond.Wait()
			continue
		}
		j.busy = true
		if j.fsync && j.syncWant > j.synced && j.syncGap > 0 && j.lastBatch >= syncGapMinBatch {
			if wait := j.syncGap - time.Since(j.lastSync); wait > 0 {
				// Let the batch grow instead of paying for another
				// fsync so soon (see DefaultJournalSyncGap).
				j.mu.Unlock()
				time.Sleep(wait)
				j.mu.Lock()
			}
		}
		buf, end, f := j.buf, j.appended, j.f
		j.buf = j.spare[:0]
		doSync := j.fsync && j.syncWant > j.synced
		start := time.Now()
		if doSync {
			j.lastSync = start
			j.lastBatch, j.syncedRec = j.durables-j.syncedRec, j.durables
		}
		j.mu.Unlock()
		err := writeAll(f, buf, doSync)
		if doSync && j.observeSync != nil {
			j.observeSync(time.Since(start))
		}
		j.mu.Lock()
		j.spare = buf[:0]
		j.busy = false
		if err != nil {
			j.err = err
		} else {
			j.written = end
			if doSync || !j.fsync {
				j.synced = end
			}
			if doSync {
				j.syncs++
			}
		}
		j.cond.Broadcast()
	}
}

// committed reports whether every byte up to pos is written, and fsynced
// if sync. j.mu must be held.
func (j *journal) committed(pos int64, sync bool) bool {
	return j.written >= pos && (!sync || j.synced >= pos)
}

// commitAsync is commit without the wait: fn runs once every byte up to
// pos is committed (nil) or the journal has failed or closed first (its
// error). fn runs on the completer goroutine, or on the caller's before
// commitAsync returns if the outcome is already known; it must not block,
// since it holds up the callbacks of every later position.
//
// The caller's goroutine is free meanwhile: a session reads its next
// stanza while its last one is fsynced, instead of parking for each fsync
// and being woken after it (two thread switches per message, and the
// fsync's whole latency added to the next stanza's).
func (j *journal) commitAsync(pos int64, fn func(error)) {
	j.mu.Lock()
	if j.committed(pos, j.fsync) {
		j.mu.Unlock()
		fn(nil)
		return
	}
	if err := j.err; err != nil { // set by close too: nothing is added after it
		j.mu.Unlock()
		fn(err)
		return
	}
	j.async = append(j.async, asyncWait{pos: pos, fn: fn})
	j.mu.Unlock()
	select {
	case j.asyncKick <- struct{}{}:
	default:
	}
}

// completer commits on behalf of commitAsync callers, as the leader of
// commit's group commit (or waiting for another leader), and calls back
// each caller whose position is committed, in position order. It exits
// after close, once no caller is left.
func (j *journal) completer() {
	type result struct {
		asyncWait
		err error
	}
	var ready []result
	for range j.asyncKick {
		for {
			j.mu.Lock()
			var want int64
			for _, w := range j.async {
				want = max(want, w.pos)
			}
			closed := j.closed
			j.mu.Unlock()
			if want == 0 {
				if closed {
					return
				}
				break
			}
			_ = j.commit(want, j.fsync) // each waiter is judged below
			j.mu.Lock()
			keep := j.async[:0]
			for _, w := range j.async {
				switch {
				case j.committed(w.pos, j.fsync): // done first, as in commit
					ready = append(ready, result{w, nil})
				case j.err != nil:
					ready = append(ready, result{w, j.err})
				default:
					keep = append(keep, w)
				}
			}
			clear(j.async[len(keep):])
			j.async = keep
			j.mu.Unlock()
			slices.SortFunc(ready, func(a, b result) int { return cmp.Compare(a.pos, b.pos) })
			for i, w := range ready {
				j.callBack(w.fn, w.err)
				ready[i] = result{}
			}
			ready = ready[:0]
		}
	}
}

// callBack runs one commitAsync callback. A panic in it (the session code
// the router calls from there) is contained and logged: the completer
// serves every session, and must outlive any one of them.
func (j *journal) callBack(fn func(error), err error) {
	defer func() {
		if p := recover(); p != nil {
			if j.log != nil {
				j.log.Error("queue journal: panic in a completion callback", "panic", p, "stack", string(debug.Stack()))
			}
		}
	}()
	fn(err)
}

func writeAll(f *os.File, buf []byte, sync bool) error {
	if len(buf) > 0 {
		if _, err := f.Write(buf); err != nil {
			return fmt.Errorf("queue journal: write: %w", err)
		}
	}
	if sync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("queue journal: fsync: %w", err)
		}
	}
	return nil
}

// due reports whether the current segment should be checkpointed.
func (j *journal) due(now time.Time) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.segBytes >= j.limit || (j.segBytes > 0 && now.Sub(j.segStart) >= journalMaxAge)
}

// rotate ends the current segment: from the moment it takes the lock,
// appends belong to the next one. It writes and fsyncs the old segment
// (its items are about to be moved and must not be lost if the move
// fails) and returns its id.
func (j *journal) rotate() (uint64, error) {
	j.mu.Lock()
	for j.busy {
		j.cond.Wait()
	}
	if j.err != nil {
		defer j.mu.Unlock()
		return 0, j.err
	}
	old, f := j.seg, j.f
	j.busy = true
	buf, end := j.buf, j.appended
	j.buf = j.spare[:0]
	j.seg++
	j.segBytes, j.segStart = 0, time.Now()
	next := j.seg
	j.mu.Unlock()

	err := writeAll(f, buf, true)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("queue journal: close segment: %w", cerr)
	}
	var nf *os.File
	if err == nil {
		nf, err = j.create(next)
	}

	j.mu.Lock()
	defer j.mu.Unlock()
	j.spare = buf[:0]
	j.busy = false
	j.cond.Broadcast()
	if err != nil {
		j.err = err
		return 0, err
	}
	j.f = nf
	j.written, j.synced = end, end
	return old, nil
}

// removeThrough deletes the segment files with ids up to id.
func (j *journal) removeThrough(id uint64) error { return removeSegments(j.dir, id) }

// removeSegments deletes the segment files in dir with ids up to id.
func removeSegments(dir string, id uint64) error {
	ids, err := listSegments(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range ids {
		if s <= id {
			if err := os.Remove(filepath.Join(dir, segmentName(s))); err != nil {
				errs = append(errs, fmt.Errorf("queue journal: remove segment: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// close writes what is buffered and closes the current segment.
func (j *journal) close() error {
	j.mu.Lock()
	for j.busy {
		j.cond.Wait()
	}
	defer j.mu.Unlock()
	if j.f == nil {
		return j.err
	}
	err := writeAll(j.f, j.buf, j.fsync)
	if err == nil {
		j.written, j.synced = j.appended, j.appended
	}
	j.buf = nil
	if cerr := j.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("queue journal: close segment: %w", cerr)
	}
	j.f = nil
	if j.err == nil {
		j.err = errJournalClosed
	}
	j.closed = true
	select { // the completer calls back whoever is left, then exits
	case j.asyncKick <- struct{}{}:
	default:
	}
	return err
}

var errJournalClosed = errors.New("queue journal: closed")

// listSegments returns the ids of the segment files in dir, ascending.
// Files that are not segments are left alone.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("queue journal: list %s: %w", dir, err)
	}
	var ids []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), journalExt)
		if !ok || len(name) != 16 || !e.Type().IsRegular() {
			continue
		}
		id, err := strconv.ParseUint(name, 16, 64)
		if err != nil {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// journalRecord is one decoded record.
type journalRecord struct {
	typ     byte
	user    string
	seq     uint64 // put
	stored  time.Time
	expires time.Time
	stanza  []byte   // put; aliases the segment's bytes
	seqs    []uint64 // ack
}

// scanSegment calls fn for each intact record of data, in order, and
// returns the number of bytes that formed intact records. A record that is
// cut short, too long, or fails its checksum ends the scan.
func scanSegment(data []byte, fn func(journalRecord)) int {
	off := 0
	for len(data)-off >= recHeader {
		n := int(binary.LittleEndian.Uint32(data[off:]))
		sum := binary.LittleEndian.Uint32(data[off+4:])
		if n > maxRecord || n > len(data)-off-recHeader {
			break
		}
		payload := data[off+recHeader : off+recHeader+n]
		if crc32.Checksum(payload, castagnoli) != sum {
			break
		}
		rec, ok := decodeRecord(payload)
		if !ok {
			break
		}
		fn(rec)
		off += recHeader + n
	}
	return off
}

func decodeRecord(p []byte) (journalRecord, bool) {
	if len(p) == 0 {
		return journalRecord{}, false
	}
	d := decoder{b: p[1:]}
	r := journalRecord{typ: p[0]}
	r.user = d.string()
	switch r.typ {
	case recPut:
		r.seq = d.uvarint()
		r.stored = d.time()
		r.expires = d.time()
		r.stanza = d.b
	case recAck:
		n := d.uvarint()
		if n > uint64(len(d.b)) { // each seq takes at least a byte
			return journalRecord{}, false
		}
		r.seqs = make([]uint64, 0, n)
		for range n {
			r.seqs = append(r.seqs, d.uvarint())
		}
		if len(d.b) != 0 {
			d.fail()
		}
	case recDrop:
		if len(d.b) != 0 {
			d.fail()
		}
	default:
		return journalRecord{}, false
	}
	if d.err != nil || r.user == "" || (r.typ == recPut && r.seq == 0) {
		return journalRecord{}, false
	}
	return r, true
}
