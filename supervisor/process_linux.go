package supervisor

import (
	"bytes"
	"errors"
	"os"
	"strconv"
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
