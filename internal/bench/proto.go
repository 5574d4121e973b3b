package bench

import "time"

// The parent and a worker exchange one JSON object per line: commands on
// the worker's stdin, events on its stdout. A worker answers every command
// with exactly one "done" or "error" event, possibly after "progress"
// events, and handles one command at a time.

// Worker operations.
const (
	opSetup      = "setup"      // take the target, accounts and sources
	opRegister   = "register"   // create the accounts by in-band registration
	opLogin      = "login"      // log in the accounts [From, To) not yet online
	opDisconnect = "disconnect" // close every session at once
	opChat       = "chat"       // run a chat measurement among the online sessions
	opClose      = "close"      // close every session and exit
)

// Event kinds.
const (
	evProgress = "progress"
	evDone     = "done"
	evError    = "error"
)

type command struct {
	Op          string       `json:"op"`
	Setup       *workerSetup `json:"setup,omitempty"`
	From        int          `json:"from,omitempty"`
	To          int          `json:"to,omitempty"` // 0: all accounts
	Concurrency int          `json:"concurrency,omitempty"`
	// Reconnect limits a login to the sessions the last disconnect closed.
	Reconnect bool        `json:"reconnect,omitempty"`
	Chat      *chatParams `json:"chat,omitempty"`
}

type workerSetup struct {
	Target   Target    `json:"target"`
	Accounts []Account `json:"accounts"`
	// Sources are indices for sourceIP; session i uses Sources[i%len].
	Sources     []int `json:"sources"`
	Concurrency int   `json:"concurrency"`
	// KeyCacheFile is this worker's Target.SCRAMCacheFile.
	KeyCacheFile string `json:"key_cache_file,omitempty"`
}

type chatParams struct {
	RunID    string        `json:"run_id"`
	Rate     float64       `json:"rate"` // per worker; 0: window-bound
	Window   int           `json:"window"`
	Duration time.Duration `json:"duration"`
	Messages int           `json:"messages"` // per worker; 0: Duration decides
	BodySize int           `json:"body_size"`
}

type event struct {
	Ev       string       `json:"ev"`
	Progress *counters    `json:"progress,omitempty"`
	Done     *phaseResult `json:"done,omitempty"`
	Err      string       `json:"err,omitempty"`
}

// counters are a worker's running totals within the current phase.
type counters struct {
	OK        int64 `json:"ok"`
	Failed    int64 `json:"failed"`
	Sent      int64 `json:"sent"`
	Delivered int64 `json:"delivered"`
}

// phaseResult is a worker's outcome of one command.
type phaseResult struct {
	OK      int      `json:"ok"`
	Failed  int      `json:"failed"`
	Existed int      `json:"existed,omitempty"`
	Errors  []string `json:"errors,omitempty"` // the first few
	Latency *Hist    `json:"latency,omitempty"`
	// Timeline is the chat latency by the Unix second the message was
	// sent in (workers share the clock, so the parent merges by key).
	Timeline map[int64]*Hist `json:"timeline,omitempty"`
	Seconds  float64         `json:"seconds"`
	Online   int             `json:"online"`

	Sent       int64 `json:"sent,omitempty"`
	Delivered  int64 `json:"delivered,omitempty"`
	Bounced    int64 `json:"bounced,omitempty"`
	SendErrors int64 `json:"send_errors,omitempty"`
	Stale      int64 `json:"stale,omitempty"`
	// FirstSend and LastDelivery are wall-clock Unix nanoseconds: workers
	// share the machine's clock, so the parent can span them all.
	FirstSend    int64 `json:"first_send,omitempty"`
	LastDelivery int64 `json:"last_delivery,omitempty"`

	// The worker's own footprint, to tell when the load generator and not
	// the server is the limit.
	RSSKiB     int64   `json:"rss_kib"`
	CPUSeconds float64 `json:"cpu_seconds"`
	// The worker's SCRAM key cache since setup (per worker, not per
	// process: in-process workers each have their own).
	SCRAMCacheHits   uint64 `json:"scram_cache_hits,omitempty"`
	SCRAMCacheMisses uint64 `json:"scram_cache_misses,omitempty"`
}

// maxErrors is how many error messages a worker reports per phase.
const maxErrors = 5
