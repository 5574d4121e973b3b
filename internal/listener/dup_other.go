//go:build !linux

package listener

import "errors"

// dupSocket fails: there is no poller to detach to (see netpoll).
func dupSocket(fd int) (int, error) { return -1, errors.New("listener: no detaching on this system") }
