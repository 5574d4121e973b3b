package storetest

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/parley-im/parley/internal/store"
)

// rooms returns the backend's store.Rooms; every backend must have one.
func rooms(t *testing.T, s store.Store) store.Rooms {
	t.Helper()
	r, ok := s.(store.Rooms)
	if !ok {
		t.Fatalf("%T does not implement store.Rooms", s)
	}
	return r
}

func roomNames(rs []store.Room) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.JID
	}
	return out
}

var roomTests = []test{
	{"NotFound", func(t *testing.T, s store.Store) {
		r := rooms(t, s)
		_, err := r.GetRoom(t.Context(), "lobby@conference.example.org")
		wantErr(t, "GetRoom", err, store.ErrNotFound)
		wantErr(t, "DeleteRoom", r.DeleteRoom(t.Context(), "lobby@conference.example.org"), store.ErrNotFound)
	}},
	{"PutGetReplaceDelete", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		r := rooms(t, s)
		const j = "lobby@conference.example.org"
		// Opaque data may hold any byte, NUL included.
		data := []byte{1, 0, 2, 0xff, '{', '}'}
		check(t, "PutRoom", r.PutRoom(ctx, store.Room{JID: j, Data: data}))
		got, err := r.GetRoom(ctx, j)
		check(t, "GetRoom", err)
		if got.JID != j || !bytes.Equal(got.Data, data) {
			t.Fatalf("GetRoom = %q %v, want %q %v", got.JID, got.Data, j, data)
		}
		check(t, "PutRoom", r.PutRoom(ctx, store.Room{JID: j, Data: []byte("v2")}))
		got, err = r.GetRoom(ctx, j)
		check(t, "GetRoom", err)
		if string(got.Data) != "v2" {
			t.Fatalf("GetRoom after replace = %q, want v2", got.Data)
		}
		check(t, "DeleteRoom", r.DeleteRoom(ctx, j))
		_, err = r.GetRoom(ctx, j)
		wantErr(t, "GetRoom after delete", err, store.ErrNotFound)
		wantErr(t, "DeleteRoom again", r.DeleteRoom(ctx, j), store.ErrNotFound)
	}},
	{"ListPaging", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		r := rooms(t, s)
		// Inserted out of order; listed in byte order.
		names := []string{"c@muc.x", "a@muc.x", "b@muc.x", "aa@muc.x", "d@muc.x"}
		for i, n := range names {
			check(t, "PutRoom", r.PutRoom(ctx, store.Room{JID: n, Data: []byte(fmt.Sprint(i))}))
		}
		all, err := r.ListRooms(ctx, "", 0)
		check(t, "ListRooms", err)
		want := []string{"a@muc.x", "aa@muc.x", "b@muc.x", "c@muc.x", "d@muc.x"}
		if got := roomNames(all); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("ListRooms = %v, want %v", got, want)
		}
		if string(all[0].Data) != "1" {
			t.Fatalf("ListRooms data of a@muc.x = %q, want 1", all[0].Data)
		}
		page, err := r.ListRooms(ctx, "", 2)
		check(t, "ListRooms page 1", err)
		if got := roomNames(page); fmt.Sprint(got) != fmt.Sprint(want[:2]) {
			t.Fatalf("page 1 = %v, want %v", got, want[:2])
		}
		// after is exclusive, and "aa@muc.x" must not be skipped after "a@muc.x".
		page, err = r.ListRooms(ctx, "a@muc.x", 2)
		check(t, "ListRooms page 2", err)
		if got := roomNames(page); fmt.Sprint(got) != fmt.Sprint(want[1:3]) {
			t.Fatalf("page after a@muc.x = %v, want %v", got, want[1:3])
		}
		page, err = r.ListRooms(ctx, "d@muc.x", 10)
		check(t, "ListRooms past the end", err)
		if len(page) != 0 {
			t.Fatalf("ListRooms past the end = %v", roomNames(page))
		}
		check(t, "DeleteRoom", r.DeleteRoom(ctx, "b@muc.x"))
		all, err = r.ListRooms(ctx, "", 0)
		check(t, "ListRooms", err)
		if len(all) != 4 {
			t.Fatalf("after delete: %v", roomNames(all))
		}
	}},
	{"ErrClosed", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		r := rooms(t, s)
		check(t, "Close", s.Close())
		wantErr(t, "PutRoom", r.PutRoom(ctx, store.Room{JID: "a@muc.x"}), store.ErrClosed)
		_, err := r.GetRoom(ctx, "a@muc.x")
		wantErr(t, "GetRoom", err, store.ErrClosed)
		_, err = r.ListRooms(ctx, "", 0)
		wantErr(t, "ListRooms", err, store.ErrClosed)
		wantErr(t, "DeleteRoom", r.DeleteRoom(ctx, "a@muc.x"), store.ErrClosed)
	}},
}
