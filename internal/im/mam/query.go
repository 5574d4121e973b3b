package mam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/parley-im/parley/internal/router"
	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// Bounds on query input: everything in a query comes from the network.
const (
	maxQueryIDLen = 256  // queryid attribute
	maxIDLen      = 256  // archive ids in after-id, before-id, ids and RSM
	maxValueLen   = 3071 // any other form value (a JID's maximum length)
	maxFields     = 32   // fields in one form
	maxIDs        = 250  // values of the ids field
	// maxPageBytes bounds the stored bytes one page delivers, so that a
	// page of large messages cannot overflow the requester's output
	// buffer (c2s MaxOutBytes, 4 MiB) and cost it its connection.
	maxPageBytes = 1 << 20
)

// stampLayout writes XEP-0082 DateTimes with microseconds: a client that
// reuses a stamp as the start of its next query must not lose the message
// it came from to rounding.
const stampLayout = "2006-01-02T15:04:05.000000Z"

// Answer runs the XEP-0313 query in iq (an iq set carrying <query
// xmlns='urn:xmpp:mam:2'/>; an iq get asks for the form) on owner's
// archive. It calls deliver with each result message, oldest first, from
// archiveJID to requester, and then returns the iq result carrying <fin/>
// (the caller addresses it and sets its id), or a *stanza.Error for the
// requester: bad-request for a malformed form, date or RSM set,
// item-not-found for an unknown after/before id, feature-not-implemented
// for what is not supported (RSM <index/>, unknown fields, pubsub nodes).
// Other errors are store failures (internal-server-error).
//
// maxPage bounds the page: RSM <max/> is clamped to it (XEP-0059 allows
// fewer items than asked), and a query without <max/> gets DefaultPage
// or maxPage if smaller. Access control is the caller's: Answer serves
// whoever it is given.
func Answer(ctx context.Context, a store.Archive, codec router.StanzaCodec, owner string, archiveJID jid.JID, requester jid.JID, iq *stanza.Element, maxPage int, deliver func(*stanza.Element)) (*stanza.Element, error) {
	return answer(ctx, slog.Default(), a, codec, owner, archiveJID, requester, iq, maxPage, deliver)
}

func answer(ctx context.Context, log *slog.Logger, a store.Archive, codec router.StanzaCodec, owner string, archiveJID, requester jid.JID, iq *stanza.Element, maxPage int, deliver func(*stanza.Element)) (*stanza.Element, error) {
	query := iq.Child("query", NS)
	if query == nil {
		return nil, stanza.ErrBadRequest.WithText("no query")
	}
	switch iq.Type() {
	case "get":
		return result(stanza.New("query", NS).Append(queryForm())), nil
	case "set":
	default:
		return nil, stanza.ErrBadRequest
	}
	if maxPage <= 0 {
		maxPage = DefaultMaxPage
	}
	pq, err := parseQuery(query, maxPage)
	if err != nil {
		return nil, err
	}
	q := pq.q
	if pq.countOnly {
		q.Max = 1
	}
	var page store.ArchivePage
	if pq.ids != nil {
		page, err = byIDs(ctx, a, owner, pq.ids)
	} else {
		page, err = a.QueryArchive(ctx, owner, q)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, stanza.ErrItemNotFound.WithText("no message with that id in the archive")
	}
	if err != nil {
		return nil, fmt.Errorf("mam: query archive of %s: %w", owner, err)
	}
	if pq.countOnly { // XEP-0059 §2.7: <max>0</max> asks for the count alone
		page.Complete = len(page.Items) == 0
		page.Items = nil
	}
	trimPage(&page, q.Last)
	for _, it := range page.Items {
		el, err := codec.Unmarshal(it.Stanza)
		if err != nil {
			// Skipped, not fatal: one damaged entry must not make the rest
			// of the archive unreachable. first/last still name it, so
			// paging moves past it.
			log.Error("mam: undecodable archived message skipped", "owner", owner, "id", it.ID, "err", err)
			continue
		}
		res := stanza.New("result", NS).SetAttr("id", it.ID)
		if pq.queryID != "" {
			res.SetAttr("queryid", pq.queryID)
		}
		res.Append(stanza.New("forwarded", nsForward).Append(
			stanza.New("delay", stanza.NSDelay).SetAttr("stamp", it.Time.UTC().Format(stampLayout)),
			el,
		))
		deliver(stanza.New("message", stanza.NSClient).
			SetAttr("to", requester.String()).
			SetAttr("from", archiveJID.String()).
			Append(res))
	}
	return result(fin(q, page)), nil
}

