package bench

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procStatusKiB reads a field of /proc/PID/status in KiB (VmRSS, RssAnon, …).
func procStatusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read server status: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		v, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc/%d/status: odd %s line %q", pid, field, line)
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}

// procCPU returns the user+system CPU time a process has used, from
// /proc/PID/stat (fields 14 and 15, in USER_HZ ticks: 100 per second on
// Linux).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read server CPU time: %w", err)
	}
	// The command name (field 2) may contain spaces; count after its ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad CPU times", pid)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// RaiseNoFile lifts the soft open-files limit to the hard one and checks
// that need descriptors fit under it. The load generator's workers and the
// density test open thousands of connections per process.
func RaiseNoFile(need int) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return fmt.Errorf("setrlimit: %w", err)
		}
	}
	if uint64(need) > rl.Cur {
		return fmt.Errorf("%d open files needed, the limit is %d", need, rl.Cur)
	}
	return nil
}

// maxSources keeps source addresses inside 127.0.0.0/8: 253 usable last
// octets (2–254) per /24.
const maxSources = 253 * 65536

// sourceIP returns the i-th source address: 127.0.0.2 … 127.0.0.254, then
// 127.0.1.2 … and so on. .0, .1 and .255 are skipped: .1 is usually the
// server's own address, the others are network and broadcast addresses.
func sourceIP(i int) net.IP {
	block, off := i/253, i%253+2
	return net.IPv4(127, byte(block>>8), byte(block), byte(off))
}
