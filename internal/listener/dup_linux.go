package listener

import "syscall"

// dupSocket duplicates a socket's descriptor (close-on-exec, non-blocking)
// for detach.
func dupSocket(fd int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if e != 0 {
		return -1, e
	}
	nfd := int(r)
	if err := syscall.SetNonblock(nfd, true); err != nil {
		_ = syscall.Close(nfd)
		return -1, err
	}
	return nfd, nil
}
