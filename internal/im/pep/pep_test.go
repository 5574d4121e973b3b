package pep_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/parley-im/parley/internal/im/pep"
	"github.com/parley-im/parley/stanza"
)

func TestPublishAndFetchOwn(t *testing.T) {
	e := newEnv(t, limits{}, "ann")
	ann := e.online("ann@example.com/phone")
	reply := ok(t, e.iq(ann, "set", "", publishIQ(devicelist, "current", deviceList("1", "2"))))
	pub := reply.Child("pubsub", pep.NS).Child("publish", pep.NS)
	if pub.Attr("node") != devicelist || pub.Child("item", pep.NS).Attr("id") != "current" {
		t.Fatalf("publish result: %v", pub)
	}
	// Fetch with no to (own account) and with to = own bare JID.
	if got := itemIDs(t, e.iq(ann, "get", "", itemsIQ(devicelist, ""))); !slices.Equal(got, []string{"current:1,2"}) {
		t.Fatalf("items: %v", got)
	}
	// Republishing replaces: the default max_items of PEP is 1.
	ok(t, e.iq(ann, "set", "ann@example.com", publishIQ(devicelist, "current", deviceList("3"))))
	if got := itemIDs(t, e.iq(ann, "get", "ann@example.com", itemsIQ(devicelist, ""))); !slices.Equal(got, []string{"current:3"}) {
		t.Fatalf("items after republish: %v", got)
	}
	// An item without id gets one generated.
	reply = ok(t, e.iq(ann, "set", "", publishIQ("urn:xmpp:avatar:metadata", "", stanza.New("metadata", "urn:xmpp:avatar:metadata"))))
	id := reply.Child("pubsub", pep.NS).Child("publish", pep.NS).Child("item", pep.NS).Attr("id")
	if id == "" {
		t.Fatal("no item id generated")
	}
	if got := itemIDs(t, e.iq(ann, "get", "", itemsIQ("urn:xmpp:avatar:metadata", "1"))); !slices.Equal(got, []string{id}) {
		t.Fatalf("items: %v, want [%s]", got, id)
	}
	// The node was created with the PEP defaults.
	n, err := e.st.GetNode(ctx, "ann", devicelist)
	if err != nil || n.AccessModel != pep.AccessPresence || n.MaxItems != 1 {
		t.Fatalf("node %+v, %v", n, err)
	}
}

// TestOpenNodeForStrangers is the OMEMO case: device list and bundles are
// published with access_model=open and fetched by someone who is not a
// contact.
func TestOpenNodeForStrangers(t *testing.T) {
	e := newEnv(t, limits{}, "ann", "eve")
	ann := e.online("ann@example.com/phone")
	eve := e.online("eve@example.com/pc")
	ok(t, e.iq(ann, "set", "", publishIQ(devices2, "current", stanza.New("devices", "urn:xmpp:omemo:2"),
		field("pubsub#access_model", "open"))))
	for _, dev := range []string{"11", "22", "33"} {
		ok(t, e.iq(ann, "set", "", publishIQ(bundles2, dev, stanza.New("bundle", "urn:xmpp:omemo:2"),
			field("pubsub#access_model", "open"), field("pubsub#max_items", "max"), field("pubsub#persist_items", "true"))))
	}
	if got := itemIDs(t, e.iq(eve, "get", "ann@example.com", itemsIQ(devices2, ""))); !slices.Equal(got, []string{"current"}) {
		t.Fatalf("devices: %v", got)
	}
	if got := itemIDs(t, e.iq(eve, "get", "ann@example.com", itemsIQ(bundles2, "", "22"))); !slices.Equal(got, []string{"22"}) {
		t.Fatalf("bundle by id: %v", got)
	}
	if got := itemIDs(t, e.iq(eve, "get", "ann@example.com", itemsIQ(bundles2, ""))); !slices.Equal(got, []string{"33", "22", "11"}) {
		t.Fatalf("all bundles: %v", got)
	}
	if got := itemIDs(t, e.iq(eve, "get", "ann@example.com", itemsIQ(bundles2, "2"))); !slices.Equal(got, []string{"33", "22"}) {
		t.Fatalf("max_items 2: %v", got)
	}
	n, err := e.st.GetNode(ctx, "ann", bundles2)
	if err != nil || n.MaxItems != pep.DefaultMaxItemsPerNode || n.AccessModel != pep.AccessOpen {
		t.Fatalf("bundles node %+v, %v", n, err)
	}
	// A stranger may read but never write.
	wantError(t, e.iq(eve, "set", "ann@example.com", publishIQ(devices2, "current", stanza.New("devices", "urn:xmpp:omemo:2"))), "forbidden", "")
	wantError(t, e.iq(eve, "get", "ann@example.com", itemsIQ("absent", "")), "item-not-found", "")
}

