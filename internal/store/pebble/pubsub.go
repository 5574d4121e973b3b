package pebble

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parley-im/parley/internal/store"
)

// Personal eventing (store.PubSub) key layout:
//
//	p/<owner>\x00<node>                      node (value: encodePubSubNode)
//	pi/<owner>\x00<node>\x00<seq u64 BE>     item in publish order (value: encodePubSubItem)
//	px/<owner>\x00<node>\x00<item id>        item id index (value: encodeUint(seq))
//
// Items are keyed by a per-node sequence number that grows with every
// publish, so byte order under a node's "pi/" prefix is publish order:
// "newest first" is a reverse scan from the end of the prefix and trimming
// to MaxItems deletes from its start, both without reading the rest. The
// "px/" index maps an item id to its seq for replacement, retraction and
// fetches by id. The node value keeps the next seq and the item count, so
// a publish knows without a scan whether it must trim.
//
// Neither <node> nor <item id> may contain NUL (nor can they: both come
// from XML attributes), so "every item of node n" is the exact prefix
// pi/<owner>\x00<n>\x00 and node "a" never sees the items of node "a\x00b".
// The tags do not prefix one another at the slash ("p/", "pi/", "px/").
//
// Writes take the owner's user stripe lock (Store.users), the lock
// DeleteAccount holds too: read-modify-write of a node's counters never
// races, and an account deletion never interleaves with a publish.
const (
	tagPubSubNode  = "p/"
	tagPubSubItem  = "pi/"
	tagPubSubIndex = "px/"
)

// pubsubNodeState is a node as stored: its configuration and counters.
type pubsubNodeState struct {
	store.PubSubNode
	nextSeq uint64 // seq of the next published item
	count   uint64 // items stored
}

// maxItems is the node's effective item limit (store.PubSubNode: <= 0 means 1).
func (n *pubsubNodeState) maxItems() uint64 {
	if n.MaxItems <= 0 {
		return 1
	}
	return uint64(n.MaxItems)
}

// pubsubNodeKey returns p/<owner>\x00<node>.
func pubsubNodeKey(owner, node string) []byte {
	k := make([]byte, 0, len(tagPubSubNode)+len(owner)+1+len(node))
	k = append(k, tagPubSubNode...)
	k = append(k, owner...)
	k = append(k, sep)
	return append(k, node...)
}

// pubsubNodePrefix returns tag<owner>\x00<node>\x00 and the exclusive upper
// bound of that range.
func pubsubNodePrefix(tag, owner, node string) (lo, hi []byte) {
	lo = make([]byte, 0, len(tag)+len(owner)+len(node)+2)
	lo = append(lo, tag...)
	lo = append(lo, owner...)
	lo = append(lo, sep)
	lo = append(lo, node...)
	lo = append(lo, sep)
	hi = append([]byte(nil), lo...)
	hi[len(hi)-1] = sep + 1
	return lo, hi
}

func pubsubItemKey(owner, node string, seq uint64) []byte {
	lo, _ := pubsubNodePrefix(tagPubSubItem, owner, node)
	return binary.BigEndian.AppendUint64(lo, seq)
}

func pubsubIndexKey(owner, node, id string) []byte {
	lo, _ := pubsubNodePrefix(tagPubSubIndex, owner, node)
	return append(lo, id...)
}

// Node value: format, access model, max items (varint), created, next seq, count.
func encodePubSubNode(n *pubsubNodeState) []byte {
	b := make([]byte, 0, 32+len(n.AccessModel))
	b = append(b, formatV1)
	b = appendString(b, n.AccessModel)
	b = binary.AppendVarint(b, int64(n.MaxItems))
	b = appendTime(b, n.Created)
	b = binary.AppendUvarint(b, n.nextSeq)
	return binary.AppendUvarint(b, n.count)
}

func decodePubSubNode(owner, node string, v []byte) (pubsubNodeState, error) {
	d := decoder{b: v}
	d.version()
	n := pubsubNodeState{PubSubNode: store.PubSubNode{Owner: owner, Node: node}}
	n.AccessModel = d.string()
	n.MaxItems = int(d.varint())
	n.Created = d.time()
	n.nextSeq = d.uvarint()
	n.count = d.uvarint()
	if err := d.done(); err != nil {
		return pubsubNodeState{}, fmt.Errorf("decode pubsub node %q of %q: %w", node, owner, err)
	}
	return n, nil
}

