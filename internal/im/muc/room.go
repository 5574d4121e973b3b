package muc

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// item is one entry of a room's mailbox: a stanza, or the notice that a
// session ended (SessionEnded).
type item struct {
	from, to jid.JID
	el       *stanza.Element
	ended    bool
	// barrier, if set, is closed when the room has handled this item: a
	// way to wait for it and everything posted before it (Sync, ForgetUser).
	barrier chan struct{}
	// forget, if set, is a deleted account to remove from the room.
	forget jid.JID
}

// occupant is one nickname in a room. Several sessions of the same bare
// JID may share it (XEP-0045 §7.2.7): they are one occupant to the others.
type occupant struct {
	nick     string
	key      string // nickKey(nick): what conflicts are decided on
	bare     jid.JID
	sessions []jid.JID // real full JIDs
	role     Role
	id       string            // XEP-0421 occupant id
	pres     []*stanza.Element // presence payload (show, status, caps…), muc elements removed
	tokens   float64           // message rate bucket
	last     time.Time
}

// room is one active room. Everything below done is owned by the room's
// goroutine (run): no other goroutine reads or writes it.
type room struct {
	s    *Service
	name string  // localpart
	jid  jid.JID // bare room JID
	mbox chan item
	// life guards dead: senders hold it shared while they send, the
	// goroutine exclusively when it retires (see Service.post).
	life sync.RWMutex
	dead bool

	loadErr error // the store failed while loading: the room answers errors
	exists  bool  // created (in memory) or loaded (from the store)
	locked  bool  // created, awaiting the owner's configuration (§10.1)
	cfg     RoomConfig
	affs    map[jid.JID]affEntry
	subject subject
	secret  []byte // salt of occupant ids
	created time.Time

	occupants map[string]*occupant  // by nick key
	bySession map[jid.JID]*occupant // by real full JID
	history   ring

	relays   relayTable // iqs relayed between occupants
	relaySeq uint64

	// listing is the room's directory entry, written by its goroutine and
	// read by disco#items on the service.
	listing listingPtr
}

type subject struct {
	Text string    `json:"text,omitempty"`
	Nick string    `json:"nick,omitempty"`
	Time time.Time `json:"time,omitzero"`
}

func newRoom(s *Service, name string, bare jid.JID) *room {
	return &room{
		s:         s,
		name:      name,
		jid:       bare,
		mbox:      make(chan item, s.cfg.Mailbox),
		affs:      map[jid.JID]affEntry{},
		occupants: map[string]*occupant{},
		bySession: map[jid.JID]*occupant{},
		history:   ring{max: s.cfg.MaxHistory},
	}
}

// run is the room's goroutine: load, then serve the mailbox until the room
// is idle (no occupants) or the service closes.
func (r *room) run() {
	defer r.s.wg.Done()
	r.load(r.s.ops)
	for {
		select {
		case it := <-r.mbox:
			r.safeHandle(it)
			r.publish()
			if r.idle() && r.tryRetire() {
				return
			}
		case <-r.s.ctx.Done():
			r.shutdown()
			return
		}
	}
}

// tryRetire retires the idle room unless stanzas are waiting. A sender
// caught mid-send either delivers a stanza (seen as pending next time) or
// gives up within moments, so contention is waited out by yielding.
func (r *room) tryRetire() bool {
	for {
		switch r.s.retire(r) {
		case retired:
			return true
		case pending:
			return false
		}
		if len(r.mbox) > 0 {
			return false
		}
		runtime.Gosched()
	}
}

// idle reports whether the goroutine may retire: nobody is in the room and
// nothing would be lost (a persistent room's state is in the store, a
// temporary room has been destroyed with its last occupant).
func (r *room) idle() bool {
	return len(r.occupants) == 0
}

// shutdown tells every occupant the service is going down (status 332).
func (r *room) shutdown() {
	for _, o := range r.sortedOccupants() {
		r.removeOccupant(o, presenceSpec{typ: "unavailable", codes: []int{statusShutdown}, selfOnly: true})
	}
	// A temporary room ends with the service: its archive must not
	// outlive it.
	if r.exists && (!r.cfg.Persistent || r.locked) {
		r.destroy()
	}
	// Blocking senders gave up when the service's context ended; what is
	// in the mailbox now is all there will be.
	r.s.mu.Lock()
	r.life.Lock()
	r.dead = true
	if r.s.rooms[r.name] == r {
		delete(r.s.rooms, r.name)
		r.s.Stats.Active.Add(-1)
	}
	r.life.Unlock()
	r.s.mu.Unlock()
	// Finish what changes state (ForgetUser) or has a waiter (Sync);
	// stanzas from clients are dropped with their sessions.
	for {
		select {
		case it := <-r.mbox:
			if it.el == nil && !it.ended {
				r.safeHandle(it)
			}
			continue
		default:
		}
		return
	}
}

