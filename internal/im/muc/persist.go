package muc

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/parley-im/parley/jid"
)

// A room record (store.Room.Data) is one version byte followed by JSON.
// JSON because records are small and written only on configuration,
// affiliation and subject changes, and a readable dump helps operators;
// the version byte lets a later layout be told apart without guessing.
const recordVersion = 1

type record struct {
	Config  RoomConfig  `json:"config"`
	Affs    []affRecord `json:"affs,omitempty"`
	Subject subject     `json:"subject,omitzero"`
	Secret  []byte      `json:"secret"`
	Created time.Time   `json:"created"`
}

type affRecord struct {
	JID    string `json:"jid"`
	Aff    string `json:"aff"`
	Reason string `json:"reason,omitempty"`
}

func (r *room) encode() ([]byte, error) {
	rec := record{Config: r.cfg, Subject: r.subject, Secret: r.secret, Created: r.created}
	for j, e := range r.affs {
		rec.Affs = append(rec.Affs, affRecord{JID: j.String(), Aff: e.Aff.String(), Reason: e.Reason})
	}
	// A stable order keeps identical state byte-identical on disk.
	slices.SortFunc(rec.Affs, func(a, b affRecord) int { return strings.Compare(a.JID, b.JID) })
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("muc: encode room %s: %w", r.jid, err)
	}
	return append([]byte{recordVersion}, b...), nil
}

func (r *room) decode(data []byte) error {
	if len(data) == 0 || data[0] != recordVersion {
		return fmt.Errorf("muc: room %s: unknown record version", r.jid)
	}
	var rec record
	if err := json.Unmarshal(data[1:], &rec); err != nil {
		return fmt.Errorf("muc: decode room %s: %w", r.jid, err)
	}
	r.cfg = rec.Config
	r.subject = rec.Subject
	r.secret = rec.Secret
	r.created = rec.Created
	r.affs = make(map[jid.JID]affEntry, len(rec.Affs))
	for _, a := range rec.Affs {
		j, err := jid.Parse(a.JID)
		if err != nil {
			return fmt.Errorf("muc: room %s: affiliation of %q: %w", r.jid, a.JID, err)
		}
		aff, ok := parseAffiliation(a.Aff)
		if !ok || aff == AffNone {
			return fmt.Errorf("muc: room %s: affiliation %q of %q", r.jid, a.Aff, a.JID)
		}
		r.affs[j] = affEntry{Aff: aff, Reason: a.Reason}
	}
	return nil
}
