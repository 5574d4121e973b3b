// Package benchutil holds what the Go benchmarks and measuring tests of
// several packages share: the process's CPU time, for a cpu-ns/op metric
// that moves much less than wall time on a shared machine, and an echo
// round-trip loop over many connections. It is imported only by tests.
package benchutil