func TestPresenceAccess(t *testing.T) {
	e := newEnv(t, limits{}, "ann", "bob", "eve")
	ann := e.online("ann@example.com/phone")
	bob := e.online("bob@example.com/pc")
	eve := e.online("eve@example.com/pc")
	e.subscribe("bob", "ann")
	ok(t, e.iq(ann, "set", "", publishIQ(devicelist, "current", deviceList("1"))))
	wantError(t, e.iq(eve, "get", "ann@example.com", itemsIQ(devicelist, "")), "not-authorized", "presence-subscription-required")
	if got := itemIDs(t, e.iq(bob, "get", "ann@example.com", itemsIQ(devicelist, ""))); !slices.Equal(got, []string{"current:1"}) {
		t.Fatalf("subscriber items: %v", got)
	}
	// ann subscribed to eve is not eve subscribed to ann.
	e.addSub("ann", "eve@example.com", "to")
	wantError(t, e.iq(eve, "get", "ann@example.com", itemsIQ(devicelist, "")), "not-authorized", "presence-subscription-required")
	// roster and whitelist nodes are the owner's only.
	ok(t, e.iq(ann, "set", "", publishIQ("n-roster", "1", stanza.New("x", "urn:t"), field("pubsub#access_model", "roster"))))
	ok(t, e.iq(ann, "set", "", publishIQ("n-white", "1", stanza.New("x", "urn:t"), field("pubsub#access_model", "whitelist"))))
	wantError(t, e.iq(bob, "get", "ann@example.com", itemsIQ("n-roster", "")), "not-authorized", "not-in-roster-group")
	wantError(t, e.iq(bob, "get", "ann@example.com", itemsIQ("n-white", "")), "not-allowed", "closed-node")
	ok(t, e.iq(ann, "get", "", itemsIQ("n-white", "")))
}

func TestMaxItemsTrimming(t *testing.T) {
	e := newEnv(t, limits{items: 10}, "ann")
	ann := e.online("ann@example.com/phone")
	for _, id := range []string{"a", "b", "c"} {
		ok(t, e.iq(ann, "set", "", publishIQ("urn:xmpp:bookmarks:1", id, stanza.New("conference", "urn:xmpp:bookmarks:1"),
			field("pubsub#max_items", "2"))))
	}
	if got := itemIDs(t, e.iq(ann, "get", "", itemsIQ("urn:xmpp:bookmarks:1", ""))); !slices.Equal(got, []string{"c", "b"}) {
		t.Fatalf("items: %v", got)
	}
	// A max_items above the limit is lowered to it, as "max" is.
	ok(t, e.iq(ann, "set", "", publishIQ("big", "a", stanza.New("x", "urn:t"), field("pubsub#max_items", "1000"))))
	ok(t, e.iq(ann, "set", "", publishIQ("big", "b", stanza.New("x", "urn:t"), field("pubsub#max_items", "max"))))
	if n, err := e.st.GetNode(ctx, "ann", "big"); err != nil || n.MaxItems != 10 {
		t.Fatalf("node %+v %v", n, err)
	}
	wantError(t, e.iq(ann, "set", "", publishIQ("zero", "a", stanza.New("x", "urn:t"), field("pubsub#max_items", "0"))), "not-acceptable", "")
	wantError(t, e.iq(ann, "get", "", itemsIQ("big", "-1")), "bad-request", "")
}

