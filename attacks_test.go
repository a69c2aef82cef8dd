package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/gofrs/flock"
)

// The attacks of issue 10, each against the built binary, each by a process that runs as
// the store's user and can write its files but not read its identity (the guarded store's
// agent, or anyone who knows the public key `status` prints). Every one of them worked on
// the release before the log became the write-ahead log.

type attackStore struct {
	t   *testing.T
	bin string
	dir string
	env []string
}

func newAttackStore(t *testing.T) *attackStore {
	t.Helper()
	s := &attackStore{t: t, bin: secretsBinary(t), dir: filepath.Join(t.TempDir(), "store")}
	s.env = []string{"SECRETS_DIR=" + s.dir, "HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "GORACE=atexit_sleep_ms=0"}
	s.must("", "init")
	s.must("FAKE-attack-v1", "add", "k")
	s.must("FAKE-attack-x", "add", "x")
	return s
}

// run runs the binary and returns its exit code, stdout and stderr.
func (s *attackStore) run(stdin string, extraEnv []string, args ...string) (int, string, string) {
	s.t.Helper()
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(append([]string{}, s.env...), extraEnv...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

func (s *attackStore) must(stdin string, args ...string) string {
	s.t.Helper()
	code, out, errs := s.run(stdin, nil, args...)
	if code != 0 {
		s.t.Fatalf("secrets %v: exit %d\n%s%s", args, code, out, errs)
	}
	return out
}

func (s *attackStore) path(name string) string { return filepath.Join(s.dir, name) }

func (s *attackStore) read(name string) []byte {
	s.t.Helper()
	b, err := os.ReadFile(s.path(name))
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

func (s *attackStore) write(name string, b []byte) {
	s.t.Helper()
	if err := os.WriteFile(s.path(name), b, 0o600); err != nil {
		s.t.Fatal(err)
	}
}

// forge rewrites an age file of the store with edit applied to its JSON, encrypted to the
// store's public key: what anyone who knows the public key can do. (The test decrypts
// with the identity only to start from the real content; an attacker could as well write
// a document from scratch.)
func (s *attackStore) forge(name string, edit func(map[string]any)) {
	s.t.Helper()
	ids, err := age.ParseIdentities(bytes.NewReader(s.read("identity.age")))
	if err != nil {
		s.t.Fatal(err)
	}
	r, err := age.Decrypt(bytes.NewReader(s.read(name)), ids...)
	if err != nil {
		s.t.Fatal(err)
	}
	plain, _ := io.ReadAll(r)
	var doc map[string]any
	if err := json.Unmarshal(plain, &doc); err != nil {
		s.t.Fatalf("%s is not JSON: %v", name, err)
	}
	edit(doc)
	plain, _ = json.Marshal(doc)
	var ct bytes.Buffer
	w, _ := age.Encrypt(&ct, ids[0].(*age.X25519Identity).Recipient())
	w.Write(plain)
	w.Close()
	s.write(name, ct.Bytes())
}

// TestAttackForgedSnapshotLiftsLockdown: a leases.age without the lockdown, encrypted to
// the public key, is store_corrupt; the lockdown stands and nothing is handed out.
func TestAttackForgedSnapshotLiftsLockdown(t *testing.T) {
	s := newAttackStore(t)
	s.must("", "killswitch", "--reason", "attack drill")
	s.forge("leases.age", func(doc map[string]any) { delete(doc, "lockdown") })
	code, out, errs := s.run("", nil, "lease", "k")
	if code == 0 || strings.Contains(out, "FAKE-attack") {
		t.Fatalf("a forged snapshot lifted the lockdown: exit %d %q", code, out)
	}
	if code != 7 || !strings.Contains(errs, "store corrupt") && !strings.Contains(errs, "MAC does not check out") {
		t.Fatalf("want store_corrupt (7), got exit %d: %s", code, errs)
	}
}

// TestAttackForgedSecrets: a secrets.age with a value of the attacker's choosing,
// encrypted to the public key, is store_corrupt: no value it holds is handed out.
func TestAttackForgedSecrets(t *testing.T) {
	s := newAttackStore(t)
	s.forge("secrets.age", func(doc map[string]any) {
		for _, field := range []string{"secrets", "entries"} {
			if m, ok := doc[field].(map[string]any); ok {
				if k, ok := m["k"].(map[string]any); ok {
					k["value"] = "RkFLRS1hdHRhY2tlcg==" // FAKE-attacker
				}
			}
		}
	})
	code, out, _ := s.run("", nil, "lease", "k")
	if code != 7 || strings.Contains(out, "FAKE-") {
		t.Fatalf("a forged secrets.age was read: exit %d %q", code, out)
	}
}

// TestAttackOlderSecretsPutBack: an older secrets.age (with a value since replaced and a
// secret since removed) put back is refused as secrets_rollback, never read.
func TestAttackOlderSecretsPutBack(t *testing.T) {
	s := newAttackStore(t)
	older := s.read("secrets.age")
	s.must("FAKE-attack-v2", "set", "k")
	s.must("", "rm", "x")
	s.write("secrets.age", older)
	for _, name := range []string{"k", "x"} {
		code, out, errs := s.run("", nil, "lease", name)
		if code != 7 || strings.Contains(out, "FAKE-") || !strings.Contains(errs, "an older copy was put back") {
			t.Fatalf("lease %s from an older secrets.age: exit %d %q %s", name, code, out, errs)
		}
	}
}

// TestAttackOlderSnapshotPutBack: an older leases.age put back loses nothing: a lease
// revoked since stays revoked, one granted since stays granted.
func TestAttackOlderSnapshotPutBack(t *testing.T) {
	s := newAttackStore(t)
	first := s.must("", "lease", "k", "--json")
	older := s.read("leases.age")
	id := leaseIDOf(t, first)
	s.must("", "revoke", id)
	second := leaseIDOf(t, s.must("", "lease", "k", "--json"))
	s.write("leases.age", older)
	out := s.must("", "leases")
	if strings.Contains(out, id) || !strings.Contains(out, second) {
		t.Fatalf("an older leases.age changed the leases (revoked %s must stay gone, %s must stay):\n%s", id, second, out)
	}
}

func leaseIDOf(t *testing.T, envelope string) string {
	t.Helper()
	var e struct {
		Result struct {
			LeaseID string `json:"lease_id"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(envelope), &e); err != nil || e.Result.LeaseID == "" {
		t.Fatalf("no lease id in %s", envelope)
	}
	return e.Result.LeaseID
}

// TestAttackJunkLineKeepsKillswitchOff: one junk line in the middle of the log no longer
// makes revoke --all and the killswitch refuse.
func TestAttackJunkLineKeepsKillswitchOff(t *testing.T) {
	s := newAttackStore(t)
	s.must("", "lease", "k")
	s.must("", "lease", "k")
	log := s.read("audit.jsonl")
	lines := bytes.SplitAfter(log, []byte("\n"))
	junk := append(append(append([]byte{}, bytes.Join(lines[:2], nil)...), "junk\n"...), bytes.Join(lines[2:], nil)...)
	s.write("audit.jsonl", junk)
	if code, out, errs := s.run("", nil, "revoke", "--all"); code != 0 || !strings.Contains(out, `"leases_revoked"`) {
		t.Fatalf("revoke --all on a damaged log: exit %d %s %s", code, out, errs)
	}
	s.write("audit.jsonl", append(s.read("audit.jsonl"), "junk again\n"...))
	if code, out, errs := s.run("", nil, "killswitch", "--reason", "junk"); code != 0 {
		t.Fatalf("killswitch on a damaged log: exit %d %s %s", code, out, errs)
	}
	if code, out, _ := s.run("", nil, "lease", "k"); code != 9 || strings.Contains(out, "FAKE-") {
		t.Fatalf("lease after the killswitch: exit %d %q", code, out)
	}
}

// TestAttackHeldLockKeepsKillswitchOff: a process that holds the store lock (flock
// .lock sleep) no longer keeps the killswitch from firing: it cuts access at once and
// says the lockdown is pending, and the first command once the lock is free honours it.
func TestAttackHeldLockKeepsKillswitchOff(t *testing.T) {
	s := newAttackStore(t)
	s.must("", "lease", "k")
	lk := flock.New(s.path(".lock"))
	if ok, err := lk.TryLock(); !ok || err != nil {
		t.Fatalf("lock: %v %v", ok, err)
	}
	start := time.Now()
	code, out, errs := s.run("", nil, "killswitch", "--lock-timeout", "500ms", "--reason", "held lock")
	took := time.Since(start)
	lk.Close()
	// It cannot record the lockdown in the state while the lock is held, and says so
	// (store_locked), but access is cut at once and every later command honours it.
	if code != 6 || !strings.Contains(errs, "access is cut") || took > 5*time.Second {
		t.Fatalf("killswitch with the lock held: exit %d after %v\n%s %s", code, took, out, errs)
	}
	if code, out, _ := s.run("", nil, "lease", "k"); code != 9 || strings.Contains(out, "FAKE-") {
		t.Fatalf("lease after a killswitch fired under a held lock: exit %d %q", code, out)
	}
}

// TestAttackCrashBetweenAppendAndRename: a command killed after its log entry and before
// its secrets.age is renamed into place is recovered by the next command (the staged file
// rolled forward), not taken for a rollback.
func TestAttackCrashBetweenAppendAndRename(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "secrets-crash")
	build := exec.Command("go", "build", "-tags", "crashpoints", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	s := newAttackStore(t)
	crash := &attackStore{t: t, bin: bin, dir: s.dir, env: s.env}
	if code, _, _ := crash.run("FAKE-attack-v2", []string{"SECRETS_CRASH_AT=publish.rename:secrets.age"}, "set", "k"); code != -1 {
		t.Fatalf("the crash point was not reached: exit %d", code)
	}
	code, out, errs := s.run("", nil, "lease", "k")
	if code != 0 || out != "FAKE-attack-v2" {
		t.Fatalf("lease after the crash: exit %d %q %s", code, out, errs)
	}
	if a := s.must("", "audit", "--event", "secrets_recovered"); !strings.Contains(a, `"count": 1`) {
		t.Fatalf("the roll forward is not recorded:\n%s", a)
	}
}

// TestAttackForgedExecLeaseSignalsNothing: a forged exec lease in a damaged log, naming
// another program by its pid and start time (both readable in /proc), does not make the
// killswitch signal it: only a process running secrets is a supervisor.
func TestAttackForgedExecLeaseSignalsNothing(t *testing.T) {
	s := newAttackStore(t)
	victim := exec.Command("sleep", "300")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- victim.Wait() }()
	t.Cleanup(func() { victim.Process.Kill(); <-exited })
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(victim.Process.Pid) + "/stat")
	if err != nil {
		t.Skip("no /proc")
	}
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
	forged := fmt.Sprintf(`{"seq":99,"event":"lease_grant","ok":true,"state":{"lease":{"id":"lease_X","secret":"k","client_id":"x","created_at":"2026-01-01T00:00:00Z","expires_at":"2099-01-01T00:00:00Z","ttl":"1h","kind":"exec","pid":%d,"pid_start":%s}}}`, victim.Process.Pid, fields[19])
	s.write("audit.jsonl", append(s.read("audit.jsonl"), []byte("junk\n"+forged+"\n")...))
	if code, out, errs := s.run("", nil, "revoke", "--all"); code != 0 {
		t.Fatalf("revoke --all: exit %d %s %s", code, out, errs)
	}
	select {
	case err := <-exited:
		exited <- err
		t.Fatalf("the killswitch signalled a process a forged lease named: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
}
