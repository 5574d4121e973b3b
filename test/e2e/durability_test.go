package e2e

// The crash test of durable store-and-forward: senders with stream
// management send numbered messages while the server is killed with SIGKILL
// at random moments and restarted on the same data directory. Every message
// the server acknowledged to its sender (XEP-0198 <a/>) must reach its
// recipient in the end, whatever the recipient was doing: reading and
// acknowledging, stalled (online but not reading), disconnecting without
// acknowledging, or offline throughout.

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	xmpp "github.com/parley-im/parley/client"
)

const crashPassword = "crash-pw"

// crashRecipients are the recipients and how each behaves during the rounds.
var crashRecipients = []struct {
	user string
	mode string // read, stall, drop, offline
}{
	{"rcpt-read-1", "read"},
	{"rcpt-read-2", "read"},
	{"rcpt-stall", "stall"},
	{"rcpt-drop", "drop"},
	{"rcpt-offline", "offline"},
}

const crashSenders = 3

// received collects message bodies per recipient, with duplicates counted.
type received struct {
	mu    sync.Mutex
	seen  map[string]map[string]int // recipient -> body -> times
	total int
}

func (r *received) add(user, body string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[user] == nil {
		r.seen[user] = map[string]int{}
	}
	r.seen[user][body]++
	r.total++
}

func (r *received) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

