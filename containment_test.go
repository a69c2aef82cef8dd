//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gofrs/flock"
)

// Containment of what was handed out (issue 12), each class an attack against the built
// binary that worked on the release before.

func TestContainEnvNeverWritesIntoTheStore(t *testing.T) {
	s := newAttackStore(t)
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(s.dir, link)
	before := s.read("identity.age")
	for _, out := range []string{s.path("identity.age"), filepath.Join(link, "identity.age"), s.path("sub/x.env"), s.dir} {
		s.wantCode("path_in_store", exitUsage, "", "env", "--secret", "k", "--output", out, "--force")
	}
	if !bytes.Equal(s.read("identity.age"), before) {
		t.Fatal("env replaced the identity")
	}
	s.must("", "lease", "k") // the store still opens
}

func TestContainGitignoreAndGit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	s := newAttackStore(t)
	repo, outside := t.TempDir(), filepath.Join(t.TempDir(), "bashrc")
	os.WriteFile(outside, []byte("# mine\n"), 0o600)
	mark := filepath.Join(t.TempDir(), "fsmonitor-ran")
	for _, args := range [][]string{{"init", "-q"}, {"config", "core.fsmonitor", "touch " + mark + "; env > " + mark + ".env; false"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	os.Symlink(outside, filepath.Join(repo, ".gitignore"))
	code, out, errs := s.run("", []string{"SECRETS_IDENTITY=AGE-SECRET-KEY-FAKE"}, "env", "--secret", "k", "--output", filepath.Join(repo, ".env"))
	if code == 0 {
		t.Fatalf("env with a bogus SECRETS_IDENTITY should fail to open the store:\n%s%s", out, errs)
	}
	s.must("", "env", "--secret", "k", "--output", filepath.Join(repo, ".env"))
	if b, _ := os.ReadFile(outside); string(b) != "# mine\n" {
		t.Fatalf("the .gitignore symlink was followed: %q", b)
	}
	if _, err := os.Stat(mark); err == nil {
		env, _ := os.ReadFile(mark + ".env")
		t.Fatalf("git ran the repository's core.fsmonitor (env: %d bytes, SECRETS_ seen: %v)", len(env), bytes.Contains(env, []byte("SECRETS_")))
	}
}

func TestContainProjectFileBounded(t *testing.T) {
	s := newAttackStore(t)
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(t.TempDir(), "big.json")
	os.WriteFile(big, bytes.Repeat([]byte(" "), 2<<20), 0o600)
	for _, f := range []string{"/dev/zero", fifo, big} {
		start := time.Now()
		s.wantCode("invalid_project_file", exitUsage, "", "env", "--file", f, "--output", filepath.Join(t.TempDir(), ".env"))
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("%s took %v", f, d)
		}
	}
	cs, _ := mcpServerArgs(t, "--exec", "true")
	for _, f := range []string{"/dev/zero", fifo} {
		res, out := callTool(t, cs, "secrets_exec", map[string]any{"command": []string{"true"}, "project_file": f})
		if e, _ := out["error"].(map[string]any); !res.IsError || e["code"] != "invalid_project_file" {
			t.Fatalf("MCP project_file %s: %+v", f, out)
		}
	}
	if _, out := callTool(t, cs, "secrets_list", nil); out["count"] != 1.0 {
		t.Fatalf("the MCP server did not survive: %+v", out)
	}
}

