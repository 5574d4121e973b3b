package e2e

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	xmpp "github.com/parley-im/parley/client"
)

// scrape returns the value of an unlabelled metric from /metrics.
func scrape(t *testing.T, s *server, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.HTTP + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("metric %s not found in /metrics", name)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatalf("metric %s: %v", name, err)
	}
	return v
}

func TestMetricsMove(t *testing.T) {
	t.Parallel()
	dir := newDataDir(t, map[string]string{"alice": "pw-a", "bob": "pw-b"})
	srv := startServer(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := scrape(t, srv, "parley_queue_enqueued_total")
	dial := func(user, pw string) *xmpp.Client {
		c, err := xmpp.Dial(ctx, xmpp.Config{Addr: srv.C2S, JID: user + "@" + domain, Password: pw,
			TLSConfig: &tls.Config{InsecureSkipVerify: true}, SendInitialPresence: true, StreamManagement: true})
		if err != nil {
			t.Fatalf("%s login: %v", user, err)
		}
		return c
	}
	a, b := dial("alice", "pw-a"), dial("bob", "pw-b")
	defer a.Close()
	defer b.Close()
	if got := scrape(t, srv, "parley_c2s_sessions"); got != 2 {
		t.Errorf("parley_c2s_sessions = %v, want 2", got)
	}
	if err := a.SendMessage("bob@"+domain, "counted"); err != nil {
		t.Fatal(err)
	}
	for {
		el, err := b.Recv(ctx)
		if err != nil {
			t.Fatalf("bob: %v", err)
		}
		if el.Name == "message" {
			break
		}
	}
	// bob has it before the append is durable; alice's acknowledgement
	// comes after, and by then the latency histograms have observed it.
	if err := a.RequestAck(); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitAcked(ctx, 1); err != nil {
		t.Fatalf("alice's acknowledgement: %v", err)
	}
	if got := scrape(t, srv, "parley_queue_enqueued_total"); got != before+1 {
		t.Errorf("parley_queue_enqueued_total went from %v to %v, want +1", before, got)
	}
	if got := scrape(t, srv, `parley_c2s_sessions_by_transport{encoding="xml",transport="starttls"}`); got != 2 {
		t.Errorf("sessions by transport starttls = %v, want 2", got)
	}
	if got := scrape(t, srv, `parley_c2s_stanzas_in_total{kind="message"}`); got < 1 {
		t.Errorf("message stanzas in = %v, want >= 1", got)
	}
	if got := scrape(t, srv, "parley_store_enqueue_seconds_count"); got < 1 {
		t.Errorf("enqueue latency observations = %v, want >= 1", got)
	}
	if got := scrape(t, srv, "parley_store_journal_fsync_seconds_count"); got < 1 {
		t.Errorf("journal fsync observations = %v, want >= 1", got)
	}
	if got := scrape(t, srv, "parley_c2s_logins_total"); got < 2 {
		t.Errorf("parley_c2s_logins_total = %v, want >= 2", got)
	}
	// The sessions' turns ran on the poller's workers (the poller is the
	// process's, shared with other tests' servers: lower bounds only).
	if got := scrape(t, srv, "parley_netpoll_turns_total"); got < 1 {
		t.Errorf("parley_netpoll_turns_total = %v, want >= 1", got)
	}
	if got := scrape(t, srv, "parley_netpoll_workers_started_total"); got < 1 {
		t.Errorf("parley_netpoll_workers_started_total = %v, want >= 1", got)
	}
	// bob's client acknowledges when the server asks; the queue entry is
	// then deleted.
	deadline := time.Now().Add(10 * time.Second)
	for scrape(t, srv, "parley_queue_acked_total") < 1 || scrape(t, srv, "parley_queue_depth") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after bob acknowledged: parley_queue_acked_total = %v, parley_queue_depth = %v (want >= 1 and 0)",
				scrape(t, srv, "parley_queue_acked_total"), scrape(t, srv, "parley_queue_depth"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