// safeHandle contains a panic to the one stanza that caused it.
func (r *room) safeHandle(it item) {
	defer func() {
		if p := recover(); p != nil {
			r.s.log.Error("muc: panic in room", "room", r.jid.String(), "panic", p)
			if it.el != nil {
				r.s.replyError(it.el, stanza.ErrInternalServerError)
			}
		}
	}()
	r.handle(it)
}

func (r *room) handle(it item) {
	if it.barrier != nil {
		defer close(it.barrier)
	}
	if !it.forget.IsZero() {
		if r.loadErr == nil && r.exists {
			r.forget(it.forget)
		}
		return
	}
	if it.ended {
		if o := r.bySession[it.from]; o != nil {
			r.leave(o, it.from, nil)
		}
		return
	}
	if it.el == nil {
		return // a barrier
	}
	if r.loadErr != nil {
		r.s.replyError(it.el, stanza.ErrInternalServerError)
		return
	}
	switch it.el.Name {
	case "presence":
		r.handlePresence(it.from, it.to, it.el)
	case "message":
		r.handleMessage(it.from, it.to, it.el)
	case "iq":
		r.handleIQ(it.from, it.to, it.el)
	}
}

// load reads the room's record and recent history from the store.
func (r *room) load(ctx context.Context) {
	rec, err := r.s.cfg.Store.GetRoom(ctx, r.jid.String())
	if errors.Is(err, store.ErrNotFound) {
		return
	}
	if err != nil {
		r.loadErr = err
		r.s.log.Error("muc: load room", "room", r.jid.String(), "err", err)
		return
	}
	if err := r.decode(rec.Data); err != nil {
		r.loadErr = err
		r.s.log.Error("muc: decode room", "room", r.jid.String(), "err", err)
		return
	}
	r.exists = true
	r.loadHistory(ctx)
}

// create makes a new, locked room owned by owner (XEP-0045 §10.1).
func (r *room) create(owner jid.JID) {
	r.exists = true
	r.locked = true
	r.cfg = *r.s.cfg.Defaults
	r.affs = map[jid.JID]affEntry{owner.Bare(): {Aff: AffOwner}}
	r.subject = subject{}
	r.secret = make([]byte, 16)
	_, _ = rand.Read(r.secret)
	r.created = r.s.cfg.Now()
	r.history = ring{max: r.s.cfg.MaxHistory}
	r.s.Stats.Rooms.Add(1)
	// A temporary room of the same name that died with a crashed server
	// may have left its archive behind; a new room must not show it.
	if err := r.s.cfg.Store.DeleteArchive(r.s.ops, r.jid.String()); err != nil && !errors.Is(err, store.ErrNotFound) {
		r.s.log.Warn("muc: clear archive of new room", "room", r.jid.String(), "err", err)
	}
}

// destroy removes the room from the store (record and archive) and from
// memory; occupants must have been removed by the caller.
func (r *room) destroy() {
	if !r.exists {
		return
	}
	ctx := r.s.ops
	if err := r.s.cfg.Store.DeleteRoom(ctx, r.jid.String()); err != nil && !errors.Is(err, store.ErrNotFound) {
		r.s.log.Error("muc: delete room", "room", r.jid.String(), "err", err)
	}
	if err := r.s.cfg.Store.DeleteArchive(ctx, r.jid.String()); err != nil && !errors.Is(err, store.ErrNotFound) {
		r.s.log.Error("muc: delete room archive", "room", r.jid.String(), "err", err)
	}
	r.exists = false
	r.locked = false
	r.affs = map[jid.JID]affEntry{}
	r.history = ring{max: r.s.cfg.MaxHistory}
	r.s.Stats.Rooms.Add(-1)
}

