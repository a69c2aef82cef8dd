package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
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

// TestWitnessFindsRollback runs the README's witness endpoint (Python's standard library)
// and puts back older copies of every store file together, the rollback nothing on the
// machine can see: the next check finds it (audit_rollback, exit 8), fires the fail
// action with lockdown, and status shows it. A head without the key's MAC is refused.
func TestWitnessFindsRollback(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("SKIP: no python3 for the README's witness endpoint")
	}
	readme, _ := os.ReadFile("README.md")
	_, block, ok := strings.Cut(string(readme), "<!-- witness-endpoint -->\n```python\n")
	if !ok {
		t.Fatal("README has no witness endpoint")
	}
	block, _, _ = strings.Cut(block, "```")
	work := t.TempDir()
	script, keyFile := filepath.Join(work, "witness.py"), filepath.Join(work, "witness.key")
	os.WriteFile(script, []byte(block), 0o600)

	bin := secretsBinary(t)
	env := execEnv(t, bin)
	dir := strings.TrimPrefix(env[0], "SECRETS_DIR=")
	key := secretsOut(t, bin, env, "witness-key")
	k := regexp.MustCompile(`"key": "([0-9a-f]{64})"`).FindStringSubmatch(key)
	if k == nil {
		t.Fatalf("witness-key: %s", key)
	}
	os.WriteFile(keyFile, []byte(k[1]+"\n"), 0o600)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	srv := exec.Command(py, script, keyFile, strconv.Itoa(port))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			break
		} else if i > 100 {
			t.Fatal("the witness endpoint did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cfg := `{"heartbeat":{"enabled":true,"url":"` + url + `","interval":"1s","timeout":"2s","failures_before_action":3,"fail_action":{"revoke_all":true}}}`
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600)

	once := func() (string, int) {
		cmd := exec.Command(bin, "watch", "--once")
		cmd.Env = env
		out, err := cmd.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return string(out), code
	}
	if out, code := once(); code != 0 || !strings.Contains(out, `"healthy": true`) {
		t.Fatalf("first check: %d %s", code, out)
	}
	secretsOut(t, bin, env, "lease", "k")
	if out, code := once(); code != 0 || strings.Contains(out, "rollback") {
		t.Fatalf("second check: %d %s", code, out)
	}
	if st := secretsOut(t, bin, env, "status"); !strings.Contains(st, `"witness": {`) || strings.Contains(st, `"status": "rollback"`) {
		t.Fatalf("status has no witness: %s", st)
	}

	// Every file as it is now, put back later together.
	old := filepath.Join(work, "old")
	if out, err := exec.Command("cp", "-a", dir, old).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	secretsOut(t, bin, env, "lease", "k")
	secretsOut(t, bin, env, "lease", "k")
	if _, code := once(); code != 0 {
		t.Fatal("third check failed")
	}
	os.RemoveAll(dir)
	if out, err := exec.Command("cp", "-a", old, dir).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	// Nothing on the machine notices...
	if out := secretsOut(t, bin, env, "audit", "--verify"); !strings.Contains(out, `"ok": true`) {
		t.Fatalf("the older store should verify: %s", out)
	}
	// ...the witness does.
	out, code := once()
	if code != 8 || !strings.Contains(out, `"code": "audit_rollback"`) || !strings.Contains(out, "it went backwards") {
		t.Fatalf("after the rollback: exit %d\n%s", code, out)
	}
	st := secretsOut(t, bin, env, "status")
	for _, want := range []string{`"status": "rollback"`, `"trigger": "heartbeat"`, "audit_rollback: the witness saw seq"} {
		if !strings.Contains(st, want) {
			t.Errorf("status lacks %s:\n%s", want, st)
		}
	}
	if out := secretsOut(t, bin, env, "audit", "--event", "audit_rollback"); !strings.Contains(out, `"code": "audit_rollback"`) {
		t.Errorf("no audit_rollback entry: %s", out)
	}
	// The finding stands until a person unlocks, and the witness never goes back to the
	// older head: the same older copy put back again is found again.
	if out, code := once(); code != 8 || !strings.Contains(out, `"code": "audit_rollback"`) {
		t.Fatalf("the next check: exit %d\n%s", code, out)
	}
	if st := secretsOut(t, bin, env, "status"); !strings.Contains(st, `"status": "rollback"`) {
		t.Fatalf("the finding was lost: %s", st)
	}
	os.RemoveAll(dir)
	if out, err := exec.Command("cp", "-a", old, dir).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if out, code := once(); code != 8 || !strings.Contains(out, `"code": "audit_rollback"`) {
		t.Fatalf("the older copy put back again: exit %d\n%s", code, out)
	}

	// No head is sent for a damaged log, so the witness cannot be taught it.
	os.WriteFile(filepath.Join(dir, "audit.jsonl"), append(must(os.ReadFile(filepath.Join(dir, "audit.jsonl"))), "junk\n"...), 0o600)
	if out, code := once(); code != 8 || !strings.Contains(out, "audit_tampered") {
		t.Fatalf("a check on a damaged log: exit %d\n%s", code, out)
	}

	// A head without the key's MAC is refused, so it cannot teach the witness anything.
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("X-Secrets-Witness", "v1 1 sha256:00 hmac-sha256:00")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 403 {
		t.Fatalf("a forged head: %v %v", resp, err)
	}
	resp.Body.Close()
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