// TestPreconditionNotMet: publish-options on an existing node with another
// configuration fail; the owner reconfigures the node (what Conversations,
// Dino and Gajim do on precondition-not-met) and publishes again.
func TestPreconditionNotMet(t *testing.T) {
	e := newEnv(t, limits{}, "ann")
	ann := e.online("ann@example.com/phone")
	ok(t, e.iq(ann, "set", "", publishIQ(devicelist, "current", deviceList("1"))))
	wantError(t, e.iq(ann, "set", "", publishIQ(devicelist, "current", deviceList("1", "2"), field("pubsub#access_model", "open"))),
		"conflict", "precondition-not-met")
	wantError(t, e.iq(ann, "set", "", publishIQ(devicelist, "current", deviceList("1", "2"), field("pubsub#max_items", "5"))),
		"conflict", "precondition-not-met")
	// Nothing was published by the failed attempts.
	if got := itemIDs(t, e.iq(ann, "get", "", itemsIQ(devicelist, ""))); !slices.Equal(got, []string{"current:1"}) {
		t.Fatalf("items: %v", got)
	}
	// Matching preconditions pass.
	ok(t, e.iq(ann, "set", "", publishIQ(devicelist, "current", deviceList("1"), field("pubsub#access_model", "presence"), field("pubsub#max_items", "1"))))

	// Owner configuration: get shows the current values...
	conf := e.iq(ann, "get", "", stanza.New("pubsub", pep.NSOwner).Append(stanza.New("configure", pep.NSOwner).SetAttr("node", devicelist)))
	x := ok(t, conf).Child("pubsub", pep.NSOwner).Child("configure", pep.NSOwner).Child("x", nsData)
	values := map[string]string{}
	for _, f := range x.Elements() {
		values[f.Attr("var")] = f.ChildText("value", nsData)
	}
	if values["FORM_TYPE"] != pep.NSNodeConfig || values["pubsub#access_model"] != "presence" || values["pubsub#max_items"] != "1" {
		t.Fatalf("config form values %v", values)
	}
	// ...and set changes them.
	set := stanza.New("pubsub", pep.NSOwner).Append(stanza.New("configure", pep.NSOwner).SetAttr("node", devicelist).
		Append(form(pep.NSNodeConfig, field("pubsub#access_model", "open"))))
	ok(t, e.iq(ann, "set", "", set))
	ok(t, e.iq(ann, "set", "", publishIQ(devicelist, "current", deviceList("1", "2"), field("pubsub#access_model", "open"))))
	if got := itemIDs(t, e.iq(ann, "get", "", itemsIQ(devicelist, ""))); !slices.Equal(got, []string{"current:1,2"}) {
		t.Fatalf("items after reconfigure: %v", got)
	}
	// Wrong FORM_TYPE and unsupported access models are refused.
	bad := stanza.New("pubsub", pep.NSOwner).Append(stanza.New("configure", pep.NSOwner).SetAttr("node", devicelist).
		Append(form("urn:wrong", field("pubsub#access_model", "open"))))
	wantError(t, e.iq(ann, "set", "", bad), "bad-request", "")
	wantError(t, e.iq(ann, "set", "", publishIQ("n", "1", stanza.New("x", "urn:t"), field("pubsub#access_model", "authorize"))), "not-acceptable", "")
	// Lowering max_items by configuration drops the oldest items.
	ok(t, e.iq(ann, "set", "", publishIQ("many", "a", stanza.New("x", "urn:t"), field("pubsub#max_items", "3"))))
	ok(t, e.iq(ann, "set", "", publishIQ("many", "b", stanza.New("x", "urn:t"))))
	set = stanza.New("pubsub", pep.NSOwner).Append(stanza.New("configure", pep.NSOwner).SetAttr("node", "many").
		Append(form(pep.NSNodeConfig, field("pubsub#max_items", "1"))))
	ok(t, e.iq(ann, "set", "", set))
	if got := itemIDs(t, e.iq(ann, "get", "", itemsIQ("many", ""))); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("items after lowering max_items: %v", got)
	}
}

