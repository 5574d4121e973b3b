//go:build linux

package listener

import (
	"fmt"
	"net"
	"syscall"
)

// listenConfig sets TCP keepalive once, on the listening socket: Linux
// copies socket options to every connection accept returns. Go's default,
// setting them on each accepted connection, cost five setsockopt calls per
// connection (keepalive on, idle, interval, count, and our own period),
// about 6 % of the server's CPU per plain login in a login storm.
func listenConfig() net.ListenConfig {
	return net.ListenConfig{
		KeepAlive: -1, // not per connection: inherited from the listener
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				for _, o := range []struct{ level, opt, val int }{
					{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
					{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, int(keepAliveIdle.Seconds())},
					{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, int(keepAliveInterval.Seconds())},
					{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAliveCount},
				} {
					if serr = syscall.SetsockoptInt(int(fd), o.level, o.opt, o.val); serr != nil {
						serr = fmt.Errorf("setsockopt %d/%d: %w", o.level, o.opt, serr)
						return
					}
				}
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
}

// perConnKeepAlive reports whether accepted connections need their own
// keepalive settings: not on Linux, where they inherit the listener's.
const perConnKeepAlive = false
