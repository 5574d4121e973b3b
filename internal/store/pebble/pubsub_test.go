package pebble

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parley-im/parley/internal/store"
)

// rawKeys counts the keys under tag (all owners).
func rawKeys(t *testing.T, s *Store, tag string) int {
	t.Helper()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte(tag), UpperBound: prefixEnd(tag)})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return n
}

func psItem(id string) store.PubSubItem {
	return store.PubSubItem{ID: id, Publisher: "ann@example.com/a", Published: time.Unix(1700000000, 0).UTC(), Payload: []byte("<x/>")}
}

// TestPubSubNoLeakedKeys checks the layout invariant behind cheap trimming:
// every stored item has exactly one "pi/" and one "px/" key, whatever mix
// of publishes, replacements, trims and retractions produced it.
func TestPubSubNoLeakedKeys(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{Durability: DurabilityOS})
	defer s.Close()
	if err := s.PutNode(ctx, store.PubSubNode{Owner: "ann", Node: "n", MaxItems: 3}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := s.PublishItem(ctx, "ann", "n", psItem(strconv.Itoa(i%5))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RetractItem(ctx, "ann", "n", "4"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Items(ctx, "ann", "n", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "3" || got[1].ID != "2" {
		t.Fatalf("items: %+v", got)
	}
	if n, x := rawKeys(t, s, tagPubSubItem), rawKeys(t, s, tagPubSubIndex); n != 2 || x != 2 {
		t.Fatalf("raw keys: %d items, %d index entries; want 2 and 2", n, x)
	}
	st, err := getPubSubNode(s.db, "ann", "n")
	if err != nil {
		t.Fatal(err)
	}
	if st.count != 2 {
		t.Fatalf("stored count %d, want 2", st.count)
	}
}

func TestPubSubInvalidNames(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{Durability: DurabilityOS})
	defer s.Close()
	for _, n := range []store.PubSubNode{{Owner: "", Node: "n"}, {Owner: "ann", Node: ""}, {Owner: "ann", Node: "a\x00b"}} {
		if err := s.PutNode(ctx, n); !errors.Is(err, ErrInvalidName) {
			t.Errorf("PutNode(%q, %q): %v, want ErrInvalidName", n.Owner, n.Node, err)
		}
	}
	if err := s.PutNode(ctx, store.PubSubNode{Owner: "ann", Node: "n"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PublishItem(ctx, "ann", "n", psItem("a\x00")); !errors.Is(err, ErrInvalidName) {
		t.Errorf("PublishItem with NUL id: %v, want ErrInvalidName", err)
	}
	if err := s.PublishItem(ctx, "ann", "n", psItem("")); !errors.Is(err, ErrInvalidName) {
		t.Errorf("PublishItem with empty id: %v, want ErrInvalidName", err)
	}
}

// TestDeletePubSubBatch checks the helper DeleteAccount uses: one owner's
// nodes, items and index go, a neighbour whose name extends it stays.
func TestDeletePubSubBatch(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{Durability: DurabilityOS})
	defer s.Close()
	for _, owner := range []string{"ann", "anna"} {
		for _, node := range []string{"a", "b"} {
			if err := s.PutNode(ctx, store.PubSubNode{Owner: owner, Node: node, MaxItems: 5}); err != nil {
				t.Fatal(err)
			}
			if err := s.PublishItem(ctx, owner, node, psItem("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	b := s.db.NewBatch()
	if err := s.deletePubSubBatch(b, "ann"); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	nodes, err := s.ListNodes(ctx, "ann")
	if err != nil || len(nodes) != 0 {
		t.Fatalf("nodes of ann after delete: %v, %v", nodes, err)
	}
	if _, err := s.Items(ctx, "ann", "a", 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("items of deleted node: %v", err)
	}
	nodes, err = s.ListNodes(ctx, "anna")
	if err != nil || len(nodes) != 2 {
		t.Fatalf("nodes of anna: %v, %v", nodes, err)
	}
	if n, x := rawKeys(t, s, tagPubSubItem), rawKeys(t, s, tagPubSubIndex); n != 2 || x != 2 {
		t.Fatalf("raw keys left: %d items, %d index entries; want anna's 2 and 2", n, x)
	}
	if err := s.deletePubSubBatch(b, "a\x00"); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("deletePubSubBatch with NUL: %v", err)
	}
}

// TestPubSubPersists reopens the store: nodes, counters and items survive.
func TestPubSubPersists(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutNode(ctx, store.PubSubNode{Owner: "ann", Node: "n", AccessModel: "open", MaxItems: 2}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if err := s.PublishItem(ctx, "ann", "n", psItem(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.PublishItem(ctx, "ann", "n", psItem("c")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Items(ctx, "ann", "n", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "c" || got[1].ID != "b" {
		t.Fatalf("items after reopen: %+v", got)
	}
	n, err := s.GetNode(ctx, "ann", "n")
	if err != nil || n.AccessModel != "open" || n.MaxItems != 2 {
		t.Fatalf("node after reopen: %+v, %v", n, err)
	}
}
