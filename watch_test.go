package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// heartbeatServer answers 200, 500, or hangs past any timeout, as mode says.
func heartbeatServer(t *testing.T) (*httptest.Server, *atomic.Value) {
	var mode atomic.Value
	mode.Store("200")
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load() {
		case "500":
			w.WriteHeader(500)
		case "hang":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		default:
			w.WriteHeader(200)
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv, &mode
}

func watchStore(t *testing.T, bin, url, timeout string) []string {
	t.Helper()
	env := execEnv(t, bin)
	dir := strings.TrimPrefix(env[0], "SECRETS_DIR=")
	cfg := `{"heartbeat":{"enabled":true,"url":"` + url + `","interval":"50ms","timeout":"` + timeout + `","failures_before_action":3,"fail_action":{"revoke_all":true}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return env
}

func count(s, sub string) int { return strings.Count(s, sub) }

// TestWatchOnceFiresOnce: watch --once keeps the failure count in leases.age; the third
// consecutive failure (here a hang past the timeout) fires the fail action, a fourth does
// not fire it again, and recovery is audited.
func TestWatchOnceFiresOnce(t *testing.T) {
	bin := secretsBinary(t)
	srv, mode := heartbeatServer(t)
	env := watchStore(t, bin, srv.URL, "200ms")
	secretsOut(t, bin, env, "lease", "k")
	once := func() string { return secretsOut(t, bin, env, "watch", "--once") }

	if out := once(); !strings.Contains(out, `"healthy": true`) {
		t.Fatalf("200: %s", out)
	}
	mode.Store("500")
	for i := 1; i <= 2; i++ {
		if out := once(); !strings.Contains(out, `"failures": `+string(rune('0'+i))) || !strings.Contains(out, `"fired": false`) {
			t.Fatalf("failure %d: %s", i, out)
		}
	}
	if out := secretsOut(t, bin, env, "leases"); !strings.Contains(out, `"count": 1`) {
		t.Fatalf("the lease should survive two failures: %s", out)
	}
	mode.Store("hang")
	if out := once(); !strings.Contains(out, `"fired": true`) || !strings.Contains(out, "no answer within 200ms") {
		t.Fatalf("third failure: %s", out)
	}
	mode.Store("500")
	if out := once(); !strings.Contains(out, `"fired": false`) || !strings.Contains(out, `"failures": 4`) {
		t.Fatalf("fourth failure: %s", out)
	}
	mode.Store("200")
	once()
	audit := secretsOut(t, bin, env, "audit", "--tail", "100")
	if n := count(audit, `"event": "killswitch"`); n != 1 {
		t.Fatalf("killswitch fired %d times:\n%s", n, audit)
	}
	for _, want := range []string{`"event": "heartbeat_recovered"`, "heartbeat: revoke all, lockdown", `"detail": "killswitch"`} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit lacks %s", want)
		}
	}
	status := secretsOut(t, bin, env, "status")
	if !strings.Contains(status, `"trigger": "heartbeat"`) || !strings.Contains(status, `"last_ok": true`) || !strings.Contains(status, `"failures": 0`) {
		t.Fatalf("status: %s", status)
	}
}

// TestWatchHoldsNoLockWhileWaiting: while the check waits on the network, other commands
// get the lock at once.
func TestWatchHoldsNoLockWhileWaiting(t *testing.T) {
	bin := secretsBinary(t)
	srv, mode := heartbeatServer(t)
	env := watchStore(t, bin, srv.URL, "3s")
	mode.Store("hang")
	w := exec.Command(bin, "watch", "--once")
	w.Env = env
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Process.Kill()
	time.Sleep(300 * time.Millisecond)
	cmd := exec.Command(bin, "--lock-timeout", "200ms", "lease", "k")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("a lease during the check: %v %s", err, out)
	}
}

// TestWatchLoop: the loop fires once per outage and stops cleanly on SIGTERM.
func TestWatchLoop(t *testing.T) {
	bin := secretsBinary(t)
	srv, mode := heartbeatServer(t)
	env := watchStore(t, bin, srv.URL, "200ms")
	mode.Store("500")
	w := exec.Command(bin, "watch")
	w.Env = env
	var out strings.Builder
	w.Stdout = &out
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(secretsOut(t, bin, env, "audit", "--event", "killswitch"), `"count": 1`) {
		if time.Now().After(deadline) {
			t.Fatal("the fail action never fired")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // several more failing intervals
	w.Process.Signal(syscall.SIGTERM)
	if err := w.Wait(); err != nil {
		t.Fatalf("watch exited with %v", err)
	}
	if !strings.Contains(out.String(), `"fired"`) || count(secretsOut(t, bin, env, "audit", "--tail", "200"), `"event": "killswitch"`) != 1 {
		t.Fatalf("after the loop: %s", out.String())
	}
}