func TestContainPastedValueAsName(t *testing.T) {
	s := newAttackStore(t)
	const pasted = "ghp_FAKEpastedTOKEN0123456789abcdefABCD!x" // not a valid name: the ! and length are a value's
	lease := leaseIDOf(t, s.must("", "lease", "k", "--json"))
	for _, args := range [][]string{
		{"set", pasted, "--rotate-via", "true"},
		{"rotate", pasted},
		{"exec", "--secret", pasted, "--", "true"},
		{"env", "--secret", pasted, "--output", filepath.Join(t.TempDir(), ".env")},
		{"revoke", pasted},
		{"renew", pasted},
		{"lease", pasted},
		{"policy", "reset-uses", pasted},
	} {
		_, out, errs := s.run("", nil, args...)
		if strings.Contains(out+errs, "FAKEpasted") || strings.Contains(strings.ToLower(out+errs), strings.ToLower("FAKEpasted")) {
			t.Errorf("secrets %v echoed the pasted value:\n%s%s", args[:1], out, errs)
		}
	}
	if b := s.read("audit.jsonl"); bytes.Contains(bytes.ToLower(b), []byte("fakepasted")) {
		t.Fatal("the audit log holds the pasted value")
	}
	s.must("", "revoke", lease)
}

func TestContainCleanupTellsTheTruth(t *testing.T) {
	s := newAttackStore(t)
	env := filepath.Join(t.TempDir(), ".env")
	out := s.must("", "env", "--secret", "k", "--ttl", "2s", "--output", env)
	if !strings.Contains(out, `"command": "secrets cleanup --all"`) {
		t.Fatalf("env's hint to remove the file now must be a command that does: %s", out)
	}
	if out := s.must("", "cleanup", "--dry-run"); !strings.Contains(out, "its leases are active") {
		t.Fatalf("dry run before expiry: %s", out)
	}
	time.Sleep(2200 * time.Millisecond)
	if out := s.must("", "cleanup", "--dry-run"); !strings.Contains(out, `"reason": "would be removed"`) {
		t.Fatalf("dry run after expiry: %s", out)
	}
	if _, err := os.Stat(env); err != nil {
		t.Fatal("a dry run removed the file")
	}
	out = s.must("", "cleanup")
	if _, err := os.Stat(env); err == nil || !strings.Contains(out, env) || !strings.Contains(out, `"reason": "removed"`) {
		t.Fatalf("cleanup removed the file without saying so (or did not remove it): %s", out)
	}
}

// Item 2: a renew of an exec lease is followed by its supervisor, both ways.
func TestContainExecFollowsRenew(t *testing.T) {
	bin := secretsBinary(t)
	env := execEnv(t, bin)
	leaseID := func() string {
		out := secretsOut(t, bin, env, "leases")
		i := strings.Index(out, `"lease_id": "`)
		if i < 0 {
			t.Fatalf("no lease: %s", out)
		}
		return out[i+len(`"lease_id": "`) : i+len(`"lease_id": "`)+32]
	}
	// Extended: the command runs past its first expiry.
	_, done, _ := startExec(t, bin, env, "--ttl", "2s", "--", "sleep", "4")
	secretsOut(t, bin, env, "renew", leaseID(), "--ttl", "30s")
	if code, d := waitExit(t, done, time.Now(), 10*time.Second); code != 0 {
		t.Fatalf("a renewed exec lease was stopped at its old expiry: exit %d after %v", code, d)
	}
	// Shortened: it is stopped at the new expiry, not the old one.
	_, done, _ = startExec(t, bin, env, "--ttl", "1h", "--", "sleep", "30")
	start := time.Now()
	secretsOut(t, bin, env, "renew", leaseID(), "--ttl", "2s")
	if code, d := waitExit(t, done, start, 10*time.Second); code != 143 || d > 5*time.Second {
		t.Fatalf("a shortened exec lease: exit %d after %v, want 143 within about 2s", code, d)
	}
}

