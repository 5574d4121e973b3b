package pebble

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parley-im/parley/internal/benchutil"
	"github.com/parley-im/parley/internal/store"
)

// archiveBenchN is the size of the archive BenchmarkArchive queries most;
// archiveSenderN that of a sender's archive whose copies refer to their
// recipients' stanzas.
const (
	archiveBenchN  = 100_000
	archiveSenderN = 10_000
)

var benchWords = strings.Fields(`the a to and of I you it is in that for on are be this with
have was not we do can what so at just but my if all your about like will get me no
how time when up out they one there know think good see go now then here yes ok lunch
meeting tomorrow tonight thanks later sure call message build deploy server release`)

// archiveStanza is a chat message of about 300 bytes as the router stores
// it: addresses, id, origin-id, a chat state and a body of random words, so
// that block compression sees realistic text rather than repeats.
func archiveStanza(r *rand.Rand, i int, peer string) []byte {
	var body strings.Builder
	for body.Len() < 90 {
		body.WriteString(benchWords[r.IntN(len(benchWords))])
		body.WriteByte(' ')
	}
	return fmt.Appendf(nil, `<message xmlns="jabber:client" to="alice@example.org/phone" from="%s/laptop" type="chat" id="%016x">`+
		`<body>%s</body><active xmlns="http://jabber.org/protocol/chatstates"/>`+
		`<origin-id xmlns="urn:xmpp:sid:0" id="%016x"/></message>`, peer, r.Uint64(), body.String(), uint64(i))
}

