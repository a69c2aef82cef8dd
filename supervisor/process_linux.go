package supervisor

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// SigRevoke tells a supervisor that a lease it holds may have ended. It is SIGRTMIN+6
// (40): a real-time signal nothing else sends, so it cannot be confused with the signals
// the supervisor forwards to its child.
const SigRevoke = syscall.Signal(40)

// revoke is what Listen receives SigRevoke as.
var revoke os.Signal = SigRevoke

// StartTime returns when process pid started, in clock ticks since boot (field 22 of
// /proc/PID/stat). Together with the pid it names one process across pid reuse.
func StartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces or ")".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	fields := bytes.Fields(b[i+1:])
	if len(fields) < 20 {
		return 0, errors.New("malformed /proc stat")
	}
	return strconv.ParseUint(string(fields[19]), 10, 64)
}

func signalRevoke(pid int) error { return syscall.Kill(pid, SigRevoke) }

// sameProgram reports whether pid runs the program this process runs (by file name, so a
// binary replaced by an upgrade still counts): only a secrets supervisor is ever sent a
// revocation, not a process whose pid and start time a forged lease named (both are
// readable in /proc by anyone).
func sameProgram(pid int) bool {
	self, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return false
	}
	other, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return false
	}
	base := func(p string) string { return filepath.Base(strings.TrimSuffix(p, " (deleted)")) }
	return base(self) == base(other)
}