// Item value: format, id, publisher, published, payload (the rest of the
// value, no length). The id is in the value because the key holds the seq.
func encodePubSubItem(it store.PubSubItem) []byte {
	b := make([]byte, 0, 24+len(it.ID)+len(it.Publisher)+len(it.Payload))
	b = append(b, formatV1)
	b = appendString(b, it.ID)
	b = appendString(b, it.Publisher)
	b = appendTime(b, it.Published)
	return append(b, it.Payload...)
}

func decodePubSubItem(v []byte) (store.PubSubItem, error) {
	d := decoder{b: v}
	d.version()
	var it store.PubSubItem
	it.ID = d.string()
	it.Publisher = d.string()
	it.Published = d.time()
	if d.err != nil {
		return store.PubSubItem{}, fmt.Errorf("decode pubsub item: %w", d.err)
	}
	it.Payload = append([]byte(nil), d.b...)
	return it, nil
}

func validPubSubNames(owner, node string) error {
	if err := validName("username", owner); err != nil {
		return err
	}
	return validName("node", node)
}

func getPubSubNode(r pebble.Reader, owner, node string) (pubsubNodeState, error) {
	v, ok, err := get(r, pubsubNodeKey(owner, node))
	if err != nil {
		return pubsubNodeState{}, fmt.Errorf("pebble store: pubsub node %q of %q: %w", node, owner, err)
	}
	if !ok {
		return pubsubNodeState{}, fmt.Errorf("pubsub node %q of %q: %w", node, owner, store.ErrNotFound)
	}
	n, err := decodePubSubNode(owner, node, v)
	if err != nil {
		return pubsubNodeState{}, fmt.Errorf("pebble store: %w", err)
	}
	return n, nil
}

// PutNode implements store.PubSub. Replacing the configuration keeps the
// node's items and creation time; when the new MaxItems is lower than the
// number of items stored, the oldest are dropped in the same batch, so a
// node never holds more than its MaxItems.
func (s *Store) PutNode(ctx context.Context, n store.PubSubNode) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validPubSubNames(n.Owner, n.Node); err != nil {
		return err
	}
	db, err := s.enter()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	defer s.lockUser(n.Owner)()
	st, err := getPubSubNode(db, n.Owner, n.Node)
	switch {
	case err == nil:
		created := st.Created
		st.PubSubNode = n
		st.Created = created
	case isNotFound(err):
		st = pubsubNodeState{PubSubNode: n}
	default:
		return err
	}
	b := db.NewIndexedBatch()
	defer b.Close()
	if err := trimPubSubNode(b, &st); err != nil {
		return fmt.Errorf("pebble store: put pubsub node %q of %q: %w", n.Node, n.Owner, err)
	}
	if err := b.Set(pubsubNodeKey(n.Owner, n.Node), encodePubSubNode(&st), nil); err != nil {
		return fmt.Errorf("pebble store: put pubsub node %q of %q: %w", n.Node, n.Owner, err)
	}
	if err := b.Commit(s.syncWrites); err != nil {
		return fmt.Errorf("pebble store: put pubsub node %q of %q: %w", n.Node, n.Owner, err)
	}
	return nil
}

// GetNode implements store.PubSub.
func (s *Store) GetNode(ctx context.Context, owner, node string) (store.PubSubNode, error) {
	if err := ctx.Err(); err != nil {
		return store.PubSubNode{}, err
	}
	if err := validPubSubNames(owner, node); err != nil {
		return store.PubSubNode{}, err
	}
	db, err := s.enter()
	if err != nil {
		return store.PubSubNode{}, err
	}
	defer s.mu.RUnlock()
	st, err := getPubSubNode(db, owner, node)
	if err != nil {
		return store.PubSubNode{}, err
	}
	return st.PubSubNode, nil
}

// ListNodes implements store.PubSub: one scan of the owner's "p/" range,
// which is in byte order of the node names.
func (s *Store) ListNodes(ctx context.Context, owner string) ([]store.PubSubNode, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := validName("username", owner); err != nil {
		return nil, err
	}
	db, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	lo, hi := userPrefix(tagPubSubNode, owner)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, fmt.Errorf("pebble store: pubsub nodes of %q: %w", owner, err)
	}
	var out []store.PubSubNode
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return nil, fmt.Errorf("pebble store: pubsub nodes of %q: %w", owner, err)
		}
		n, err := decodePubSubNode(owner, string(it.Key()[len(lo):]), v)
		if err != nil {
			_ = it.Close()
			return nil, fmt.Errorf("pebble store: %w", err)
		}
		out = append(out, n.PubSubNode)
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("pebble store: pubsub nodes of %q: %w", owner, err)
	}
	return out, nil
}

