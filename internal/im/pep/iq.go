package pep

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// handleIQ answers <pubsub xmlns='http://jabber.org/protocol/pubsub'/> iqs
// to a user's bare JID (or with no to: the sender's own).
func (s *Service) handleIQ(ctx context.Context, from, to jid.JID, iq *stanza.Element) (*stanza.Element, error) {
	ps := iq.Child("pubsub", NS)
	if ps == nil {
		return nil, stanza.ErrBadRequest
	}
	owner := to.Local()
	if iq.Type() == "get" {
		if it := ps.Child("items", NS); it != nil {
			return s.items(ctx, from, owner, it)
		}
	} else {
		if p := ps.Child("publish", NS); p != nil {
			return s.publish(ctx, from, owner, p, ps.Child("publish-options", NS))
		}
		if r := ps.Child("retract", NS); r != nil {
			return s.retract(ctx, from, owner, r)
		}
		if c := ps.Child("create", NS); c != nil {
			return s.create(ctx, from, owner, c, ps.Child("configure", NS))
		}
	}
	for _, c := range ps.Elements() {
		switch c.Name {
		case "subscribe", "unsubscribe", "options", "subscriptions":
			// PEP subscriptions are implicit, through presence.
			return nil, unsupported("subscribe")
		case "affiliations":
			return nil, unsupported("retrieve-affiliations")
		}
	}
	return nil, stanza.ErrFeatureNotImplemented
}

// handleOwnerIQ answers <pubsub xmlns='…#owner'/>: node configuration and
// deletion, by the owner only.
func (s *Service) handleOwnerIQ(ctx context.Context, from, to jid.JID, iq *stanza.Element) (*stanza.Element, error) {
	ps := iq.Child("pubsub", NSOwner)
	if ps == nil {
		return nil, stanza.ErrBadRequest
	}
	owner := to.Local()
	if !s.isOwner(from, owner) {
		return nil, stanza.ErrForbidden
	}
	if c := ps.Child("configure", NSOwner); c != nil {
		if iq.Type() == "get" {
			return s.getConfig(ctx, owner, c)
		}
		return s.setConfig(ctx, owner, c)
	}
	if d := ps.Child("delete", NSOwner); d != nil && iq.Type() == "set" {
		return s.deleteNode(ctx, owner, d)
	}
	return nil, stanza.ErrFeatureNotImplemented
}

// nodeName reads and bounds the node attribute.
func nodeName(el *stanza.Element) (string, error) {
	n := el.Attr("node")
	if n == "" {
		return "", psError(stanza.ErrBadRequest, "nodeid-required")
	}
	if len(n) > maxNodeLen {
		return "", stanza.ErrNotAcceptable.WithText("node name too long")
	}
	return n, nil
}

// getNode loads a node; item-not-found if absent.
func (s *Service) getNode(ctx context.Context, owner, node string) (store.PubSubNode, error) {
	n, err := s.st.GetNode(ctx, owner, node)
	if errors.Is(err, store.ErrNotFound) {
		return n, stanza.ErrItemNotFound
	}
	if err != nil {
		return n, fmt.Errorf("pep: node %q of %s: %w", node, owner, err)
	}
	return n, nil
}

// createLocked stores a new node after checking the owner's node limit;
// the caller holds the owner's lock.
func (s *Service) createLocked(ctx context.Context, owner, node string, o nodeOptions) (store.PubSubNode, error) {
	nodes, err := s.st.ListNodes(ctx, owner)
	if err != nil {
		return store.PubSubNode{}, fmt.Errorf("pep: nodes of %s: %w", owner, err)
	}
	if len(nodes) >= s.cfg.MaxNodesPerUser {
		return store.PubSubNode{}, stanza.ErrPolicyViolation.WithText("too many nodes")
	}
	n := store.PubSubNode{Owner: owner, Node: node, AccessModel: AccessPresence, MaxItems: defaultMaxItems, Created: s.cfg.Now()}
	if o.access != nil {
		n.AccessModel = *o.access
	}
	if o.maxItems != nil {
		n.MaxItems = *o.maxItems
	}
	if err := s.st.PutNode(ctx, n); err != nil {
		return store.PubSubNode{}, fmt.Errorf("pep: create node %q of %s: %w", node, owner, err)
	}
	return n, nil
}