// BenchmarkArchive fills one user's archive with 100,000 messages, one a
// second, with 100 peers of which "peer0@example.org" wrote every 100th
// message, then measures one query per iteration:
//
//	go test -run '^$' -bench BenchmarkArchive -v ./internal/store/pebble/
//
// -v shows the on-disk bytes per message. The block cache is sized so that
// blocks get DefaultCacheSize: Pebble charges memtables against the block
// cache, and with the default options two 32 MiB memtables leave the 64 MiB
// cache empty, so every page would be read from the OS page cache instead.
//
// ScanNoIndex is the cost the with index saves: the walk a scan-based with
// filter makes over the whole archive when the peer has fewer messages
// than a page. The Sender pages read the archive of a user who sent 10,000
// messages to local users: each of his copies reads its stanza from the
// recipient's copy.
func BenchmarkArchive(b *testing.B) {
	s := openTest(b, Options{Durability: DurabilityOS, CacheSize: DefaultCacheSize + 2*DefaultMemTableSize})
	b.Cleanup(func() { _ = s.Close() })
	ctx := b.Context()
	r := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var stanzaBytes int
	for i := range archiveBenchN {
		peer := fmt.Sprintf("peer%d@example.org", i%100)
		st := archiveStanza(r, i, peer)
		stanzaBytes += len(st)
		m := store.ArchivedMessage{ID: fmt.Sprintf("%016x", r.Uint64()), Time: start.Add(time.Duration(i) * time.Second), With: peer, Stanza: st}
		if err := s.AppendArchive(ctx, "alice", m); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.db.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := s.db.Compact(ctx, []byte(tagArchive), prefixEnd(tagArchivePrefs), true); err != nil {
		b.Fatal(err)
	}
	var sst, total int64
	err := filepath.WalkDir(s.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += info.Size()
		if strings.HasSuffix(path, ".sst") {
			sst += info.Size()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d messages, mean stanza %d B; after flush+compaction: tables %.1f B/msg, whole directory %.1f B/msg",
		archiveBenchN, stanzaBytes/archiveBenchN, float64(sst)/archiveBenchN, float64(total)/archiveBenchN)

	all, err := s.QueryArchive(ctx, "alice", store.ArchiveQuery{Max: archiveBenchN})
	if err != nil || len(all.Items) != archiveBenchN {
		b.Fatalf("QueryArchive all: %d items, %v", len(all.Items), err)
	}
	mid := all.Items[archiveBenchN/2].ID

	// dave sent 10,000 messages to local users peer0..peer99: his copies
	// refer to theirs for the stanza (one id per routed message), so each
	// item of his pages costs a second point read.
	for i := range archiveSenderN {
		peer := fmt.Sprintf("peer%d", i%100)
		tm := start.Add(time.Duration(i) * time.Second)
		id := store.NewArchiveID(tm)
		st := archiveStanza(r, i, "dave@example.org")
		if err := s.AppendArchives(ctx,
			store.ArchiveEntry{Owner: peer, Message: store.ArchivedMessage{ID: id, Time: tm, With: "dave@example.org", Stanza: st}},
			store.ArchiveEntry{Owner: "dave", Message: store.ArchivedMessage{ID: id, Time: tm, With: peer + "@example.org", Stanza: st}},
		); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.db.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := s.db.Compact(ctx, []byte(tagArchive), prefixEnd(tagArchivePrefs), true); err != nil {
		b.Fatal(err)
	}

	pageOf := func(owner, name string, q store.ArchiveQuery, want int) {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				p, err := s.QueryArchive(ctx, owner, q)
				if err != nil {
					b.Fatal(err)
				}
				if len(p.Items) != want {
					b.Fatalf("%d items, want %d", len(p.Items), want)
				}
			}
		})
	}
	page := func(name string, q store.ArchiveQuery, want int) { pageOf("alice", name, q, want) }
	page("LastPage50", store.ArchiveQuery{Max: 50, Last: true}, 50)
	page("FirstPage50", store.ArchiveQuery{Max: 50}, 50)
	page("AfterMiddleID50", store.ArchiveQuery{AfterID: mid, Max: 50}, 50)
	page("BeforeMiddleID50", store.ArchiveQuery{BeforeID: mid, Max: 50, Last: true}, 50)
	page("With50", store.ArchiveQuery{With: "peer0@example.org", Max: 50}, 50)
	page("WithLast50", store.ArchiveQuery{With: "peer0@example.org", Max: 50, Last: true}, 50)
	page("StartEnd50", store.ArchiveQuery{Start: start.Add(40_000 * time.Second), End: start.Add(43_600 * time.Second), Max: 50}, 50)
	pageOf("dave", "SenderFirstPage50", store.ArchiveQuery{Max: 50}, 50)
	pageOf("dave", "SenderWith50", store.ArchiveQuery{With: "peer0@example.org", Max: 50}, 50)
	b.Run("ScanNoIndex", func(b *testing.B) {
		lo, hi := userPrefix(tagArchive, "alice")
		for b.Loop() {
			it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for ok := it.First(); ok; ok = it.Next() {
				a, err := decodeArchived(it.Value())
				if err != nil {
					b.Fatal(err)
				}
				if a.with == "nobody@example.org" {
					n++
				}
			}
			if err := it.Close(); err != nil || n != 0 {
				b.Fatalf("scan: %d, %v", n, err)
			}
		}
	})
	b.Run("Append", func(b *testing.B) {
		st := archiveStanza(r, 0, "peer1@example.org")
		for b.Loop() {
			// Unique across -count runs, which share the archive.
			i := appendSeq.Add(1)
			m := store.ArchivedMessage{ID: fmt.Sprintf("append%d", i), Time: start.Add(archiveBenchN * time.Second), With: "peer1@example.org", Stanza: st}
			if err := s.AppendArchive(ctx, "bob", m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

var appendSeq atomic.Int64

// BenchmarkArchiveExpireIdle measures an hourly expiry run that finds
// nothing to delete in 10,000 archives of 10 messages each: the floor cost
// of the job, one seek per owner.
//
//	go test -run '^$' -bench BenchmarkArchiveExpireIdle ./internal/store/pebble/
func BenchmarkArchiveExpireIdle(b *testing.B) {
	s := openTest(b, Options{Durability: DurabilityOS, CacheSize: DefaultCacheSize + 2*DefaultMemTableSize})
	b.Cleanup(func() { _ = s.Close() })
	ctx := b.Context()
	const owners, per = 10_000, 10
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	stanza := archiveStanza(rand.New(rand.NewPCG(3, 4)), 0, "peer@example.org")
	for o := range owners {
		for i := range per {
			m := store.ArchivedMessage{ID: fmt.Sprint(i), Time: start.Add(time.Duration(i) * time.Second), With: "peer@example.org", Stanza: stanza}
			if err := s.AppendArchive(ctx, fmt.Sprintf("user%05d", o), m); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.db.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := s.db.Compact(ctx, []byte(tagArchive), prefixEnd(tagArchivePrefs), true); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		n, err := s.ExpireArchive(ctx, start)
		if err != nil || n != 0 {
			b.Fatalf("ExpireArchive = %d, %v", n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/owners, "ns/owner")
}

// BenchmarkArchiveRoutedCopies measures AppendArchives of a routed chat
// message's two copies (the recipient's and the sender's, one batch)
// among 2,000 users:
//
//   - OneID: one id that carries its position for both copies, as the
//     router makes them: one stanza and three keys (two messages, one
//     conversation key);
//   - PositionIDs: an id of its own per copy (store.NewArchiveID): two
//     stanzas and four keys (a message and a with index entry per copy);
//   - UUIDs: six keys (the id index entries too).
//
// Each sub-benchmark has a fresh store. cpu-ns/op is the process's CPU
// time per message, with the flush of what the run wrote (and whatever
// compaction ran meanwhile): on a shared machine it is steadier than
// ns/op. Run them alternately with a fixed count, and compare medians:
//
//	for i in 1 2 3 4 5 6; do for v in OneID PositionIDs UUIDs; do
//	  go test -run '^$' -bench "BenchmarkArchiveRoutedCopies/$v\$" -benchtime 60000x ./internal/store/pebble/
//	done; done
func BenchmarkArchiveRoutedCopies(b *testing.B) {
	const users = 2000
	names := make([]string, users)
	for i := range names {
		names[i] = fmt.Sprintf("user%04d", i)
	}
	r := rand.New(rand.NewPCG(5, 6))
	stanzas := make([][]byte, 64)
	for i := range stanzas {
		stanzas[i] = archiveStanza(r, i, "user0001@example.org")
	}
	// uuid makes a random version 4 UUID as cheaply as NewArchiveID makes
	// its ids, so that the two runs differ in the store only.
	uuid := func() string {
		var u [16]byte
		binary.LittleEndian.PutUint64(u[:], r.Uint64())
		binary.LittleEndian.PutUint64(u[8:], r.Uint64())
		u[6] = u[6]&0x0f | 0x40
		u[8] = u[8]&0x3f | 0x80
		h := hex.EncodeToString(u[:])
		return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	}
	for _, c := range []struct {
		name string
		ids  func(now time.Time) (string, string, time.Time)
	}{
		{"OneID", func(now time.Time) (string, string, time.Time) {
			id := store.NewArchiveID(now)
			p, _ := store.ParseArchiveID(id)
			return id, id, p.Time()
		}},
		{"PositionIDs", func(now time.Time) (string, string, time.Time) {
			// As mam archives them: at the time the id carries.
			id1, id2 := store.NewArchiveID(now), store.NewArchiveID(now)
			p, _ := store.ParseArchiveID(id1)
			return id1, id2, p.Time()
		}},
		{"UUIDs", func(now time.Time) (string, string, time.Time) { return uuid(), uuid(), now }},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := openTest(b, Options{Durability: DurabilityOS})
			b.Cleanup(func() { _ = s.Close() })
			ctx := b.Context()
			i := 0
			cpu0 := benchutil.CPUTime()
			for b.Loop() {
				to, from := names[i%users], names[(i*7+1)%users]
				id1, id2, at := c.ids(time.Now())
				st := stanzas[i%len(stanzas)]
				err := s.AppendArchives(ctx,
					store.ArchiveEntry{Owner: to, Message: store.ArchivedMessage{ID: id1, Time: at, With: from + "@example.org", Stanza: st}},
					store.ArchiveEntry{Owner: from, Message: store.ArchivedMessage{ID: id2, Time: at, With: to + "@example.org", Stanza: st}})
				if err != nil {
					b.Fatal(err)
				}
				i++
			}
			if err := s.db.Flush(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(benchutil.CPUTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
