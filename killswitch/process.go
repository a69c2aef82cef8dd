package killswitch

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"syscall"
)

// SigRevoke tells a secrets exec supervisor that a lease it holds may have ended. It is
// SIGRTMIN+6 (40): a real-time signal nothing else sends, so it cannot be confused with
// the signals the supervisor forwards to its child. The supervisor checks the store
// before acting, so a stray one costs a look and nothing more.
const SigRevoke = syscall.Signal(40)

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

// notify sends SigRevoke to the supervisor pid if it is still the process that started
// at start; otherwise it has exited and there is nothing to stop.
func notify(pid int, start uint64) Effect {
	e := Effect{Event: "exec_signal", OK: true, Detail: "supervisor pid " + strconv.Itoa(pid)}
	if got, err := StartTime(pid); err != nil || got != start {
		e.Event, e.Detail = "exec_gone", e.Detail+" is no longer running"
		return e
	}
	if err := syscall.Kill(pid, SigRevoke); err != nil {
		e.OK, e.Detail = false, e.Detail+": "+err.Error()
	}
	return e
}
