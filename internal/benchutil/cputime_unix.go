//go:build unix

package benchutil

import (
	"syscall"
	"time"
)

// CPUTime is this process's CPU time so far, user and system, background
// goroutines (flushes, compactions, the peer side of a loopback
// benchmark) included.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