// TestNotifyFilteredByCaps: notifications go to the owner's resources and
// subscribed contacts' resources that announce node+notify, and no one
// else.
func TestNotifyFilteredByCaps(t *testing.T) {
	e := newEnv(t, limits{}, "ann", "bob", "cat", "eve")
	e.subscribe("bob", "ann")
	e.subscribe("cat", "ann")
	notify := devicelist + "+notify"
	annPhone := e.online("ann@example.com/phone", notify)
	annOld := e.online("ann@example.com/old")
	bob := e.online("bob@example.com/pc", notify)
	bobAway := e.bind("bob@example.com/away", notify) // bound, never available
	cat := e.online("cat@example.com/pc", "urn:other+notify")
	eve := e.online("eve@example.com/pc", notify)
	for _, s := range []*session{annPhone, annOld, bob, cat, eve} {
		s.take()
	}
	ok(t, e.iq(annPhone, "set", "", publishIQ(devicelist, "current", deviceList("7"), field("pubsub#access_model", "open"))))
	want := []string{"ann@example.com " + devicelist + " item current"}
	for _, s := range []*session{annPhone, bob} {
		if got := events(s.take()); !slices.Equal(got, want) {
			t.Errorf("%s: events %v, want %v", s.j, got, want)
		}
	}
	for _, s := range []*session{annOld, bobAway, cat, eve} {
		if got := events(s.take()); len(got) != 0 {
			t.Errorf("%s: unexpected events %v", s.j, got)
		}
	}
	// The notification carries the payload.
	ok(t, e.iq(annPhone, "set", "", publishIQ(devicelist, "current", deviceList("8"))))
	for _, m := range bob.take() {
		if m.Name != "message" {
			continue
		}
		it := m.Child("event", pep.NSEvent).Child("items", pep.NSEvent).Child("item", pep.NSEvent)
		if it.Child("list", "eu.siacs.conversations.axolotl").Child("device", "").Attr("id") != "8" || m.To() != "bob@example.com/pc" {
			t.Fatalf("notification %v", m)
		}
	}
	// Owner-only nodes notify only the owner.
	annPhone.take()
	ok(t, e.iq(annPhone, "set", "", publishIQ("secret", "1", stanza.New("x", "urn:t"), field("pubsub#access_model", "whitelist"))))
	e.warmCaps(discoInfo("secret+notify"))
	bob2 := e.online("bob@example.com/second", "secret+notify")
	annTab := e.online("ann@example.com/tab", "secret+notify")
	bob2.take()
	annTab.take()
	ok(t, e.iq(annPhone, "set", "", publishIQ("secret", "2", stanza.New("x", "urn:t"))))
	if got := events(bob2.take()); len(got) != 0 {
		t.Fatalf("whitelist node notified a contact: %v", got)
	}
	if got := events(annTab.take()); !slices.Equal(got, []string{"ann@example.com secret item 2"}) {
		t.Fatalf("owner's resource: %v", got)
	}
}

func TestRetractNotifies(t *testing.T) {
	e := newEnv(t, limits{}, "ann", "bob")
	e.subscribe("bob", "ann")
	notify := "urn:xmpp:bookmarks:1+notify"
	ann := e.online("ann@example.com/phone", notify)
	bob := e.online("bob@example.com/pc", notify)
	for _, id := range []string{"a", "b", "c"} {
		ok(t, e.iq(ann, "set", "", publishIQ("urn:xmpp:bookmarks:1", id, stanza.New("conference", "urn:xmpp:bookmarks:1"), field("pubsub#max_items", "max"))))
	}
	ann.take()
	bob.take()
	retract := func(id, notifyAttr string) *stanza.Element {
		r := stanza.New("retract", pep.NS).SetAttr("node", "urn:xmpp:bookmarks:1").Append(stanza.New("item", pep.NS).SetAttr("id", id))
		if notifyAttr != "" {
			r.SetAttr("notify", notifyAttr)
		}
		return stanza.New("pubsub", pep.NS).Append(r)
	}
	ok(t, e.iq(ann, "set", "", retract("b", "true")))
	want := []string{"ann@example.com urn:xmpp:bookmarks:1 retract b"}
	for _, s := range []*session{ann, bob} {
		if got := events(s.take()); !slices.Equal(got, want) {
			t.Fatalf("%s: %v, want %v", s.j, got, want)
		}
	}
	ok(t, e.iq(ann, "set", "", retract("a", "0")))
	if got := events(bob.take()); len(got) != 0 {
		t.Fatalf("notify=0 notified: %v", got)
	}
	if got := itemIDs(t, e.iq(ann, "get", "", itemsIQ("urn:xmpp:bookmarks:1", ""))); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("items after retract: %v", got)
	}
	wantError(t, e.iq(ann, "set", "", retract("zz", "")), "item-not-found", "")
	// One unknown id among several retracts nothing.
	both := retract("c", "")
	both.Child("retract", pep.NS).Append(stanza.New("item", pep.NS).SetAttr("id", "zz"))
	wantError(t, e.iq(ann, "set", "", both), "item-not-found", "")
	if got := itemIDs(t, e.iq(ann, "get", "", itemsIQ("urn:xmpp:bookmarks:1", ""))); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("items after failed retract: %v", got)
	}
	wantError(t, e.iq(bob, "set", "ann@example.com", retract("c", "")), "forbidden", "")
	noItem := stanza.New("pubsub", pep.NS).Append(stanza.New("retract", pep.NS).SetAttr("node", "urn:xmpp:bookmarks:1"))
	wantError(t, e.iq(ann, "set", "", noItem), "bad-request", "item-required")
}

