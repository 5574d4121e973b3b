package pebble

import (
	"bytes"
	"context"
	"testing"

	"github.com/parley-im/parley/internal/store"
)

// TestRoomsSurviveReopen: a room record written before Close is read back
// unchanged by the next Open of the same directory, and a room deleted
// before Close stays deleted.
func TestRoomsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(dir, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("\x01{\"v\":1}")
	if err := s.PutRoom(ctx, store.Room{JID: "keep@muc.x", Data: data}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRoom(ctx, store.Room{JID: "gone@muc.x", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRoom(ctx, "gone@muc.x"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.GetRoom(ctx, "keep@muc.x")
	if err != nil || !bytes.Equal(got.Data, data) {
		t.Fatalf("GetRoom after reopen = %q, %v", got.Data, err)
	}
	all, err := s.ListRooms(ctx, "", 0)
	if err != nil || len(all) != 1 || all[0].JID != "keep@muc.x" {
		t.Fatalf("ListRooms after reopen = %v, %v", all, err)
	}
}

// TestRoomRejectsInvalidName: an empty name or one with NUL cannot be a key.
func TestRoomRejectsInvalidName(t *testing.T) {
	s := openTest(t, Options{})
	defer s.Close()
	for _, name := range []string{"", "a\x00b@muc.x"} {
		if err := s.PutRoom(context.Background(), store.Room{JID: name}); err == nil {
			t.Errorf("PutRoom(%q) succeeded", name)
		}
	}
}