func crashDial(ctx context.Context, s *server, user string, mod func(*xmpp.Config)) (*xmpp.Client, error) {
	cfg := xmpp.Config{
		Addr:             s.C2S,
		JID:              user + "@" + domain,
		Password:         crashPassword,
		Resource:         "r",
		TLSConfig:        &tls.Config{InsecureSkipVerify: true},
		StreamManagement: true,
		Timeout:          10 * time.Second,
		WriteTimeout:     5 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	return xmpp.Dial(ctx, cfg)
}

// collect records every message body arriving on c until the stream ends.
func collect(c *xmpp.Client, user string, got *received, wg *sync.WaitGroup) {
	defer wg.Done()
	for el := range c.Incoming() {
		if el.Name == "message" {
			if b := el.ChildText("body", ""); b != "" {
				got.add(user, b)
			}
		}
	}
}

func TestCrashLosesNoAcknowledgedMessage(t *testing.T) {
	t.Parallel()
	rounds := 5
	if v, err := strconv.Atoi(os.Getenv("PARLEY_CRASH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	users := map[string]string{}
	for i := range crashSenders {
		users[fmt.Sprintf("sender-%d", i)] = crashPassword
	}
	for _, r := range crashRecipients {
		users[r.user] = crashPassword
	}
	dir := newDataDir(t, users)
	got := &received{seen: map[string]map[string]int{}}
	// sentTo maps every message body to its recipient; acked holds the
	// bodies the server acknowledged.
	var (
		mu     sync.Mutex
		sentTo = map[string]string{}
		acked  = map[string]bool{}
	)
	seq := make([]int, crashSenders)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))

	for round := range rounds {
		srv := startServer(t, dir)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var readers sync.WaitGroup
		var stalled []*xmpp.Client
		stopDrop := make(chan struct{})
		var dropDone sync.WaitGroup
		for _, r := range crashRecipients {
			switch r.mode {
			case "read":
				c, err := crashDial(ctx, srv, r.user, func(c *xmpp.Config) { c.SendInitialPresence = true })
				if err != nil {
					t.Fatalf("round %d: %s login: %v", round, r.user, err)
				}
				readers.Add(1)
				go collect(c, r.user, got, &readers)
			case "stall":
				// Online, but the application never reads: once the small
				// buffer is full the client stops reading its socket.
				c, err := crashDial(ctx, srv, r.user, func(c *xmpp.Config) {
					c.SendInitialPresence = true
					c.IncomingBuffer = 1
				})
				if err != nil {
					t.Fatalf("round %d: %s login: %v", round, r.user, err)
				}
				stalled = append(stalled, c)
			case "drop":
				// Reads but never acknowledges, and closes its connection
				// every few hundred milliseconds.
				dropDone.Add(1)
				go func(user string) {
					defer dropDone.Done()
					for {
						select {
						case <-stopDrop:
							return
						default:
						}
						c, err := crashDial(ctx, srv, user, func(c *xmpp.Config) {
							c.SendInitialPresence = true
							c.NoAutoAck = true
						})
						if err != nil {
							return // the server is gone
						}
						var wg sync.WaitGroup
						wg.Add(1)
						go collect(c, user, got, &wg)
						select {
						case <-time.After(time.Duration(200+rand.IntN(300)) * time.Millisecond):
						case <-stopDrop:
						}
						_ = c.Close()
						wg.Wait()
					}
				}(r.user)
			}
		}

		var senders sync.WaitGroup
		for i := range crashSenders {
			c, err := crashDial(ctx, srv, fmt.Sprintf("sender-%d", i), nil)
			if err != nil {
				t.Fatalf("round %d: sender %d login: %v", round, i, err)
			}
			senders.Add(1)
			go func(i int, c *xmpp.Client) {
				defer senders.Done()
				var bodies []string // in send order: the SM count indexes it
				defer func() {
					n := int(c.Acked())
					mu.Lock()
					for _, b := range bodies[:min(n, len(bodies))] {
						acked[b] = true
					}
					mu.Unlock()
				}()
				for {
					mu.Lock()
					seq[i]++
					body := fmt.Sprintf("s%d-%d", i, seq[i])
					rcpt := crashRecipients[seq[i]%len(crashRecipients)].user
					sentTo[body] = rcpt
					mu.Unlock()
					if err := c.SendMessage(rcpt+"@"+domain, body); err != nil {
						return
					}
					bodies = append(bodies, body)
					if len(bodies)%16 == 0 {
						if c.RequestAck() != nil {
							return
						}
					}
					// A bounded window of unacknowledged messages.
					if n := uint32(len(bodies)); n > 256 {
						if c.WaitAcked(ctx, n-256) != nil {
							return
						}
					}
				}
			}(i, c)
		}

		time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond)
		srv.Kill()
		senders.Wait()
		close(stopDrop)
		dropDone.Wait()
		readers.Wait()
		for _, c := range stalled {
			// The "process" wakes up: what reached it counts as received.
			readers.Add(1)
			go collect(c, "rcpt-stall", got, &readers)
		}
		readers.Wait()
		cancel()
		mu.Lock()
		t.Logf("round %d: killed after %d sent, %d acknowledged so far", round, len(sentTo), len(acked))
		mu.Unlock()
	}

	// Everyone comes back once more, reads and acknowledges everything.
	srv := startServer(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var readers sync.WaitGroup
	var clients []*xmpp.Client
	for _, r := range crashRecipients {
		c, err := crashDial(ctx, srv, r.user, func(c *xmpp.Config) { c.SendInitialPresence = true })
		if err != nil {
			t.Fatalf("final: %s login: %v", r.user, err)
		}
		clients = append(clients, c)
		readers.Add(1)
		go collect(c, r.user, got, &readers)
	}
	// Quiet for 3 s means everything queued has arrived.
	last, lastChange := got.count(), time.Now()
	for time.Since(lastChange) < 3*time.Second && ctx.Err() == nil {
		time.Sleep(200 * time.Millisecond)
		if n := got.count(); n != last {
			last, lastChange = n, time.Now()
		}
	}
	for _, c := range clients {
		_ = c.Close()
	}
	readers.Wait()
	srv.Stop()

	mu.Lock()
	defer mu.Unlock()
	got.mu.Lock()
	defer got.mu.Unlock()
	delivered, dups, lost := 0, 0, 0
	dupsBy := map[string]int{}
	for body, rcpt := range sentTo {
		n := got.seen[rcpt][body]
		if n > 0 {
			delivered++
			dups += n - 1
			dupsBy[rcpt] += n - 1
		} else if acked[body] {
			lost++
			if lost <= 20 {
				t.Errorf("message %s to %s was acknowledged to its sender but never delivered", body, rcpt)
			}
		}
	}
	t.Logf("crash test: %d rounds, sent %d, acknowledged %d, delivered %d (unique), duplicates %d, lost %d",
		rounds, len(sentTo), len(acked), delivered, dups, lost)
	t.Logf("duplicates by recipient (expected only where acknowledgements were withheld): %v", dupsBy)
	if len(acked) == 0 {
		t.Fatal("no message was acknowledged: the test proved nothing")
	}
	if lost > 0 {
		t.Fatalf("%d acknowledged messages lost", lost)
	}
}

// TestLargeBacklogReachesStreamManagementClient: a device that comes online
// with more queued messages than a session may hold unacknowledged (4,096)
// gets all of them, in order, paced by its acknowledgements.
func TestLargeBacklogReachesStreamManagementClient(t *testing.T) {
	t.Parallel()
	const n = 5000
	dir := newDataDir(t, map[string]string{"alice": crashPassword, "bob": crashPassword})
	srv := startServer(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	alice, err := crashDial(ctx, srv, "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if err := alice.SendMessage("bob@"+domain, fmt.Sprintf("backlog-%d", i)); err != nil {
			t.Fatal(err)
		}
		if i%256 == 0 {
			if err := alice.RequestAck(); err != nil {
				t.Fatal(err)
			}
			if err := alice.WaitAcked(ctx, uint32(i-256)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := alice.RequestAck(); err != nil {
		t.Fatal(err)
	}
	if err := alice.WaitAcked(ctx, n); err != nil {
		t.Fatalf("waiting for the server to store all %d: %v", n, err)
	}
	bob, err := crashDial(ctx, srv, "bob", func(c *xmpp.Config) { c.SendInitialPresence = true })
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	next := 1
	for next <= n {
		el, err := bob.Recv(ctx)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", next-1, n, err)
		}
		body := el.ChildText("body", "")
		if body == "" {
			continue
		}
		if body != fmt.Sprintf("backlog-%d", next) {
			t.Fatalf("message %d is %q: out of order", next, body)
		}
		next++
	}
}
