package main

import "golang.org/x/sys/unix"

// The ioctls that read and set a terminal's attributes.
const (
	ioctlGetTermios = unix.TIOCGETA
	ioctlSetTermios = unix.TIOCSETA
)

// pendingInput is how many bytes the terminal holds that no one has read yet.
func pendingInput(fd int) int {
	n, err := unix.IoctlGetInt(fd, fionread)
	if err != nil {
		return 0
	}
	return n
}

// flushInput discards what the terminal holds unread.
func flushInput(fd int) { unix.IoctlSetPointerInt(fd, unix.TIOCFLUSH, fread) }

// FIONREAD and FREAD from <sys/filio.h> and <sys/fcntl.h>, which x/sys/unix does not
// name for darwin.
const (
	fionread = 0x4004667f // _IOR('f', 127, int)
	fread    = 0x1
)