// Item 1: what the command leaves behind, in the background or in a session of its own,
// is stopped when it exits and when its lease ends; the grace has a cap.
func TestContainExecDescendants(t *testing.T) {
	bin := secretsBinary(t)
	env := execEnv(t, bin)
	dir := t.TempDir()
	left := func(marker string) bool {
		out, _ := exec.Command("pgrep", "-f", marker).Output()
		return len(bytes.TrimSpace(out)) > 0
	}
	// On exit: a background job and a setsid'd one would write the value 2s later.
	script := fmt.Sprintf(`(sleep 2.01; printenv K > %[1]s/bg) & setsid sh -c 'sleep 2.02; printenv K > %[1]s/sid' & exit 0`, dir)
	cmd := exec.Command(bin, "exec", "--secret", "k=K", "--", "sh", "-c", script)
	cmd.Env = env
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("exec: %v %s", err, out)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("exec waited %v for what the command left running", d)
	}
	time.Sleep(2500 * time.Millisecond)
	for _, f := range []string{"bg", "sid"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Fatalf("a process the command left (%s) kept the value after exec_exit", f)
		}
	}
	if a := secretsOut(t, bin, env, "audit", "--event", "exec_exit", "--tail", "1"); !strings.Contains(a, "left running were stopped") {
		t.Fatalf("exec_exit does not say what it stopped: %s", a)
	}
	// On revocation: a setsid'd descendant leaves the process group, and is stopped too.
	_, done, _ := startExec(t, bin, env, "--", "sh", "-c", "setsid sleep 31.37 & sleep 31.38")
	secretsOut(t, bin, env, "revoke", "--all")
	waitExit(t, done, time.Now(), 5*time.Second)
	time.Sleep(200 * time.Millisecond)
	if left("sleep 31.37") || left("sleep 31.38") {
		t.Fatal("a descendant survived the revocation")
	}
	if code, _, errs := runCode(bin, env, "exec", "--secret", "k", "--grace", "1h", "--", "true"); code != exitUsage || !strings.Contains(errs, "more than 30s") {
		t.Fatalf("--grace 1h: exit %d %s", code, errs)
	}
}

// runCode runs the binary and returns its exit code and output.
func runCode(bin string, env []string, args ...string) (int, string, string) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errb.String()
	}
	return 0, out.String(), errb.String()
}

// Item 12: a second rotation of a secret whose hook runs is refused, not run over it; a
// rotation whose process died blocks nothing.
func TestContainOverlappingRotations(t *testing.T) {
	s := newAttackStore(t)
	s.must("", "set", "k", "--rotate-via", "sleep 1.5; echo FAKE-attack-rotated-$$")
	first := exec.Command(s.bin, "rotate", "k")
	first.Env = s.env
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	s.wantCode("rotation_in_progress", exitRotation, "", "rotate", "k")
	if err := first.Wait(); err != nil {
		t.Fatalf("the first rotation: %v", err)
	}
	s.must("", "rotate", "k") // once it is done, another may run
	// A rotation killed in the middle does not block the next one.
	crashed := exec.Command(s.bin, "rotate", "k")
	crashed.Env = s.env
	crashed.Start()
	time.Sleep(500 * time.Millisecond)
	crashed.Process.Kill()
	crashed.Wait()
	s.must("", "rotate", "k")
}