func TestDeleteNode(t *testing.T) {
	e := newEnv(t, limits{}, "ann", "bob")
	e.subscribe("bob", "ann")
	ann := e.online("ann@example.com/phone")
	bob := e.online("bob@example.com/pc", "urn:t:n+notify")
	ok(t, e.iq(ann, "set", "", publishIQ("urn:t:n", "1", stanza.New("x", "urn:t"))))
	bob.take()
	del := stanza.New("pubsub", pep.NSOwner).Append(stanza.New("delete", pep.NSOwner).SetAttr("node", "urn:t:n"))
	wantError(t, e.iq(bob, "set", "ann@example.com", del), "forbidden", "")
	ok(t, e.iq(ann, "set", "", del))
	if got := events(bob.take()); !slices.Equal(got, []string{"ann@example.com urn:t:n delete"}) {
		t.Fatalf("delete notification: %v", got)
	}
	wantError(t, e.iq(ann, "get", "", itemsIQ("urn:t:n", "")), "item-not-found", "")
	wantError(t, e.iq(ann, "set", "", del), "item-not-found", "")
	conf := stanza.New("pubsub", pep.NSOwner).Append(stanza.New("configure", pep.NSOwner).SetAttr("node", "urn:t:n"))
	wantError(t, e.iq(ann, "get", "", conf), "item-not-found", "")
	wantError(t, e.iq(bob, "get", "ann@example.com", conf), "forbidden", "")
}

func TestCreate(t *testing.T) {
	e := newEnv(t, limits{}, "ann")
	ann := e.online("ann@example.com/phone")
	create := func(node string, opts ...*stanza.Element) *stanza.Element {
		ps := stanza.New("pubsub", pep.NS).Append(stanza.New("create", pep.NS).SetAttr("node", node))
		if len(opts) > 0 {
			ps.Append(stanza.New("configure", pep.NS).Append(form(pep.NSNodeConfig, opts...)))
		}
		return ps
	}
	ok(t, e.iq(ann, "set", "", create("urn:t:c", field("pubsub#access_model", "open"))))
	if n, err := e.st.GetNode(ctx, "ann", "urn:t:c"); err != nil || n.AccessModel != "open" {
		t.Fatalf("created node %+v %v", n, err)
	}
	wantError(t, e.iq(ann, "set", "", create("urn:t:c")), "conflict", "")
	wantError(t, e.iq(ann, "set", "", create("")), "not-acceptable", "nodeid-required")
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, limits{itemBytes: 200, nodes: 2}, "ann")
	ann := e.online("ann@example.com/phone")
	big := stanza.New("data", "urn:xmpp:avatar:data").AppendText(strings.Repeat("A", 300))
	wantError(t, e.iq(ann, "set", "", publishIQ("urn:xmpp:avatar:data", "h", big)), "not-acceptable", "payload-too-big")
	wantError(t, e.iq(ann, "set", "", publishIQ("", "h", stanza.New("x", "urn:t"))), "bad-request", "nodeid-required")
	wantError(t, e.iq(ann, "set", "", publishIQ("n", strings.Repeat("i", 300), stanza.New("x", "urn:t"))), "not-acceptable", "")
	two := publishIQ("n", "1", stanza.New("x", "urn:t"))
	two.Child("publish", pep.NS).Child("item", pep.NS).Append(stanza.New("y", "urn:t"))
	wantError(t, e.iq(ann, "set", "", two), "bad-request", "invalid-payload")
	empty := publishIQ("n", "1", stanza.New("x", "urn:t"))
	empty.Child("publish", pep.NS).Child("item", pep.NS).Children = nil
	wantError(t, e.iq(ann, "set", "", empty), "bad-request", "payload-required")
	noItem := stanza.New("pubsub", pep.NS).Append(stanza.New("publish", pep.NS).SetAttr("node", "n"))
	wantError(t, e.iq(ann, "set", "", noItem), "bad-request", "item-required")
	wantError(t, e.iq(ann, "get", "", itemsIQ("", "")), "bad-request", "nodeid-required")
	// Nodes per user.
	ok(t, e.iq(ann, "set", "", publishIQ("n1", "1", stanza.New("x", "urn:t"))))
	ok(t, e.iq(ann, "set", "", publishIQ("n2", "1", stanza.New("x", "urn:t"))))
	wantError(t, e.iq(ann, "set", "", publishIQ("n3", "1", stanza.New("x", "urn:t"))), "policy-violation", "")
	ok(t, e.iq(ann, "set", "", publishIQ("n2", "2", stanza.New("x", "urn:t")))) // existing nodes still take items
	// Subscriptions are implicit.
	sub := stanza.New("pubsub", pep.NS).Append(stanza.New("subscribe", pep.NS).SetAttr("node", "n1").SetAttr("jid", "ann@example.com"))
	reply := e.iq(ann, "set", "", sub)
	wantError(t, reply, "feature-not-implemented", "unsupported")
	if f := reply.Child("error", "").Child("unsupported", pep.NSErrors).Attr("feature"); f != "subscribe" {
		t.Fatalf("unsupported feature %q", f)
	}
}

