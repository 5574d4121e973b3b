//go:build unix

package pebble

import (
	"syscall"
	"time"
)

// cpuTime is this process's CPU time (user and system), background
// flushes and compactions included.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