// trimPage shortens a page past maxPageBytes (always keeping one item) at
// the end the client pages from: the tail of a forward page, the head of
// a last page, so that its next after/before continues where this one
// stopped.
func trimPage(p *store.ArchivePage, last bool) {
	n, size := 0, 0
	for n < len(p.Items) {
		i := n
		if last {
			i = len(p.Items) - 1 - n
		}
		size += len(p.Items[i].Stanza)
		if n > 0 && size > maxPageBytes {
			break
		}
		n++
	}
	if n == len(p.Items) {
		return
	}
	if last {
		p.Items = p.Items[len(p.Items)-n:]
	} else {
		p.Items = p.Items[:n]
	}
	p.Complete = false
}

func result(payload *stanza.Element) *stanza.Element {
	return stanza.New("iq", stanza.NSClient).SetAttr("type", "result").Append(payload)
}

// fin builds <fin/> with its RSM set: first, last, the index of first
// when known without counting (a page from the start of the range is at
// 0; a last page is at count-len when the count is known) and the count
// when the store knows it.
func fin(q store.ArchiveQuery, p store.ArchivePage) *stanza.Element {
	f := stanza.New("fin", NS)
	if p.Complete {
		f.SetAttr("complete", "true")
	}
	set := stanza.New("set", nsRSM)
	if n := len(p.Items); n > 0 {
		first := stanza.New("first", nsRSM).AppendText(p.Items[0].ID)
		noIDs := q.AfterID == "" && q.BeforeID == ""
		switch {
		case noIDs && !q.Last:
			first.SetAttr("index", "0")
		case noIDs && p.Count >= n:
			first.SetAttr("index", strconv.Itoa(p.Count-n))
		}
		set.Append(first, stanza.New("last", nsRSM).AppendText(p.Items[n-1].ID))
	}
	if p.Count >= 0 {
		set.Append(stanza.New("count", nsRSM).AppendText(strconv.Itoa(p.Count)))
	}
	return f.Append(set)
}

type parsedQuery struct {
	q         store.ArchiveQuery
	queryID   string
	countOnly bool
	ids       []string // the ids field: these messages, nothing else
}

// parseQuery reads the query's attributes, data form and RSM set. On the
// same side, an RSM id wins over the form's before-id/after-id: RSM pages
// move inside the range the form set up.
func parseQuery(query *stanza.Element, maxPage int) (parsedQuery, error) {
	var pq parsedQuery
	pq.queryID = query.Attr("queryid")
	if len(pq.queryID) > maxQueryIDLen {
		return pq, stanza.ErrBadRequest.WithText("queryid too long")
	}
	if query.Attr("node") != "" {
		return pq, stanza.ErrFeatureNotImplemented.WithText("pubsub node archives are not supported")
	}
	if x := query.Child("x", nsData); x != nil {
		if err := parseForm(x, &pq); err != nil {
			return pq, err
		}
	}
	pq.q.Max = min(DefaultPage, maxPage)
	set := query.Child("set", nsRSM)
	if set != nil {
		if err := parseRSM(set, maxPage, &pq); err != nil {
			return pq, err
		}
	}
	if pq.ids != nil {
		// XEP-0313 §4.1.4: ids names the messages; no other filter or
		// paging applies.
		if pq.q != (store.ArchiveQuery{Max: pq.q.Max}) || set != nil {
			return pq, stanza.ErrBadRequest.WithText("ids cannot be combined with other fields or RSM")
		}
		if len(pq.ids) > maxPage {
			return pq, stanza.ErrPolicyViolation.WithText(fmt.Sprintf("at most %d ids", maxPage))
		}
	}
	return pq, nil
}

