//go:build !linux

package supervisor

import (
	"errors"
	"os"
	"runtime"
	"syscall"
)

// errNoProc reports that this platform cannot yet name a supervisor process across pid
// reuse (Linux reads it from /proc), and has no signal that only secrets sends (Linux
// uses a real-time one). secrets exec refuses to start here rather than grant leases
// that revocation could not reach.
var errNoProc = errors.New("secrets exec is not supported on " + runtime.GOOS + " yet: revocation cannot reach a supervisor here")

// revoke is nil: Listen fails with ErrUnsupported.
var revoke os.Signal

// StartTime fails on this platform.
func StartTime(pid int) (uint64, error) { return 0, errNoProc }

func signalRevoke(pid int) error { return errNoProc }

// sameProgram cannot be told here; exec refuses to run where StartTime cannot be read, so
// there is no supervisor to tell.
func sameProgram(pid int) bool { return false }

// dieWithParent has no equivalent here.
func dieWithParent(a *syscall.SysProcAttr) {}

// becomeSubreaper has no equivalent here.
func becomeSubreaper() {}

// ownChildren cannot be listed here.
func ownChildren() []int { return nil }

// below cannot be listed here.
func below(roots []int) []int { return roots }

// live cannot tell here.
func live(pids []int) []int { return pids }

// stoppedGroup cannot be told here yet (macOS comes with the platforms work).
func stoppedGroup(pid int) bool { return false }
