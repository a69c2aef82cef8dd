//go:build linux

package killswitch_test

import (
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/envfile"
	"github.com/agent-secrets/secrets/killswitch"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/supervisor"
)

// TestMain lets the test binary stand in for a supervisor: a process of this program.
func TestMain(m *testing.M) {
	if os.Getenv("KILLSWITCH_TEST_SLEEP") != "" {
		got := make(chan os.Signal, 1)
		signal.Notify(got, supervisor.SigRevoke)
		select {
		case <-got:
			os.Exit(42) // what a supervisor does with it: look, here exit
		case <-time.After(30 * time.Second):
			os.Exit(0)
		}
	}
	os.Exit(m.Run())
}

// TestEndSignalsOnlyTheRecordedProcess: a pid whose start time differs (a recycled pid)
// is never signalled, nor a process of another program whose pid and start time a lease
// names (both are readable in /proc); the recorded supervisor is.
func TestEndSignalsOnlyTheRecordedProcess(t *testing.T) {
	none := func(string) (lease.Lease, bool) { return lease.Lease{}, false }
	other := exec.Command("sleep", "30")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer other.Process.Kill()
	otherStart, _ := supervisor.StartTime(other.Process.Pid)
	if _, effects := killswitch.End(none, new([]envfile.Record), []lease.Lease{{ID: "lease_O", Kind: lease.KindExec, PID: other.Process.Pid, PIDStart: otherStart}}); len(effects) != 1 || effects[0].Event != "exec_gone" {
		t.Fatalf("another program: effects %+v", effects)
	}

	proc := exec.Command(os.Args[0], "-test.run=^$")
	proc.Env = append(os.Environ(), "KILLSWITCH_TEST_SLEEP=1")
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	defer proc.Process.Kill()
	start, err := supervisor.StartTime(proc.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	l := lease.Lease{ID: "lease_X", Kind: lease.KindExec, PID: proc.Process.Pid, PIDStart: start + 1}
	_, effects := killswitch.End(none, new([]envfile.Record), []lease.Lease{l})
	if len(effects) != 1 || effects[0].Event != "exec_gone" {
		t.Fatalf("effects %+v", effects)
	}
	time.Sleep(100 * time.Millisecond)
	if err := proc.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatal("a process with another start time was signalled")
	}
	l.PIDStart = start
	_, effects = killswitch.End(none, new([]envfile.Record), []lease.Lease{l})
	if len(effects) != 1 || effects[0].Event != "exec_signal" {
		t.Fatalf("effects %+v", effects)
	}
	if proc.Wait(); proc.ProcessState.ExitCode() != 42 {
		t.Fatalf("the recorded process was not signalled: %v", proc.ProcessState)
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatal("the other program was signalled")
	}
}