// publish handles XEP-0060 §7.1 with auto-create (§7.1.4) and
// publish-options (§7.1.5).
func (s *Service) publish(ctx context.Context, from jid.JID, owner string, p, po *stanza.Element) (*stanza.Element, error) {
	node, err := nodeName(p)
	if err != nil {
		return nil, err
	}
	if !s.isOwner(from, owner) {
		return nil, stanza.ErrForbidden
	}
	items := p.Elements()
	switch {
	case len(items) == 0:
		return nil, psError(stanza.ErrBadRequest, "item-required")
	case len(items) > 1 || items[0].Name != "item":
		return nil, stanza.ErrBadRequest.WithText("publish exactly one item")
	}
	item := items[0]
	payload := item.Elements()
	switch {
	case len(payload) == 0:
		return nil, psError(stanza.ErrBadRequest, "payload-required")
	case len(payload) > 1:
		return nil, psError(stanza.ErrBadRequest, "invalid-payload")
	}
	id := item.Attr("id")
	if id == "" {
		id = newItemID()
	}
	if len(id) > maxItemIDLen {
		return nil, stanza.ErrNotAcceptable.WithText("item id too long")
	}
	b := s.cfg.Codec.Marshal(payload[0])
	if len(b) > s.cfg.MaxItemBytes {
		return nil, psError(stanza.ErrNotAcceptable, "payload-too-big")
	}
	var opts nodeOptions
	if po != nil {
		if opts, err = s.parseOptions(po.Child("x", nsData), NSPublishOptions); err != nil {
			return nil, err
		}
	}
	n, err := s.publishLocked(ctx, owner, node, opts, store.PubSubItem{
		ID: id, Publisher: from.String(), Published: s.cfg.Now(), Payload: b,
	})
	if err != nil {
		return nil, err
	}
	ev := itemElement(id, payload[0])
	s.notify(ctx, n, stanza.New("items", NSEvent).SetAttr("node", node).Append(ev))
	return result().Append(stanza.New("pubsub", NS).Append(
		stanza.New("publish", NS).SetAttr("node", node).Append(stanza.New("item", NS).SetAttr("id", id)))), nil
}

func (s *Service) publishLocked(ctx context.Context, owner, node string, opts nodeOptions, it store.PubSubItem) (store.PubSubNode, error) {
	defer s.lock(owner)()
	n, err := s.st.GetNode(ctx, owner, node)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if n, err = s.createLocked(ctx, owner, node, opts); err != nil {
			return n, err
		}
	case err != nil:
		return n, fmt.Errorf("pep: node %q of %s: %w", node, owner, err)
	default:
		// XEP-0060 §7.1.5: publish-options are preconditions on an
		// existing node, never a reconfiguration.
		if (opts.access != nil && *opts.access != accessOf(n)) ||
			(opts.maxItems != nil && *opts.maxItems != normMax(n.MaxItems)) {
			return n, psError(stanza.ErrConflict, "precondition-not-met")
		}
	}
	if err := s.st.PublishItem(ctx, owner, node, it); err != nil {
		return n, fmt.Errorf("pep: publish to %q of %s: %w", node, owner, err)
	}
	return n, nil
}

// accessOf is the node's access model; a node stored without one is the
// PEP default.
func accessOf(n store.PubSubNode) string {
	if n.AccessModel == "" {
		return AccessPresence
	}
	return n.AccessModel
}

// itemElement is <item id=…>payload</item> in the event namespace.
func itemElement(id string, payload *stanza.Element) *stanza.Element {
	return stanza.New("item", NSEvent).SetAttr("id", id).Append(payload)
}

// create handles an explicit node creation (XEP-0060 §8.1), with an
// optional configuration form (§8.1.3).
func (s *Service) create(ctx context.Context, from jid.JID, owner string, c, conf *stanza.Element) (*stanza.Element, error) {
	if c.Attr("node") == "" {
		return nil, psError(stanza.ErrNotAcceptable, "nodeid-required") // no instant nodes
	}
	node, err := nodeName(c)
	if err != nil {
		return nil, err
	}
	if !s.isOwner(from, owner) {
		return nil, stanza.ErrForbidden
	}
	var opts nodeOptions
	if conf != nil {
		if opts, err = s.parseOptions(conf.Child("x", nsData), NSNodeConfig); err != nil {
			return nil, err
		}
	}
	defer s.lock(owner)()
	if _, err := s.st.GetNode(ctx, owner, node); err == nil {
		return nil, stanza.ErrConflict
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("pep: node %q of %s: %w", node, owner, err)
	}
	if _, err := s.createLocked(ctx, owner, node, opts); err != nil {
		return nil, err
	}
	return result(), nil
}

// retract handles XEP-0060 §7.2. Retraction notifications go out unless
// notify is false: the node's notify_retract is on.
func (s *Service) retract(ctx context.Context, from jid.JID, owner string, r *stanza.Element) (*stanza.Element, error) {
	node, err := nodeName(r)
	if err != nil {
		return nil, err
	}
	if !s.isOwner(from, owner) {
		return nil, stanza.ErrForbidden
	}
	var ids []string
	for _, it := range r.Elements() {
		if it.Name != "item" {
			continue
		}
		if it.Attr("id") == "" {
			return nil, psError(stanza.ErrBadRequest, "item-required")
		}
		ids = append(ids, it.Attr("id"))
	}
	if len(ids) == 0 {
		return nil, psError(stanza.ErrBadRequest, "item-required")
	}
	if len(ids) > s.cfg.MaxItemsPerNode {
		return nil, stanza.ErrNotAcceptable.WithText("too many items")
	}
	n, err := s.getNode(ctx, owner, node)
	if err != nil {
		return nil, err
	}
	// All or nothing: an unknown id fails the request before anything is
	// retracted, so no retraction goes unannounced.
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	if present, err := s.st.Items(ctx, owner, node, 0, ids...); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("pep: retract from %q of %s: %w", node, owner, err)
	} else if len(present) != len(ids) {
		return nil, stanza.ErrItemNotFound
	}
	ev := stanza.New("items", NSEvent).SetAttr("node", node)
	for _, id := range ids {
		err := s.st.RetractItem(ctx, owner, node, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, stanza.ErrItemNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("pep: retract from %q of %s: %w", node, owner, err)
		}
		ev.Append(stanza.New("retract", NSEvent).SetAttr("id", id))
	}
	if v, ok := parseBool(r.Attr("notify")); !ok || v {
		s.notify(ctx, n, ev)
	}
	return result(), nil
}