// DeleteNode implements store.PubSub: the node key and range deletions of
// its items and index, in one batch.
func (s *Store) DeleteNode(ctx context.Context, owner, node string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validPubSubNames(owner, node); err != nil {
		return err
	}
	db, err := s.enter()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	defer s.lockUser(owner)()
	if _, err := getPubSubNode(db, owner, node); err != nil {
		return err
	}
	b := db.NewBatch()
	defer b.Close()
	ilo, ihi := pubsubNodePrefix(tagPubSubItem, owner, node)
	xlo, xhi := pubsubNodePrefix(tagPubSubIndex, owner, node)
	for _, err := range []error{
		b.Delete(pubsubNodeKey(owner, node), nil),
		b.DeleteRange(ilo, ihi, nil),
		b.DeleteRange(xlo, xhi, nil),
	} {
		if err != nil {
			return fmt.Errorf("pebble store: delete pubsub node %q of %q: %w", node, owner, err)
		}
	}
	if err := b.Commit(s.syncWrites); err != nil {
		return fmt.Errorf("pebble store: delete pubsub node %q of %q: %w", node, owner, err)
	}
	return nil
}

// PublishItem implements store.PubSub. An item replacing one with the same
// id takes a new seq, so it becomes the newest, as a fresh publish would.
func (s *Store) PublishItem(ctx context.Context, owner, node string, it store.PubSubItem) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validPubSubNames(owner, node); err != nil {
		return err
	}
	if err := validName("item id", it.ID); err != nil {
		return err
	}
	db, err := s.enter()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	defer s.lockUser(owner)()
	st, err := getPubSubNode(db, owner, node)
	if err != nil {
		return err
	}
	wrap := func(err error) error {
		return fmt.Errorf("pebble store: publish to pubsub node %q of %q: %w", node, owner, err)
	}
	b := db.NewIndexedBatch()
	defer b.Close()
	idx := pubsubIndexKey(owner, node, it.ID)
	old, found, err := indexedSeq(db, idx)
	if err != nil {
		return wrap(err)
	}
	if found {
		if err := b.Delete(pubsubItemKey(owner, node, old), nil); err != nil {
			return wrap(err)
		}
		st.count--
	}
	seq := st.nextSeq
	st.nextSeq++
	st.count++
	if err := b.Set(pubsubItemKey(owner, node, seq), encodePubSubItem(it), nil); err != nil {
		return wrap(err)
	}
	if err := b.Set(idx, encodeUint(seq), nil); err != nil {
		return wrap(err)
	}
	// The counters are written after the trim, which lowers st.count.
	if err := trimPubSubNode(b, &st); err != nil {
		return wrap(err)
	}
	if err := b.Set(pubsubNodeKey(owner, node), encodePubSubNode(&st), nil); err != nil {
		return wrap(err)
	}
	if err := b.Commit(s.syncWrites); err != nil {
		return wrap(err)
	}
	return nil
}

// trimPubSubNode adds to b the deletion of the oldest items of the node
// beyond its MaxItems and lowers st.count to match. b must be indexed: it
// is read through, so an item the batch already replaced is not seen twice
// and the item it adds (the highest seq) is seen last and never dropped.
func trimPubSubNode(b *pebble.Batch, st *pubsubNodeState) error {
	excess := int64(st.count) - int64(st.maxItems())
	if excess <= 0 {
		return nil
	}
	lo, hi := pubsubNodePrefix(tagPubSubItem, st.Owner, st.Node)
	it, err := b.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	// Collect first and delete after closing the iterator: the batch is
	// not mutated under an open iterator of its own.
	var seqKeys [][]byte
	var ids []string
	for ok := it.First(); ok && int64(len(seqKeys)) < excess; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return err
		}
		item, err := decodePubSubItem(v)
		if err != nil {
			_ = it.Close()
			return err
		}
		seqKeys = append(seqKeys, slices.Clone(it.Key()))
		ids = append(ids, item.ID)
	}
	if err := it.Close(); err != nil {
		return err
	}
	for i, k := range seqKeys {
		if err := b.Delete(k, nil); err != nil {
			return err
		}
		if err := b.Delete(pubsubIndexKey(st.Owner, st.Node, ids[i]), nil); err != nil {
			return err
		}
		st.count--
	}
	return nil
}

// indexedSeq reads an item id's seq from the "px/" index.
func indexedSeq(r pebble.Reader, key []byte) (uint64, bool, error) {
	v, ok, err := get(r, key)
	if err != nil || !ok {
		return 0, false, err
	}
	seq, err := decodeUint("pubsub item index", v)
	if err != nil {
		return 0, false, err
	}
	return seq, true, nil
}

