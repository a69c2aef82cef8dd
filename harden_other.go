//go:build !linux

package main

import "golang.org/x/sys/unix"

// harden disables core dumps, the part of Linux's hardening other systems share.
func harden() {
	unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0})
}