// TestLastItemOnInitialPresence: a resource coming online is sent the last
// item of each node it +notifies of, from its own account and from contacts
// it is subscribed to and may read, with a delay stamp.
func TestLastItemOnInitialPresence(t *testing.T) {
	e := newEnv(t, limits{}, "ann", "bob", "cat", "dan")
	e.subscribe("ann", "bob") // ann sees bob's presence
	e.subscribe("ann", "dan")
	annPub := e.online("ann@example.com/pub")
	bob := e.online("bob@example.com/pc")
	cat := e.online("cat@example.com/pc")
	dan := e.online("dan@example.com/pc")
	ok(t, e.iq(annPub, "set", "", publishIQ(devicelist, "current", deviceList("1"))))
	ok(t, e.iq(annPub, "set", "", publishIQ("urn:xmpp:avatar:metadata", "av1", stanza.New("metadata", "urn:xmpp:avatar:metadata"))))
	ok(t, e.iq(bob, "set", "", publishIQ(devicelist, "current", deviceList("2"))))
	ok(t, e.iq(bob, "set", "", publishIQ(devicelist, "current", deviceList("3")))) // only the last
	ok(t, e.iq(cat, "set", "", publishIQ(devicelist, "current", deviceList("4"), field("pubsub#access_model", "open"))))
	ok(t, e.iq(dan, "set", "", publishIQ(devicelist, "current", deviceList("5"), field("pubsub#access_model", "whitelist"))))

	phone := e.online("ann@example.com/phone", devicelist+"+notify")
	got := events(phone.take())
	slices.Sort(got)
	want := []string{
		"ann@example.com " + devicelist + " item current+delay",
		"bob@example.com " + devicelist + " item current+delay",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("last items %v, want %v", got, want)
	}
	// A presence update with the same caps sends nothing again.
	e.svc.PresenceBroadcast(ctx, phone, phone.presence(t), false)
	if got := events(phone.take()); len(got) != 0 {
		t.Fatalf("update resent %v", got)
	}
	// New caps with one more +notify: only the new node's last item.
	phone.info = discoInfo(devicelist+"+notify", "urn:xmpp:avatar:metadata+notify")
	e.warmCaps(phone.info)
	e.svc.PresenceBroadcast(ctx, phone, phone.presence(t), false)
	if got := events(phone.take()); !slices.Equal(got, []string{"ann@example.com urn:xmpp:avatar:metadata item av1+delay"}) {
		t.Fatalf("after caps change: %v", got)
	}
	// Unavailable, then initial presence again: everything again.
	e.svc.PresenceBroadcast(ctx, phone, stanza.New("presence", stanza.NSClient).SetAttr("type", "unavailable"), false)
	if _, known := e.caps.Features(phone.j); known {
		t.Fatal("caps kept after unavailable")
	}
	e.initial(phone)
	if got := events(phone.take()); len(got) != 3 {
		t.Fatalf("after re-login: %v", got)
	}
}

