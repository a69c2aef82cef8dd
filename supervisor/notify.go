package supervisor

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ErrGone reports a supervisor that is no longer running: the pid is free, or names a
// process that started at another time (a recycled pid), which must never be signalled.
var ErrGone = errors.New("no longer running")

// Notify tells the supervisor pid, which started at start (StartTime), that one of its
// leases may have ended. It fails with ErrGone when that process has exited, or is not
// running this program (sameProgram); the
// supervisor checks the store itself before it acts, so a stray notice costs a look.
func Notify(pid int, start uint64) error {
	if got, err := StartTime(pid); err != nil || got != start || !sameProgram(pid) {
		return ErrGone
	}
	return signalRevoke(pid)
}

// Self returns this process's pid and start time, which name it as a supervisor across
// pid reuse.
func Self() (int, uint64, error) {
	pid := os.Getpid()
	start, err := StartTime(pid)
	if err != nil {
		return 0, 0, fmt.Errorf("read own start time: %w", err)
	}
	return pid, start, nil
}

// Stop asks the supervisor pid, which started at start, to end its command at once, as
// SIGTERM does (it forwards it to the command's group and exits with it). The killswitch
// uses it when it could record nothing for the supervisor to find.
func Stop(pid int, start uint64) error {
	if got, err := StartTime(pid); err != nil || got != start || !sameProgram(pid) {
		return ErrGone
	}
	return syscall.Kill(pid, syscall.SIGTERM)
}
