//go:build linux

package killswitch_test

import (
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/envfile"
	"github.com/agent-secrets/secrets/killswitch"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/supervisor"
)

// TestEndSignalsOnlyTheRecordedProcess: a pid whose start time differs (a recycled pid)
// is never signalled; the recorded process is.
func TestEndSignalsOnlyTheRecordedProcess(t *testing.T) {
	proc := exec.Command("sleep", "30")
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	defer proc.Process.Kill()
	start, err := supervisor.StartTime(proc.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	l := lease.Lease{ID: "lease_X", Kind: lease.KindExec, PID: proc.Process.Pid, PIDStart: start + 1}
	_, effects := killswitch.End(func(string) (lease.Lease, bool) { return lease.Lease{}, false }, new([]envfile.Record), []lease.Lease{l})
	if len(effects) != 1 || effects[0].Event != "exec_gone" {
		t.Fatalf("effects %+v", effects)
	}
	time.Sleep(100 * time.Millisecond)
	if err := proc.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatal("a process with another start time was signalled")
	}
	l.PIDStart = start
	_, effects = killswitch.End(func(string) (lease.Lease, bool) { return lease.Lease{}, false }, new([]envfile.Record), []lease.Lease{l})
	if len(effects) != 1 || effects[0].Event != "exec_signal" {
		t.Fatalf("effects %+v", effects)
	}
	// sleep has no handler for SigRevoke, so its default action ends it.
	err = proc.Wait()
	if ws, ok := proc.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != supervisor.SigRevoke {
		t.Fatalf("the recorded process was not signalled: %v", err)
	}
}
