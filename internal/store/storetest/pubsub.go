package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/store"
)

// pubsub returns the backend's store.PubSub. store.Store does not embed it
// yet, so a backend proves it by implementing the interface; one that does
// not fails here rather than silently skipping the group.
func pubsub(t *testing.T, s store.Store) store.PubSub {
	t.Helper()
	ps, ok := s.(store.PubSub)
	if !ok {
		t.Fatalf("%T does not implement store.PubSub", s)
	}
	return ps
}

func node(owner, name, access string, max int) store.PubSubNode {
	return store.PubSubNode{Owner: owner, Node: name, AccessModel: access, MaxItems: max, Created: t0}
}

func item(id string, n int) store.PubSubItem {
	return store.PubSubItem{
		ID:        id,
		Publisher: "ann@example.com/phone",
		Published: t0.Add(time.Duration(n) * time.Second),
		Payload:   []byte(fmt.Sprintf("<p xmlns='urn:test'>%s-%d</p>", id, n)),
	}
}

// checkItems fails unless got has exactly the items of want, in order, with
// every field kept.
func checkItems(t *testing.T, got []store.PubSubItem, want ...store.PubSubItem) {
	t.Helper()
	if !slices.EqualFunc(got, want, func(a, b store.PubSubItem) bool {
		return a.ID == b.ID && a.Publisher == b.Publisher && a.Published.Equal(b.Published) &&
			string(a.Payload) == string(b.Payload)
	}) {
		ids := func(its []store.PubSubItem) []string {
			var out []string
			for _, it := range its {
				out = append(out, it.ID+"="+string(it.Payload))
			}
			return out
		}
		t.Fatalf("items:\n got %v\nwant %v", ids(got), ids(want))
	}
}

func publish(t *testing.T, ps store.PubSub, owner, n string, its ...store.PubSubItem) {
	t.Helper()
	for _, it := range its {
		check(t, "PublishItem "+it.ID, ps.PublishItem(context.Background(), owner, n, it))
	}
}

func items(t *testing.T, ps store.PubSub, owner, n string, max int, ids ...string) []store.PubSubItem {
	t.Helper()
	got, err := ps.Items(context.Background(), owner, n, max, ids...)
	check(t, "Items", err)
	return got
}