// TestCapsDiscoveredLater: caps unknown at initial presence are asked for
// with disco#info; the last items follow once the answer verifies.
func TestCapsDiscoveredLater(t *testing.T) {
	e := newEnv(t, limits{}, "ann")
	pub := e.online("ann@example.com/pub")
	ok(t, e.iq(pub, "set", "", publishIQ(devices2, "current", stanza.New("devices", "urn:xmpp:omemo:2"))))
	phone := e.bind("ann@example.com/phone", devices2+"+notify", "urn:fresh:feature")
	e.initial(phone)
	got := waitEvents(t, phone, 1)
	if !slices.Equal(got, []string{"ann@example.com " + devices2 + " item current+delay"}) {
		t.Fatalf("events %v", got)
	}
	if phone.asked.Load() != 1 {
		t.Fatalf("disco#info asked %d times", phone.asked.Load())
	}
	if !e.caps.HasFeature(phone.j, devices2+"+notify") {
		t.Fatal("caps not recorded")
	}
}

// TestWrongHashNotTrusted: a client answering disco#info with features
// that do not match its ver gets notifications by its own answer only; a
// client announcing the same ver honestly is asked itself.
func TestWrongHashNotTrusted(t *testing.T) {
	e := newEnv(t, limits{}, "ann", "eve", "bob")
	e.subscribe("eve", "ann")
	e.subscribe("bob", "ann")
	annPub := e.online("ann@example.com/pub")
	honest := discoInfo(devicelist+"+notify", "urn:unique:wrong-hash-test")
	// eve announces the honest ver but answers with other features.
	eve := e.bind("eve@example.com/x")
	eve.info = honest
	eve.lie = discoInfo("urn:xmpp:avatar:metadata+notify")
	e.initial(eve)
	waitFor(t, func() bool { return e.caps.HasFeature(eve.j, "urn:xmpp:avatar:metadata+notify") })
	// bob announces the same ver; he is asked, not served eve's answer.
	bob := e.bind("bob@example.com/pc")
	bob.info = honest
	e.initial(bob)
	waitFor(t, func() bool { return e.caps.HasFeature(bob.j, devicelist+"+notify") })
	if bob.asked.Load() != 1 || e.caps.HasFeature(bob.j, "urn:xmpp:avatar:metadata+notify") {
		t.Fatalf("bob asked %d times, features from eve's answer", bob.asked.Load())
	}
	eve.take()
	bob.take()
	ok(t, e.iq(annPub, "set", "", publishIQ(devicelist, "current", deviceList("1"))))
	if got := events(bob.take()); len(got) != 1 {
		t.Fatalf("bob: %v", got)
	}
	if got := events(eve.take()); len(got) != 0 {
		t.Fatalf("eve got notified by the ver she faked: %v", got)
	}
}

func TestSessionEnded(t *testing.T) {
	e := newEnv(t, limits{}, "ann")
	phone := e.online("ann@example.com/phone", devicelist+"+notify")
	if !e.caps.HasFeature(phone.j, devicelist+"+notify") {
		t.Fatal("caps not recorded")
	}
	e.svc.SessionEnded(phone.j)
	if _, known := e.caps.Features(phone.j); known {
		t.Fatal("caps kept after the session ended")
	}
	// Presence of a resource that is no longer bound records nothing to send.
	e.r.Unbind(phone)
	e.svc.PresenceBroadcast(ctx, phone, phone.presence(t), true)
	if got := events(phone.take()); len(got) != 0 {
		t.Fatalf("unbound session got %v", got)
	}
}

func TestAccountFeatures(t *testing.T) {
	f := pep.AccountFeatures()
	for _, want := range []string{pep.NS + "#publish", pep.NS + "#publish-options", pep.NS + "#auto-create",
		pep.NS + "#access-open", pep.NS + "#access-presence", pep.NS + "#last-published", pep.NS + "#retrieve-items",
		pep.NS + "#retract-items", pep.NS + "#config-node", pep.NS + "#delete-nodes"} {
		if !slices.Contains(f, want) {
			t.Errorf("AccountFeatures lacks %s", want)
		}
	}
	if pep.IdentityCategory != "pubsub" || pep.IdentityType != "pep" {
		t.Error("identity is not pubsub/pep")
	}
}
