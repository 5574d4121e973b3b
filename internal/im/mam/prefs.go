package mam

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/parley-im/parley/internal/store"
	"github.com/parley-im/parley/jid"
	"github.com/parley-im/parley/stanza"
)

// getPrefs answers an iq get of <prefs/>: the stored preferences, or the
// server default with empty lists.
func (m *Module) getPrefs(ctx context.Context, owner string) (*stanza.Element, error) {
	p, err := m.loadPrefs(ctx, owner)
	if err != nil {
		return nil, fmt.Errorf("mam: prefs of %s: %w", owner, err)
	}
	return result(prefsElement(p)), nil
}

// setPrefs replaces the preferences and answers with them as stored
// (XEP-0313 §6). List entries are normalised to bare JIDs (a domain alone
// stands for every JID of that domain); an entry in both lists is
// refused rather than guessed at.
func (m *Module) setPrefs(ctx context.Context, owner string, el *stanza.Element) (*stanza.Element, error) {
	p := store.ArchivePrefs{Default: el.Attr("default")}
	switch p.Default {
	case PrefAlways, PrefNever, PrefRoster:
	default:
		return nil, stanza.ErrBadRequest.WithText("default must be always, never or roster")
	}
	n := 0
	for _, l := range []struct {
		name string
		dst  *[]string
	}{{"always", &p.Always}, {"never", &p.Never}} {
		list := el.Child(l.name, NS)
		if list == nil {
			continue
		}
		for _, j := range list.Children {
			if j.Name != "jid" || j.NS != NS {
				continue
			}
			if n++; n > MaxPrefsJIDs {
				return nil, stanza.ErrNotAcceptable.WithText(fmt.Sprintf("at most %d JIDs in always and never together", MaxPrefsJIDs))
			}
			v := strings.TrimSpace(j.TextContent())
			if len(v) > maxValueLen {
				return nil, stanza.ErrBadRequest.WithText("JID too long")
			}
			pj, err := jid.Parse(v)
			if err != nil || v == "" {
				return nil, stanza.ErrJIDMalformed.WithText("not a JID in " + l.name)
			}
			b := pj.Bare().String()
			if !slices.Contains(*l.dst, b) {
				*l.dst = append(*l.dst, b)
			}
		}
	}
	for _, a := range p.Always {
		if slices.Contains(p.Never, a) {
			return nil, stanza.ErrBadRequest.WithText(a + " is in both always and never")
		}
	}
	// Forget after the write; a load that ran meanwhile is not cached
	// (memo.Cache).
	err := m.cfg.Archive.SetArchivePrefs(ctx, owner, p)
	m.Forget(owner)
	if err != nil {
		return nil, fmt.Errorf("mam: set prefs of %s: %w", owner, err)
	}
	return result(prefsElement(p)), nil
}

func prefsElement(p store.ArchivePrefs) *stanza.Element {
	el := stanza.New("prefs", NS).SetAttr("default", p.Default)
	for _, l := range []struct {
		name string
		jids []string
	}{{"always", p.Always}, {"never", p.Never}} {
		list := stanza.New(l.name, NS)
		for _, j := range l.jids {
			list.Append(stanza.New("jid", NS).AppendText(j))
		}
		el.Append(list)
	}
	return el
}