// items handles XEP-0060 §6.5: all items, the max_items newest, or those
// named. Items come newest first.
func (s *Service) items(ctx context.Context, from jid.JID, owner string, el *stanza.Element) (*stanza.Element, error) {
	node, err := nodeName(el)
	if err != nil {
		return nil, err
	}
	limit := 0
	if v := el.Attr("max_items"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 {
			return nil, stanza.ErrBadRequest.WithText("max_items must be a positive number")
		}
	}
	var ids []string
	for _, it := range el.Elements() {
		if it.Name == "item" && it.Attr("id") != "" {
			ids = append(ids, it.Attr("id"))
		}
	}
	if len(ids) > s.cfg.MaxItemsPerNode {
		return nil, stanza.ErrNotAcceptable.WithText("too many items")
	}
	n, err := s.getNode(ctx, owner, node)
	if err != nil {
		return nil, err
	}
	if err := s.canAccess(ctx, from, n); err != nil {
		return nil, err
	}
	stored, err := s.st.Items(ctx, owner, node, limit, ids...)
	if errors.Is(err, store.ErrNotFound) {
		return nil, stanza.ErrItemNotFound // deleted meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("pep: items of %q of %s: %w", node, owner, err)
	}
	out := stanza.New("items", NS).SetAttr("node", node)
	for _, it := range stored {
		payload, err := s.cfg.Codec.Unmarshal(it.Payload)
		if err != nil {
			return nil, fmt.Errorf("pep: item %q of %q of %s: %w", it.ID, node, owner, err)
		}
		out.Append(stanza.New("item", NS).SetAttr("id", it.ID).Append(payload))
	}
	return result().Append(stanza.New("pubsub", NS).Append(out)), nil
}

// getConfig answers the owner's configuration request (XEP-0060 §8.2.1).
func (s *Service) getConfig(ctx context.Context, owner string, c *stanza.Element) (*stanza.Element, error) {
	node, err := nodeName(c)
	if err != nil {
		return nil, err
	}
	n, err := s.getNode(ctx, owner, node)
	if err != nil {
		return nil, err
	}
	form := configForm(accessOf(n), normMax(n.MaxItems), s.cfg.MaxItemsPerNode)
	return result().Append(stanza.New("pubsub", NSOwner).Append(
		stanza.New("configure", NSOwner).SetAttr("node", node).Append(form))), nil
}

// setConfig applies the owner's configuration form (XEP-0060 §8.2.4):
// access model and max_items; lowering max_items drops the oldest items
// at once. type='cancel' changes nothing.
func (s *Service) setConfig(ctx context.Context, owner string, c *stanza.Element) (*stanza.Element, error) {
	node, err := nodeName(c)
	if err != nil {
		return nil, err
	}
	x := c.Child("x", nsData)
	if x == nil {
		return nil, stanza.ErrBadRequest.WithText("configuration form required")
	}
	if x.Attr("type") == "cancel" {
		return result(), nil
	}
	opts, err := s.parseOptions(x, NSNodeConfig)
	if err != nil {
		return nil, err
	}
	defer s.lock(owner)()
	n, err := s.getNode(ctx, owner, node)
	if err != nil {
		return nil, err
	}
	if opts.access != nil {
		n.AccessModel = *opts.access
	}
	if opts.maxItems != nil {
		n.MaxItems = *opts.maxItems
	}
	if err := s.st.PutNode(ctx, n); err != nil {
		return nil, fmt.Errorf("pep: configure %q of %s: %w", node, owner, err)
	}
	return result(), nil
}

// deleteNode handles XEP-0060 §8.4; those who were notified of the node
// learn of its deletion.
func (s *Service) deleteNode(ctx context.Context, owner string, d *stanza.Element) (*stanza.Element, error) {
	node, err := nodeName(d)
	if err != nil {
		return nil, err
	}
	unlock := s.lock(owner)
	n, err := s.getNode(ctx, owner, node)
	if err == nil {
		err = s.st.DeleteNode(ctx, owner, node)
		if errors.Is(err, store.ErrNotFound) {
			err = stanza.ErrItemNotFound
		} else if err != nil {
			err = fmt.Errorf("pep: delete %q of %s: %w", node, owner, err)
		}
	}
	unlock()
	if err != nil {
		return nil, err
	}
	s.notify(ctx, n, stanza.New("delete", NSEvent).SetAttr("node", node))
	return result(), nil
}
