package c2s_test

import (
	"sync"
	"sync/atomic"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/c2s"
	"github.com/parley-im/parley/stanza"
)

type slowCodec struct{ *xmlCodec }

func (c slowCodec) AppendElement(dst []byte, el *stanza.Element) []byte {
	if el.ID() == "slow" {
		time.Sleep(2 * time.Millisecond)
	}
	return c.xmlCodec.AppendElement(dst, el)
}

func TestScratchEnableRace(t *testing.T) {
	e := newEnv(t, envOpts{codec: func() c2s.Codec { return slowCodec{newXMLCodec()} }})
	e.addUser("bob", "hunter2")
	bad := 0
	const iters = 50
	for i := 0; i < iters; i++ {
		bob := smOnline(e, "bob", "hunter2", "phone", false)
		var stop atomic.Bool
		var wg sync.WaitGroup
		for g := 0; g < 3; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					bob.s.Deliver(stanza.New("message", "jabber:client").SetAttr("type", "headline").SetAttr("id", "slow"), nil)
				}
			}()
		}
		time.Sleep(10 * time.Millisecond)
		bob.feed(smEnable)
		stop.Store(true)
		wg.Wait()
		waitIdle(t, bob.s)
		out, _, _ := bob.tr.snapshot()
		after := out[strings.Index(out, "<enabled"):]
		n := countStanzas(t, after)
		st := c2s.SMState(bob.s)
		bob.take()
		bob.feed(smA(uint32(n)))
		if bob.err != nil {
			bad++
			t.Logf("client counted %d, server out %d", n, st.Out)
		}
		bob.s.Kick(nil)
		bob.s.End()
	}
	t.Logf("bad %d/%d", bad, iters)
}
