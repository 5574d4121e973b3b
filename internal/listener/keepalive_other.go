//go:build !linux

package listener

import "net"

// listenConfig leaves keepalive to each accepted connection (see
// perConnKeepAlive): not every system copies the listener's options.
func listenConfig() net.ListenConfig {
	return net.ListenConfig{KeepAlive: -1}
}

const perConnKeepAlive = true
