package muc

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// History on join (§7.2.14) comes from an in-memory ring of the room's
// last MaxHistory messages, refilled from the archive when the room is
// activated: joins never touch the store, and a room that was idle (or a
// restarted server) still shows what was said before. Anything older is
// in the archive, for MAM (XEP-0313) queries on the room.

// histEntry is one message ready to be sent as history: the room's copy
// with a XEP-0203 delay stamp, and its size for maxchars.
type histEntry struct {
	el    *stanza.Element
	at    time.Time
	chars int
}

// ring keeps the last max entries.
type ring struct {
	max   int
	buf   []histEntry
	start int
}

func (h *ring) push(e histEntry) {
	if h.max <= 0 {
		return
	}
	if len(h.buf) < h.max {
		h.buf = append(h.buf, e)
		return
	}
	h.buf[h.start] = e
	h.start = (h.start + 1) % h.max
}

func (h *ring) len() int { return len(h.buf) }

// at returns the i-th entry, oldest first.
func (h *ring) at(i int) histEntry { return h.buf[(h.start+i)%len(h.buf)] }

// historyEntry stamps a room message for history; size is its serialised
// length (what maxchars counts).
func (r *room) historyEntry(out *stanza.Element, at time.Time, size int) histEntry {
	el := out.ShallowCopy()
	el.Children = append(el.Children, stanza.New("delay", stanza.NSDelay).
		SetAttr("from", r.jid.String()).
		SetAttr("stamp", at.UTC().Format("2006-01-02T15:04:05.000Z")))
	el.Children = slices.Clip(el.Children)
	return histEntry{el: el, at: at, chars: size}
}

// loadHistory fills the ring from the archive's newest messages.
func (r *room) loadHistory(ctx context.Context) {
	if r.s.cfg.MaxHistory <= 0 {
		return
	}
	page, err := r.s.cfg.Store.QueryArchive(ctx, r.jid.String(), store.ArchiveQuery{Max: r.s.cfg.MaxHistory, Last: true})
	if err != nil {
		r.s.log.Error("muc: load history", "room", r.jid.String(), "err", err)
		return
	}
	for _, it := range page.Items {
		el, err := r.s.cfg.Codec.Unmarshal(it.Stanza)
		if err != nil {
			r.s.log.Warn("muc: undecodable archived message", "room", r.jid.String(), "id", it.ID, "err", err)
			continue
		}
		r.history.push(r.historyEntry(el, it.Time, len(it.Stanza)))
	}
}

// sendHistory sends the history a joining session asked for with
// maxstanzas, maxchars, seconds and since (§7.2.14); without a <history/>
// element it gets the whole ring.
func (r *room) sendHistory(to jid.JID, x *stanza.Element) {
	n := r.history.len()
	if n == 0 {
		return
	}
	maxStanzas, maxChars := n, -1
	var since time.Time
	if x != nil {
		if h := x.Child("history", NS); h != nil {
			if v, err := strconv.Atoi(h.Attr("maxstanzas")); err == nil && v >= 0 {
				maxStanzas = min(v, n)
			}
			if v, err := strconv.Atoi(h.Attr("maxchars")); err == nil && v >= 0 {
				maxChars = v
			}
			// Bounded so the duration cannot overflow; a longer look-back
			// is all of the ring anyway.
			if v, err := strconv.Atoi(h.Attr("seconds")); err == nil && v >= 0 && v < 1<<32 {
				since = r.s.cfg.Now().Add(-time.Duration(v) * time.Second)
			}
			if v := h.Attr("since"); v != "" {
				if t, err := time.Parse(time.RFC3339, v); err == nil && t.After(since) {
					since = t
				}
			}
		}
	}
	// Walk back from the newest message while every limit holds, then
	// send oldest first.
	first, chars := n, 0
	for i := n - 1; i >= 0 && n-i <= maxStanzas; i-- {
		e := r.history.at(i)
		if !since.IsZero() && !e.at.After(since) {
			break
		}
		if maxChars >= 0 && chars+e.chars > maxChars {
			break
		}
		chars += e.chars
		first = i
	}
	for i := first; i < n; i++ {
		r.s.send(to, withTo(r.history.at(i).el, to.String()))
	}
}

// remove drops the entries matching f, keeping the order of the rest.
func (h *ring) remove(f func(histEntry) bool) {
	kept := make([]histEntry, 0, len(h.buf))
	for i := 0; i < len(h.buf); i++ {
		if e := h.at(i); !f(e) {
			kept = append(kept, e)
		}
	}
	h.buf, h.start = kept, 0
}
