// Package children keeps the pids of the processes this process runs for itself, beside
// the commands secrets exec supervises: a rotation hook, git. The exec supervisor is a
// subreaper and takes a child of ours it did not start, appearing while its command
// runs, for an orphan of that command (a background job reparented to us) and stops it;
// a process run through this package is not one.
package children

import (
	"os/exec"
	"sync"
)

var (
	mu   sync.Mutex
	pids = map[int]int{} // pid -> how many times it is registered (pids are reused)
)

// Run starts cmd, waits for it, and keeps its pid known while it runs, as cmd.Run.
func Run(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	Add(pid)
	defer Remove(pid)
	return cmd.Wait()
}

// Add registers pid as a process this one runs for itself.
func Add(pid int) {
	mu.Lock()
	pids[pid]++
	mu.Unlock()
}

// Remove undoes one Add.
func Remove(pid int) {
	mu.Lock()
	if pids[pid]--; pids[pid] <= 0 {
		delete(pids, pid)
	}
	mu.Unlock()
}

// Known reports whether pid is registered.
func Known(pid int) bool {
	mu.Lock()
	defer mu.Unlock()
	return pids[pid] > 0
}
