// Package bench is the engine behind `parley bench`: a load generator for
// XMPP servers in general (Parley, ejabberd, Prosody, …), driving them
// through the repository's standard-XMPP client library.
//
// # Scenarios
//
//   - connect: N sessions log in (TLS or not, SASL, bind, initial
//     presence, a ping round trip so the server has really finished with
//     them) and stay idle for a hold time. Reports the login rate, the
//     failures and, given the server's PID, the server's resident memory
//     per idle session: (VmRSS with N idle sessions − VmRSS before) / N,
//     both read after a settling time, "before" taken with one warm-up
//     session already served.
//   - chat: N users online send one-to-one chat messages to random online
//     peers, at a target rate or as fast as a bounded in-flight window
//     allows, for a duration or a message count. Every body carries the
//     run id, a sequence number and the wall-clock send time, so the
//     receiving process computes the latency whichever process sent it.
//   - storm: N sessions online; everyone disconnects at once, then
//     everyone reconnects at once. Reports the reconnect time and failures.
//   - register: only creates the accounts by in-band registration
//     (XEP-0077), for servers whose command-line tools are slow per account.
//
// # Processes
//
// One process cannot hold tens of thousands of sessions under a 20,000
// open-files limit, and one source address cannot open more connections to
// one server port than the ephemeral port range. So the parent process (Run)
// re-executes itself as workers (`parley bench --worker`, ServeWorker), each
// owning a share of the accounts and of the source addresses 127.0.0.2,
// 127.0.0.3, …; it talks to them with one JSON object per line on their
// stdin and stdout, and workers send progress once per second. Tests, and
// small runs, may keep the workers in-process (Options.InProcess).
//
// In the chat scenario a worker's users write to peers of the same worker:
// the server cannot tell, and the sender then sees the delivery itself, so
// the in-flight window is exact without cross-process bookkeeping.
//
// # Plain connections
//
// By default the client library upgrades with STARTTLS whenever a server
// offers it, which a server allowing plain c2s still does. The plain mode (TLS
// "plain") sets client.Config.NoStartTLS, so the sessions stay in the
// clear where the server allows it and fail with a clear error where it
// requires STARTTLS: every server is measured without TLS by the same
// client code.
//
// # SCRAM key cache
//
// A SCRAM client derives its keys from the password with PBKDF2 (4,096
// iterations and more): about half of the load generator's CPU per login
// in the clear, a third with TLS. Each
// worker shares one client.SCRAMKeyCache among its sessions, as real
// clients cache the keys (RFC 5802 §5.1): an account that logs in again
// (the storm's reconnects) skips PBKDF2. A first login always derives,
// since Parley salts each account on its own; Target.NoSCRAMCache turns
// the cache off. The report counts the hits and misses.
package bench