func parseForm(x *stanza.Element, pq *parsedQuery) error {
	q := &pq.q
	if t := x.Attr("type"); t != "" && t != "submit" {
		return stanza.ErrBadRequest.WithText("the query form must be of type submit")
	}
	fields := 0
	for _, f := range x.Children {
		if f.Name != "field" || f.NS != nsData {
			continue
		}
		if fields++; fields > maxFields {
			return stanza.ErrBadRequest.WithText("too many fields")
		}
		name := f.Attr("var")
		var values []string
		for _, v := range f.Children {
			if v.Name != "value" || v.NS != nsData {
				continue
			}
			if len(values) == maxIDs {
				return stanza.ErrBadRequest.WithText("too many values in field " + name)
			}
			s := v.TextContent()
			if len(s) > maxValueLen {
				return stanza.ErrBadRequest.WithText("value of field " + name + " too long")
			}
			values = append(values, s)
		}
		if name != "ids" && len(values) > 1 {
			return stanza.ErrBadRequest.WithText("field " + name + " takes one value")
		}
		v := ""
		if len(values) == 1 {
			v = strings.TrimSpace(values[0])
		}
		var err error
		switch name {
		case "FORM_TYPE":
			if v != NS {
				return stanza.ErrBadRequest.WithText("FORM_TYPE must be " + NS)
			}
		case "with":
			if v == "" {
				continue
			}
			j, perr := jid.Parse(v)
			if perr != nil {
				return stanza.ErrBadRequest.WithText("with: not a JID")
			}
			// The archive records the peer's bare JID only, so a full
			// JID matches the whole account (broader than XEP-0313 §4.1.1.1).
			q.With = j.Bare().String()
		case "start":
			q.Start, err = parseDateTime("start", v)
		case "end":
			q.End, err = parseDateTime("end", v)
		case "after-id":
			q.AfterID, err = archiveID("after-id", v)
		case "before-id":
			q.BeforeID, err = archiveID("before-id", v)
		case "ids":
			pq.ids = make([]string, 0, len(values))
			for _, id := range values {
				if id, err = archiveID("ids", strings.TrimSpace(id)); err != nil {
					return err
				}
				if id == "" {
					return stanza.ErrBadRequest.WithText("ids: empty id")
				}
				pq.ids = append(pq.ids, id)
			}
		default:
			return stanza.ErrFeatureNotImplemented.WithText("unsupported field " + truncate(name, 64))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func parseRSM(set *stanza.Element, maxPage int, pq *parsedQuery) error {
	if set.Child("index", nsRSM) != nil {
		return stanza.ErrFeatureNotImplemented.WithText("RSM index is not supported")
	}
	if m := set.Child("max", nsRSM); m != nil {
		s := strings.TrimSpace(m.TextContent())
		if s == "" || len(s) > 12 || strings.TrimLeft(s, "0123456789") != "" {
			return stanza.ErrBadRequest.WithText("RSM max must be a non-negative integer")
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return stanza.ErrBadRequest.WithText("RSM max must be a non-negative integer")
		}
		pq.q.Max = min(n, maxPage)
		pq.countOnly = n == 0
	}
	if a := set.Child("after", nsRSM); a != nil {
		id, err := archiveID("RSM after", strings.TrimSpace(a.TextContent()))
		if err != nil {
			return err
		}
		if id == "" {
			return stanza.ErrBadRequest.WithText("RSM after needs an id")
		}
		pq.q.AfterID = id
	}
	if b := set.Child("before", nsRSM); b != nil {
		id, err := archiveID("RSM before", strings.TrimSpace(b.TextContent()))
		if err != nil {
			return err
		}
		pq.q.Last = true
		if id != "" {
			pq.q.BeforeID = id
		}
	}
	return nil
}

func archiveID(what, v string) (string, error) {
	if len(v) > maxIDLen {
		return "", stanza.ErrBadRequest.WithText(what + ": id too long")
	}
	return v, nil
}

// parseDateTime reads a XEP-0082 DateTime (CCYY-MM-DDThh:mm:ss[.sss]TZD);
// an empty value is no bound.
func parseDateTime(what, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if len(v) > 64 {
		return time.Time{}, stanza.ErrBadRequest.WithText(what + ": not a XEP-0082 DateTime")
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || t.IsZero() {
		return time.Time{}, stanza.ErrBadRequest.WithText(what + ": not a XEP-0082 DateTime")
	}
	return t, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// queryForm is the answer to an iq get of <query/> (XEP-0313 §4.1.5):
// the fields a query may use.
func queryForm() *stanza.Element {
	x := stanza.New("x", nsData).SetAttr("type", "form")
	x.Append(stanza.New("field", nsData).SetAttr("type", "hidden").SetAttr("var", "FORM_TYPE").
		Append(stanza.New("value", nsData).AppendText(NS)))
	for _, f := range [][2]string{
		{"with", "jid-single"}, {"start", "text-single"}, {"end", "text-single"},
		{"after-id", "text-single"}, {"before-id", "text-single"}, {"ids", "text-multi"},
	} {
		x.Append(stanza.New("field", nsData).SetAttr("var", f[0]).SetAttr("type", f[1]))
	}
	return x
}

// metadata answers the XEP-0313 archive metadata query: the ids and times
// of the first and last message, or an empty <metadata/> for an empty
// archive. Two one-item pages, whatever the archive's size.
func metadata(ctx context.Context, a store.Archive, owner string) (*stanza.Element, error) {
	md := stanza.New("metadata", NS)
	first, err := a.QueryArchive(ctx, owner, store.ArchiveQuery{Max: 1})
	if err != nil {
		return nil, fmt.Errorf("mam: metadata of %s: %w", owner, err)
	}
	if len(first.Items) == 0 {
		return result(md), nil
	}
	last, err := a.QueryArchive(ctx, owner, store.ArchiveQuery{Max: 1, Last: true})
	if err != nil {
		return nil, fmt.Errorf("mam: metadata of %s: %w", owner, err)
	}
	if len(last.Items) == 0 { // expired in between
		return result(md), nil
	}
	for _, e := range []struct {
		name string
		m    store.ArchivedMessage
	}{{"start", first.Items[0]}, {"end", last.Items[0]}} {
		md.Append(stanza.New(e.name, NS).SetAttr("id", e.m.ID).SetAttr("timestamp", e.m.Time.UTC().Format(stampLayout)))
	}
	return result(md), nil
}

// byIDs fetches the messages named by the ids field, in the order given;
// ids not in the archive are left out (XEP-0313 §4.1.4). store.Archive
// has no lookup by id, so each id costs two one-item pages: the message
// before it (a bound the store resolves through its id index), then the
// one after that, which is the id's own. The page is complete and its
// count exact.
func byIDs(ctx context.Context, a store.Archive, owner string, ids []string) (store.ArchivePage, error) {
	p := store.ArchivePage{Complete: true}
	for _, id := range ids {
		prev, err := a.QueryArchive(ctx, owner, store.ArchiveQuery{BeforeID: id, Last: true, Max: 1})
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return p, err
		}
		next := store.ArchiveQuery{Max: 1}
		if len(prev.Items) == 1 {
			next.AfterID = prev.Items[0].ID
		}
		it, err := a.QueryArchive(ctx, owner, next)
		if errors.Is(err, store.ErrNotFound) { // prev expired in between
			continue
		}
		if err != nil {
			return p, err
		}
		if len(it.Items) == 1 && it.Items[0].ID == id {
			p.Items = append(p.Items, it.Items[0])
		}
	}
	p.Count = len(p.Items)
	return p, nil
}
