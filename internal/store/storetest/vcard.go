package storetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/store"
)

var vcardTests = []test{
	{"NotFound", func(t *testing.T, s store.Store) {
		_, err := s.GetVCard(t.Context(), "alice")
		wantErr(t, "GetVCard", err, store.ErrNotFound)
	}},
	{"PutGet", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		card := []byte("<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>")
		check(t, "PutVCard", s.PutVCard(ctx, "alice", card))
		got, err := s.GetVCard(ctx, "alice")
		check(t, "GetVCard", err)
		if !bytes.Equal(got, card) {
			t.Fatalf("GetVCard = %q, want %q", got, card)
		}
		_, err = s.GetVCard(ctx, "bob")
		wantErr(t, "GetVCard(bob)", err, store.ErrNotFound)
	}},
	{"Replace", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		check(t, "PutVCard", s.PutVCard(ctx, "alice", []byte("<vCard xmlns='vcard-temp'><FN>A</FN></vCard>")))
		card := []byte("<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN></vCard>")
		check(t, "PutVCard", s.PutVCard(ctx, "alice", card))
		got, err := s.GetVCard(ctx, "alice")
		check(t, "GetVCard", err)
		if !bytes.Equal(got, card) {
			t.Fatalf("GetVCard = %q, want %q", got, card)
		}
	}},
}

var closeTests = []test{
	{"ErrClosed", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		check(t, "Close", s.Close())
		for name, err := range map[string]error{
			"CreateAccount": s.CreateAccount(ctx, account("alice")),
			"GetAccount":    second(s.GetAccount(ctx, "alice")),
			"CountAccounts": second(s.CountAccounts(ctx)),
			"PutRosterItem": second(s.PutRosterItem(ctx, "alice", carol)),
			"RosterVersion": second(s.RosterVersion(ctx, "alice")),
			"Enqueue":       second(s.Enqueue(ctx, "alice", stanza(0), time.Time{}, 0)),
			"Pending":       second(s.Pending(ctx, "alice", 0, 0)),
			"Ack":           s.Ack(ctx, "alice", 1),
			"Depth":         second(s.Depth(ctx, "alice")),
			"Expire":        second(s.Expire(ctx, time.Now())),
			"GetVCard":      second(s.GetVCard(ctx, "alice")),
			"PutVCard":      s.PutVCard(ctx, "alice", nil),
		} {
			wantErr(t, name+" after Close", err, store.ErrClosed)
		}
	}},
}

func second[T any](_ T, err error) error { return err }