// afterLeave destroys a temporary (or never configured) room whose last
// occupant has gone.
func (r *room) afterLeave() {
	if len(r.occupants) == 0 && r.exists && (!r.cfg.Persistent || r.locked) {
		r.destroy()
	}
}

// save writes the room's record if the room is persistent and configured.
func (r *room) save() error {
	if !r.cfg.Persistent || r.locked || !r.exists {
		return nil
	}
	data, err := r.encode()
	if err != nil {
		return err
	}
	if err := r.s.cfg.Store.PutRoom(r.s.ops, store.Room{JID: r.jid.String(), Data: data}); err != nil {
		r.s.log.Error("muc: save room", "room", r.jid.String(), "err", err)
		return err
	}
	return nil
}

// occupantJID is room@service/nick.
func (r *room) occupantJID(nick string) jid.JID {
	j, err := r.jid.WithResource(nick)
	if err != nil {
		return r.jid // unreachable: nicknames are valid resourceparts
	}
	return j
}

// occupantID is the XEP-0421 id of a real bare JID in this room: stable
// across joins and nick changes, unlinkable across rooms.
func (r *room) occupantID(bare jid.JID) string {
	m := hmac.New(sha256.New, r.secret)
	m.Write([]byte(bare.String()))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

// nickKey is what two nicknames are compared on: case-insensitive, as the
// PRECIS Nickname profile's comparison (RFC 8266 §2.4) asks.
func nickKey(nick string) string { return strings.ToLower(nick) }

func (r *room) sortedOccupants() []*occupant {
	out := make([]*occupant, 0, len(r.occupants))
	for _, o := range r.occupants {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b *occupant) int { return strings.Compare(a.key, b.key) })
	return out
}

func (r *room) affOf(bare jid.JID) Affiliation {
	if e, ok := r.affs[bare.Bare()]; ok {
		return e.Aff
	}
	return AffNone
}

// canSeeJIDs reports whether the occupant sees other occupants' real JIDs:
// everyone in a non-anonymous room, moderators in a semi-anonymous one.
func (r *room) canSeeJIDs(o *occupant) bool {
	return r.cfg.WhoIs == WhoIsAnyone || (o != nil && o.role == RoleModerator)
}

// occupantLimit is the room's maxusers under the service's hard ceiling.
func (r *room) occupantLimit() int {
	n := r.s.cfg.MaxOccupantsPerRoom
	if r.cfg.MaxUsers > 0 && r.cfg.MaxUsers < n {
		n = r.cfg.MaxUsers
	}
	return n
}

// withTo returns a copy of base addressed to one recipient: a new
// top-level element with its own attributes, sharing base's children.
// base's child slice is clipped by its builders, so an append by a
// recipient reallocates instead of writing into the shared array. The
// element and its attributes are one allocation for the usual stanza.
func withTo(base *stanza.Element, to string) *stanza.Element {
	c := &addressed{}
	c.el = stanza.Element{Name: base.Name, NS: base.NS, Children: base.Children}
	if len(base.Attrs) < len(c.attrs) {
		c.el.Attrs = c.attrs[: len(base.Attrs) : len(base.Attrs)+1]
	} else {
		c.el.Attrs = make([]stanza.Attr, len(base.Attrs), len(base.Attrs)+1)
	}
	copy(c.el.Attrs, base.Attrs)
	c.el.Attrs = append(c.el.Attrs, stanza.Attr{Name: "to", Value: to})
	return &c.el
}

// addressed holds a recipient's top-level element with room for its
// attributes (from, type, id, xml:lang, to).
type addressed struct {
	el    stanza.Element
	attrs [5]stanza.Attr
}

// sendTo delivers base to every session of o.
func (r *room) sendTo(o *occupant, base *stanza.Element) {
	for _, s := range o.sessions {
		r.s.send(s, withTo(base, s.String()))
	}
}

// reply sends an error reply for el from the room.
func (r *room) replyError(el *stanza.Element, e *stanza.Error) { r.s.replyError(el, e) }

// replyIQ sends a result (or any reply) to the iq's sender.
func (r *room) replyIQ(iq, reply *stanza.Element) {
	reply.SetAttr("id", iq.ID())
	reply.SetAttr("to", iq.From())
	reply.SetAttr("from", iq.To())
	if to, err := jid.Parse(iq.From()); err == nil {
		r.s.r.DeliverTo(r.s.ops, to, reply)
	}
}
