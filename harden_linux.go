package main

import "golang.org/x/sys/unix"

// harden keeps secret values out of core dumps and away from same-user ptrace attach via
// /proc (PR_SET_DUMPABLE=0 also makes /proc/PID/mem and environ root-only).
func harden() {
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0})
}