// RetractItem implements store.PubSub.
func (s *Store) RetractItem(ctx context.Context, owner, node, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validPubSubNames(owner, node); err != nil {
		return err
	}
	if err := validName("item id", id); err != nil {
		return err
	}
	db, err := s.enter()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	defer s.lockUser(owner)()
	st, err := getPubSubNode(db, owner, node)
	if err != nil {
		return err
	}
	idx := pubsubIndexKey(owner, node, id)
	seq, found, err := indexedSeq(db, idx)
	if err != nil {
		return fmt.Errorf("pebble store: retract from pubsub node %q of %q: %w", node, owner, err)
	}
	if !found {
		return fmt.Errorf("pubsub item %q of node %q of %q: %w", id, node, owner, store.ErrNotFound)
	}
	st.count--
	b := db.NewBatch()
	defer b.Close()
	for _, err := range []error{
		b.Delete(pubsubItemKey(owner, node, seq), nil),
		b.Delete(idx, nil),
		b.Set(pubsubNodeKey(owner, node), encodePubSubNode(&st), nil),
	} {
		if err != nil {
			return fmt.Errorf("pebble store: retract from pubsub node %q of %q: %w", node, owner, err)
		}
	}
	if err := b.Commit(s.syncWrites); err != nil {
		return fmt.Errorf("pebble store: retract from pubsub node %q of %q: %w", node, owner, err)
	}
	return nil
}

// Items implements store.PubSub. Everything is read from one snapshot, so
// the node check, the index lookups and the items agree.
func (s *Store) Items(ctx context.Context, owner, node string, max int, ids ...string) ([]store.PubSubItem, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := validPubSubNames(owner, node); err != nil {
		return nil, err
	}
	db, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	snap := db.NewSnapshot()
	defer snap.Close()
	if _, err := getPubSubNode(snap, owner, node); err != nil {
		return nil, err
	}
	wrap := func(err error) error {
		return fmt.Errorf("pebble store: items of pubsub node %q of %q: %w", node, owner, err)
	}
	if len(ids) > 0 {
		type found struct {
			seq  uint64
			item store.PubSubItem
		}
		var got []found
		seen := make(map[string]bool, len(ids))
		for _, id := range ids {
			if id == "" || strings.IndexByte(id, sep) >= 0 || seen[id] {
				continue // cannot name an item, or asked for twice
			}
			seen[id] = true
			seq, ok, err := indexedSeq(snap, pubsubIndexKey(owner, node, id))
			if err != nil {
				return nil, wrap(err)
			}
			if !ok {
				continue
			}
			v, ok, err := get(snap, pubsubItemKey(owner, node, seq))
			if err != nil {
				return nil, wrap(err)
			}
			if !ok {
				return nil, wrap(fmt.Errorf("index names missing item %q: %w", id, errCorrupt))
			}
			it, err := decodePubSubItem(v)
			if err != nil {
				return nil, wrap(err)
			}
			got = append(got, found{seq, it})
		}
		slices.SortFunc(got, func(a, b found) int { return -cmpUint(a.seq, b.seq) })
		out := make([]store.PubSubItem, len(got))
		for i, f := range got {
			out[i] = f.item
		}
		return out, nil
	}
	lo, hi := pubsubNodePrefix(tagPubSubItem, owner, node)
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, wrap(err)
	}
	var out []store.PubSubItem
	for ok := it.Last(); ok && (max <= 0 || len(out) < max); ok = it.Prev() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return nil, wrap(err)
		}
		item, err := decodePubSubItem(v)
		if err != nil {
			_ = it.Close()
			return nil, wrap(err)
		}
		out = append(out, item)
	}
	if err := it.Close(); err != nil {
		return nil, wrap(err)
	}
	return out, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// deletePubSubBatch adds to b the deletion of every node, item and index
// entry of owner: three range deletions, whatever the owner published.
// DeleteAccount calls it while holding the owner's user lock, the lock
// every pubsub write takes, so no publish lands between the read of the
// account and the commit.
func (s *Store) deletePubSubBatch(b *pebble.Batch, owner string) error {
	if err := validName("username", owner); err != nil {
		return err
	}
	for _, tag := range []string{tagPubSubNode, tagPubSubItem, tagPubSubIndex} {
		lo, hi := userPrefix(tag, owner)
		if err := b.DeleteRange(lo, hi, nil); err != nil {
			return fmt.Errorf("pebble store: delete pubsub data of %q: %w", owner, err)
		}
	}
	return nil
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

var _ store.PubSub = (*Store)(nil)