// Item 7: watch removes ended .env files within its interval, also without a heartbeat,
// and a held store lock makes it wait, not exit.
func TestContainWatchPrunes(t *testing.T) {
	s := newAttackStore(t)
	envFile := filepath.Join(t.TempDir(), ".env")
	if _, _, errs := s.run("", nil, "env", "--secret", "k", "--ttl", "1s", "--output", envFile); !strings.Contains(errs, "nothing is pruning this store") {
		t.Fatalf("env does not warn that nothing prunes: %s", errs)
	}
	lk := flock.New(s.path(".lock"))
	if ok, err := lk.TryLock(); !ok || err != nil {
		t.Fatalf("lock: %v %v", ok, err)
	}
	watch := exec.Command(s.bin, "--lock-timeout", "200ms", "watch", "--prune-every", "300ms")
	watch.Env = s.env
	var out, errb bytes.Buffer
	watch.Stdout, watch.Stderr = &out, &errb
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if watch.ProcessState != nil {
		t.Fatal("watch exited on a held lock")
	}
	lk.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(envFile); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("watch did not remove the ended .env file; stderr: %s", errb.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	watch.Process.Signal(syscall.SIGTERM)
	watch.Wait()
	if !strings.Contains(errb.String(), "trying again") || !strings.Contains(out.String(), `"removed": 1`) {
		t.Fatalf("watch: %s\n%s", out.String(), errb.String())
	}
	if _, _, errs := s.run("", nil, "env", "--secret", "k", "--ttl", "1h", "--output", envFile); strings.Contains(errs, "nothing is pruning") {
		t.Fatalf("env warns although watch pruned a moment ago: %s", errs)
	}
}

// TestContainValueSplitBetweenStreams: a command prints half of a value on stdout and the
// rest on stderr. Where both streams reach one place (2>&1, a tool's output to a model)
// they were two redactors, each seeing half, and the value arrived whole.
func TestContainValueSplitBetweenStreams(t *testing.T) {
	s := newAttackStore(t)
	split := `printf %s FAKE-att; sleep 0.2; printf %s ack-v1 >&2; sleep 0.2; echo " done"`
	out, err := os.Create(filepath.Join(t.TempDir(), "both"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(s.bin, "exec", "--secret", "k", "--", "sh", "-c", split)
	cmd.Env, cmd.Stdout, cmd.Stderr = s.env, out, out // 2>&1
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out.Name()); string(b) != "[REDACTED:K] done\n" {
		t.Fatalf("2>&1: %q", b)
	}
	// Two places: each keeps its own stream, as without us.
	code, stdout, stderr := s.run("", nil, "exec", "--secret", "k", "--", "sh", "-c", split)
	if code != 0 || stdout != "FAKE-att done\n" || !strings.HasSuffix(stderr, "ack-v1") {
		t.Fatalf("apart: %d %q %q", code, stdout, stderr)
	}
	// A tool's output (OpenClaw's secrets_exec runs exec --tool): one stream, on stdout.
	code, stdout, stderr = s.run("", nil, "exec", "--tool", "t", "--tool-exec", "sh -c *", "--secret", "k", "--", "sh", "-c", split)
	if code != 0 || stdout != "[REDACTED:K] done\n" || strings.Contains(stderr, "ack-v1") {
		t.Fatalf("--tool: %d %q %q", code, stdout, stderr)
	}
	s.wantCode("usage", exitUsage, "", "exec", "--tool", "t", "--no-redact", "--secret", "k", "--", "true")
	// MCP's secrets_exec, from the built binary.
	cs := mcpBinary(t, s, "--exec", "sh -c *")
	res, got := callTool(t, cs, "secrets_exec", map[string]any{"command": []string{"sh", "-c", split}, "secrets": []map[string]any{{"name": "k"}}})
	if res.IsError || got["stdout"] != "[REDACTED:K] done\n" || strings.Contains(fmt.Sprint(got), "FAKE-att") {
		t.Fatalf("MCP: %+v", got)
	}
}

// TestContainForkingDescendant: a background process that keeps starting new sessions,
// each a fresh sleep, is stopped with everything it started when the command exits. A
// single pass over the tree left 78 of them running (the attacker's review).
func TestContainForkingDescendant(t *testing.T) {
	s := newAttackStore(t)
	spawner := `setsid sh -c 'trap "" TERM; i=0; while [ $i -lt 3000 ]; do setsid -f sleep 97.8081; i=$((i+1)); done' & sleep 0.5; echo exiting`
	code, out, errs := s.run("", nil, "exec", "--secret", "k", "--grace", "1s", "--", "sh", "-c", spawner)
	if code != 0 || out != "exiting\n" {
		t.Fatalf("exit %d: %q %s", code, out, errs)
	}
	if !waitFor(3*time.Second, func() bool { return len(procsWith("sleep 97.8081")) == 0 }) {
		t.Fatalf("%d left running after exec returned", len(procsWith("sleep 97.8081")))
	}
}
