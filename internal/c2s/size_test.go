package c2s

import (
	"testing"
	"unsafe"
)

// TestSessionSize guards the Session's size class: every idle session
// carries it for hours, and the next class up (416 bytes) costs 32 bytes
// per session (docs/density.md). A new field must fit, e.g. in padding or
// in a struct allocated only by the sessions that need it.
func TestSessionSize(t *testing.T) {
	if n := unsafe.Sizeof(Session{}); n > 384 {
		t.Fatalf("Session is %d bytes, more than the 384-byte size class", n)
	}
}
