package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// execEnv makes a store with one secret and returns the environment to use it.
func execEnv(t *testing.T, bin string) []string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	env := []string{"SECRETS_DIR=" + dir, "HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "GORACE=atexit_sleep_ms=0"}
	for _, step := range []struct {
		stdin string
		args  []string
	}{{"", []string{"init"}}, {"FAKE-exec-test-0123456789", []string{"add", "k"}}} {
		cmd := exec.Command(bin, step.args...)
		cmd.Env, cmd.Stdin = env, strings.NewReader(step.stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", step.args, err, out)
		}
	}
	return env
}

// startExec starts secrets exec in the background and waits until its lease exists.
func startExec(t *testing.T, bin string, env []string, args ...string) (*exec.Cmd, chan error, *bytes.Buffer) {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(bin, append([]string{"exec", "--secret", "k"}, args...)...)
	cmd.Env, cmd.Stderr = env, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(secretsOut(t, bin, env, "leases"), `"kind": "exec"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the exec lease never appeared; stderr: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // let the command itself start
	return cmd, done, &stderr
}

func secretsOut(t *testing.T, bin string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	out, _ := cmd.Output()
	return string(out)
}

// waitExit waits for the supervisor and returns its exit code and how long it took.
func waitExit(t *testing.T, done chan error, since time.Time, limit time.Duration) (int, time.Duration) {
	t.Helper()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		code := 0
		if ee != nil {
			code = ee.ExitCode()
		}
		return code, time.Since(since)
	case <-time.After(limit):
		t.Fatalf("secrets exec still running %v later", limit)
	}
	return 0, 0
}

// TestExecStoppedByRevokeFromAnotherProcess: secrets revoke in another process stops a
// running secrets exec -- sleep 300 within 2 s, with no daemon in between.
func TestExecStoppedByRevokeFromAnotherProcess(t *testing.T) {
	bin := secretsBinary(t)
	env := execEnv(t, bin)
	_, done, _ := startExec(t, bin, env, "--", "sleep", "300")
	start := time.Now()
	if out := secretsOut(t, bin, env, "revoke", "--all"); !strings.Contains(out, `"leases_revoked": 1`) {
		t.Fatalf("revoke: %s", out)
	}
	code, took := waitExit(t, done, start, 5*time.Second)
	if code != 128+int(syscall.SIGTERM) || took > 2*time.Second {
		t.Fatalf("exit %d after %v; want %d within 2s", code, took, 128+int(syscall.SIGTERM))
	}
	t.Logf("stopped %v after the revoke", took)
	audit := secretsOut(t, bin, env, "audit", "--tail", "10")
	for _, want := range []string{`"event": "exec_signal"`, `"event": "exec_terminated"`, "ended; exit 143"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit lacks %s:\n%s", want, audit)
		}
	}
}

// readyEnv adds $READY, a file the test's command creates once its traps are set, and
// returns a wait for it, so no signal is sent before the command can handle it.
func readyEnv(t *testing.T, env []string) ([]string, func()) {
	ready := filepath.Join(t.TempDir(), "ready")
	return append(env, "READY="+ready), func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(ready); err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the command never became ready")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestExecGraceThenKill: a command that ignores SIGTERM is killed after the grace.
func TestExecGraceThenKill(t *testing.T) {
	bin := secretsBinary(t)
	env, ready := readyEnv(t, execEnv(t, bin))
	_, done, _ := startExec(t, bin, env, "--grace", "300ms", "--", "sh", "-c", `trap "" TERM; touch "$READY"; sleep 300 & wait; sleep 300`)
	ready()
	start := time.Now()
	secretsOut(t, bin, env, "revoke", "--all")
	code, took := waitExit(t, done, start, 5*time.Second)
	if code != 128+int(syscall.SIGKILL) || took < 300*time.Millisecond || took > 2*time.Second {
		t.Fatalf("exit %d after %v; want %d after the 300ms grace", code, took, 128+int(syscall.SIGKILL))
	}
	if a := secretsOut(t, bin, env, "audit", "--event", "exec_terminated"); !strings.Contains(a, "SIGKILL after 300ms") {
		t.Errorf("audit: %s", a)
	}
}

// TestExecStoppedAtExpiry: the supervisor stops the command when its lease expires.
func TestExecStoppedAtExpiry(t *testing.T) {
	bin := secretsBinary(t)
	env := execEnv(t, bin)
	start := time.Now()
	_, done, _ := startExec(t, bin, env, "--ttl", "1s", "--", "sleep", "300")
	code, took := waitExit(t, done, start, 5*time.Second)
	if code != 143 || took < time.Second || took > 3*time.Second {
		t.Fatalf("exit %d after %v; want 143 soon after the 1s TTL", code, took)
	}
	if a := secretsOut(t, bin, env, "audit", "--event", "exec_terminated"); !strings.Contains(a, "lease expired") {
		t.Errorf("audit: %s", a)
	}
}

// TestExecForwardsSignals: signals sent to the supervisor reach the command.
func TestExecForwardsSignals(t *testing.T) {
	bin := secretsBinary(t)
	env, ready := readyEnv(t, execEnv(t, bin))
	cmd, done, _ := startExec(t, bin, env, "--", "sh", "-c", `trap "exit 7" USR1; touch "$READY"; while :; do sleep 0.05; done`)
	ready()
	cmd.Process.Signal(syscall.SIGUSR1)
	if code, _ := waitExit(t, done, time.Now(), 5*time.Second); code != 7 {
		t.Fatalf("USR1: exit %d, want the command's 7", code)
	}
	cmd, done, _ = startExec(t, bin, env, "--", "sleep", "300")
	cmd.Process.Signal(syscall.SIGTERM)
	if code, _ := waitExit(t, done, time.Now(), 5*time.Second); code != 143 {
		t.Fatalf("TERM: exit %d, want 143", code)
	}
	if out := secretsOut(t, bin, env, "leases"); !strings.Contains(out, `"count": 0`) {
		t.Fatalf("leases left after the commands exited: %s", out)
	}
}

// TestKillswitchReachesExecWithUnreadableState: a leases.age that will not decrypt keeps
// the killswitch from reading whom to signal, but not from stopping a running exec: its
// intent is recorded, and the supervisor, which polls for one, stops its command.
func TestKillswitchReachesExecWithUnreadableState(t *testing.T) {
	bin := secretsBinary(t)
	env := execEnv(t, bin)
	dir := strings.TrimPrefix(env[0], "SECRETS_DIR=")
	_, done, stderr := startExec(t, bin, env, "--", "sleep", "300")
	garbage := make([]byte, 600)
	os.WriteFile(filepath.Join(dir, "leases.age"), garbage, 0o600)
	start := time.Now()
	cmd := exec.Command(bin, "killswitch", "--reason", "unreadable state")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("the killswitch could not read the state, yet succeeded: %s", out)
	}
	code, took := waitExit(t, done, start, 5*time.Second)
	if code != 128+int(syscall.SIGTERM) || took > 3*time.Second {
		t.Fatalf("exit %d after %v; want %d within 3s\n%s", code, took, 128+int(syscall.SIGTERM), stderr)
	}
	if !strings.Contains(stderr.String(), "the killswitch fired") {
		t.Errorf("the supervisor did not say why: %s", stderr)
	}
	t.Logf("stopped %v after the killswitch", took)
}
