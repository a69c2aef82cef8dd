package supervisor

import (
	"bytes"
	"errors"
	"os"
	"slices"
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

// sameProgram reports whether pid runs the program this process runs, by the name the
// kernel gave it at exec (the comm field of /proc/PID/stat, the file's base name, so a
// binary replaced by an upgrade still counts): only a secrets supervisor is ever sent a
// revocation, whose default action would kill, not a process whose pid and start time a
// forged lease named (both are readable in /proc by anyone). It reads stat, which anyone
// may, and not /proc/PID/exe: every secrets process is non-dumpable (harden), and the
// link of one is then root's alone to read.
func sameProgram(pid int) bool {
	self, err := comm("self")
	if err != nil {
		return false
	}
	other, err := comm(strconv.Itoa(pid))
	return err == nil && other == self
}

// comm is the command name field of /proc/PID/stat.
func comm(pid string) (string, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return "", err
	}
	i, j := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if i < 0 || j < i {
		return "", errors.New("malformed /proc stat")
	}
	return string(b[i+1 : j]), nil
}

// dieWithParent has the kernel kill the process when its parent dies (PR_SET_PDEATHSIG).
// It is tied to the thread that starts it, and Go ends a thread only when a goroutine
// locked to it returns, which ours never do.
func dieWithParent(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }

// becomeSubreaper makes this process the one that orphaned descendants of the command are
// reparented to (PR_SET_CHILD_SUBREAPER): a background job, or one that left the process
// group with setsid, stays findable by descendants.
func becomeSubreaper() {
	syscall.RawSyscall6(syscall.SYS_PRCTL, 36 /* PR_SET_CHILD_SUBREAPER */, 1, 0, 0, 0, 0)
}

// childrenOf lists pid's children from /proc/PID/task/*/children, which the kernel keeps
// per thread: a few small reads, not a walk of every process on the machine (this runs
// as every exec command exits).
func childrenOf(pid int) []int {
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return nil
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range bytes.Fields(b) {
			if c, err := strconv.Atoi(string(f)); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// ownChildren are this process's children now.
func ownChildren() []int { return childrenOf(os.Getpid()) }

// below returns roots and every process below them.
func below(roots []int) []int {
	var out []int
	queue := append([]int(nil), roots...)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		out = append(out, pid)
		queue = append(queue, childrenOf(pid)...)
	}
	return out
}

// live is pids without the zombies among them (a zombie holds nothing).
func live(pids []int) []int {
	var out []int
	for _, p := range pids {
		if st := procState(p); st != 0 && st != 'Z' {
			out = append(out, p)
		}
	}
	return out
}

// procState is the state letter of process pid (/proc/PID/stat field 3: R, S, T, Z, …),
// or 0 when it is gone.
func procState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2]
	}
	return 0
}

// stoppedGroup reports whether a process of the command (pid and what runs below it) is
// stopped by job control: ^Z stops the whole foreground group, and a shell running the
// command may show it only in the grandchild it waits for.
func stoppedGroup(pid int) bool {
	return slices.ContainsFunc(below([]int{pid}), func(p int) bool { return procState(p) == 'T' })
}