var pubsubTests = []test{
	{"NodeLifecycle", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		ps := pubsub(t, s)
		_, err := ps.GetNode(ctx, "ann", "n")
		wantErr(t, "GetNode absent", err, store.ErrNotFound)
		nodes, err := ps.ListNodes(ctx, "ann")
		check(t, "ListNodes empty", err)
		if len(nodes) != 0 {
			t.Fatalf("ListNodes of a new owner: %v", nodes)
		}
		want := node("ann", "urn:xmpp:omemo:2:devices", "open", 1)
		check(t, "PutNode", ps.PutNode(ctx, want))
		got, err := ps.GetNode(ctx, "ann", want.Node)
		check(t, "GetNode", err)
		if got.Owner != want.Owner || got.Node != want.Node || got.AccessModel != want.AccessModel ||
			got.MaxItems != want.MaxItems || !got.Created.Equal(want.Created) {
			t.Fatalf("GetNode: got %+v, want %+v", got, want)
		}
		// Replacing the configuration.
		want.AccessModel, want.MaxItems = "presence", 10
		check(t, "PutNode replace", ps.PutNode(ctx, want))
		got, err = ps.GetNode(ctx, "ann", want.Node)
		check(t, "GetNode after replace", err)
		if got.AccessModel != "presence" || got.MaxItems != 10 {
			t.Fatalf("GetNode after replace: %+v", got)
		}
		check(t, "DeleteNode", ps.DeleteNode(ctx, "ann", want.Node))
		_, err = ps.GetNode(ctx, "ann", want.Node)
		wantErr(t, "GetNode deleted", err, store.ErrNotFound)
		wantErr(t, "DeleteNode again", ps.DeleteNode(ctx, "ann", want.Node), store.ErrNotFound)
	}},
	{"ListNodesOrderedAndPerOwner", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		ps := pubsub(t, s)
		// "ann" must not see the nodes of "anna", nor node "a" those of "ab".
		for _, n := range []store.PubSubNode{
			node("ann", "b", "presence", 1), node("ann", "a", "open", 1), node("ann", "ab", "open", 1),
			node("anna", "a", "presence", 1), node("an", "z", "presence", 1),
		} {
			check(t, "PutNode", ps.PutNode(ctx, n))
		}
		nodes, err := ps.ListNodes(ctx, "ann")
		check(t, "ListNodes", err)
		var names []string
		for _, n := range nodes {
			if n.Owner != "ann" {
				t.Fatalf("ListNodes(ann) returned a node of %q", n.Owner)
			}
			names = append(names, n.Node+":"+n.AccessModel)
		}
		if want := []string{"a:open", "ab:open", "b:presence"}; !slices.Equal(names, want) {
			t.Fatalf("ListNodes: got %v, want %v", names, want)
		}
	}},
	{"PublishNewestFirst", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		ps := pubsub(t, s)
		wantErr(t, "PublishItem to absent node", ps.PublishItem(ctx, "ann", "n", item("x", 0)), store.ErrNotFound)
		_, err := ps.Items(ctx, "ann", "n", 0)
		wantErr(t, "Items of absent node", err, store.ErrNotFound)
		check(t, "PutNode", ps.PutNode(ctx, node("ann", "n", "presence", 10)))
		checkItems(t, items(t, ps, "ann", "n", 0))
		a, b, c := item("a", 1), item("b", 2), item("c", 3)
		publish(t, ps, "ann", "n", a, b, c)
		checkItems(t, items(t, ps, "ann", "n", 0), c, b, a)
		checkItems(t, items(t, ps, "ann", "n", 1), c)
		checkItems(t, items(t, ps, "ann", "n", 2), c, b)
		checkItems(t, items(t, ps, "ann", "n", -1), c, b, a)
	}},
	{"ReplaceSameID", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		ps := pubsub(t, s)
		check(t, "PutNode", ps.PutNode(ctx, node("ann", "n", "presence", 3)))
		a, b := item("a", 1), item("b", 2)
		publish(t, ps, "ann", "n", a, b)
		// Republishing "a" replaces it and makes it the newest; it is not
		// a second item, so nothing is trimmed.
		a2 := item("a", 3)
		publish(t, ps, "ann", "n", a2)
		checkItems(t, items(t, ps, "ann", "n", 0), a2, b)
		c := item("c", 4)
		publish(t, ps, "ann", "n", c)
		checkItems(t, items(t, ps, "ann", "n", 0), c, a2, b)
	}},
	{"TrimToMaxItems", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		ps := pubsub(t, s)
		check(t, "PutNode", ps.PutNode(ctx, node("ann", "n", "presence", 2)))
		a, b, c, d := item("a", 1), item("b", 2), item("c", 3), item("d", 4)
		publish(t, ps, "ann", "n", a, b, c)
		checkItems(t, items(t, ps, "ann", "n", 0), c, b)
		// A trimmed item is gone from the id lookup too, and its id can be
		// used again.
		checkItems(t, items(t, ps, "ann", "n", 0, "a"))
		wantErr(t, "RetractItem trimmed", ps.RetractItem(ctx, "ann", "n", "a"), store.ErrNotFound)
		publish(t, ps, "ann", "n", d)
		checkItems(t, items(t, ps, "ann", "n", 0), d, c)
		a2 := item("a", 5)
		publish(t, ps, "ann", "n", a2)
		checkItems(t, items(t, ps, "ann", "n", 0), a2, d)
		// Replacing the newest of a full node drops nothing.
		a3 := item("a", 6)
		publish(t, ps, "ann", "n", a3)
		checkItems(t, items(t, ps, "ann", "n", 0), a3, d)
		// Replacing the oldest of a full node drops nothing either.
		d2 := item("d", 7)
		publish(t, ps, "ann", "n", d2)
		checkItems(t, items(t, ps, "ann", "n", 0), d2, a3)
	}},
	{"MaxItemsZeroMeansOne", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		ps := pubsub(t, s)
		check(t, "PutNode", ps.PutNode(ctx, node("ann", "n", "presence", 0)))
		a, b := item("current", 1), item("other", 2)
		publish(t, ps, "ann", "n", a, b)
		checkItems(t, items(t, ps, "ann", "n", 0), b)
	}},
	// The suite pins that lowering MaxItems with PutNode drops the oldest
	// items at once: the PEP service relies on a node never returning more
	// than its configured max_items after an owner reconfigures it.
	{"PutNodeTrims", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		ps := pubsub(t, s)
		check(t, "PutNode", ps.PutNode(ctx, node("ann", "n", "presence", 5)))
		a, b, c := item("a", 1), item("b", 2), item("c", 3)
		publish(t, ps, "ann", "n", a, b, c)
		check(t, "PutNode open", ps.PutNode(ctx, node("ann", "n", "open", 5)))
		checkItems(t, items(t, ps, "ann", "n", 0), c, b, a)
		check(t, "PutNode max 1", ps.PutNode(ctx, node("ann", "n", "open", 1)))
		checkItems(t, items(t, ps, "ann", "n", 0), c)
		// Raising it again brings nothing back, and new items count from
		// what is left.
		check(t, "PutNode max 2", ps.PutNode(ctx, node("ann", "n", "open", 2)))
		d, e := item("d", 4), item("e", 5)
		publish(t, ps, "ann", "n", d)
		checkItems(t, items(t, ps, "ann", "n", 0), d, c)
		publish(t, ps, "ann", "n", e)
		checkItems(t, items(t, ps, "ann", "n", 0), e, d)
	}},
	{"ItemsByID", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		ps := pubsub(t, s)
		check(t, "PutNode", ps.PutNode(ctx, node("ann", "bundles", "open", 10)))
		a, b, c := item("1", 1), item("2", 2), item("3", 3)
		publish(t, ps, "ann", "bundles", a, b, c)
		// Newest first whatever the order asked for; unknown ids skipped;
		// max does not apply to a request by ids.
		checkItems(t, items(t, ps, "ann", "bundles", 1, "1", "nope", "3"), c, a)
		checkItems(t, items(t, ps, "ann", "bundles", 0, "2"), b)
		checkItems(t, items(t, ps, "ann", "bundles", 0, "nope"))
		_, err := ps.Items(ctx, "ann", "absent", 0, "1")
		wantErr(t, "Items by id of absent node", err, store.ErrNotFound)
	}},
	{"Retract", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		ps := pubsub(t, s)
		wantErr(t, "RetractItem absent node", ps.RetractItem(ctx, "ann", "n", "a"), store.ErrNotFound)
		check(t, "PutNode", ps.PutNode(ctx, node("ann", "n", "presence", 2)))
		a, b, c := item("a", 1), item("b", 2), item("c", 3)
		publish(t, ps, "ann", "n", a, b)
		wantErr(t, "RetractItem absent item", ps.RetractItem(ctx, "ann", "n", "zz"), store.ErrNotFound)
		check(t, "RetractItem", ps.RetractItem(ctx, "ann", "n", "b"))
		checkItems(t, items(t, ps, "ann", "n", 0), a)
		wantErr(t, "RetractItem again", ps.RetractItem(ctx, "ann", "n", "b"), store.ErrNotFound)
		// The retracted item no longer counts against MaxItems.
		publish(t, ps, "ann", "n", c)
		checkItems(t, items(t, ps, "ann", "n", 0), c, a)
	}},
	{"DeleteNodeDropsItems", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		ps := pubsub(t, s)
		check(t, "PutNode", ps.PutNode(ctx, node("ann", "n", "presence", 5)))
		check(t, "PutNode other", ps.PutNode(ctx, node("ann", "n2", "presence", 5)))
		a, b := item("a", 1), item("b", 2)
		publish(t, ps, "ann", "n", a, b)
		publish(t, ps, "ann", "n2", b)
		check(t, "DeleteNode", ps.DeleteNode(ctx, "ann", "n"))
		check(t, "PutNode again", ps.PutNode(ctx, node("ann", "n", "presence", 5)))
		checkItems(t, items(t, ps, "ann", "n", 0))
		checkItems(t, items(t, ps, "ann", "n", 0, "a", "b"))
		checkItems(t, items(t, ps, "ann", "n2", 0), b)
	}},
	{"OwnersAndNodesIsolated", func(t *testing.T, s store.Store) {
		ctx := context.Background()
		ps := pubsub(t, s)
		for _, n := range []store.PubSubNode{
			node("ann", "a", "open", 5), node("ann", "ab", "open", 5), node("anna", "a", "open", 5),
		} {
			check(t, "PutNode", ps.PutNode(ctx, n))
		}
		x, y, z := item("x", 1), item("y", 2), item("z", 3)
		publish(t, ps, "ann", "a", x)
		publish(t, ps, "ann", "ab", y)
		publish(t, ps, "anna", "a", z)
		checkItems(t, items(t, ps, "ann", "a", 0), x)
		checkItems(t, items(t, ps, "ann", "ab", 0), y)
		checkItems(t, items(t, ps, "anna", "a", 0), z)
		check(t, "DeleteNode", ps.DeleteNode(ctx, "ann", "a"))
		checkItems(t, items(t, ps, "ann", "ab", 0), y)
		checkItems(t, items(t, ps, "anna", "a", 0), z)
	}},
}
