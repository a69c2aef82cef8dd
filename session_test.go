package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/store"
)

// stampOf returns the lock file's stamp and whether it stamps the log as it is now, at
// its last line.
func stampOf(t *testing.T, dir string) ([]byte, bool) {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{Dir: dir, LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	note := st.LockNote()
	stampKey, _ := st.Key(store.KeyStamp)
	auditKey, _ := st.Key(store.KeyAudit)
	s, err := audit.DecodeStamp(note, stampKey)
	if err != nil {
		return note, false
	}
	log := audit.New(st.Path(store.AuditFile), audit.Keys{Current: auditKey}, time.Now)
	b, _ := os.ReadFile(st.Path(store.AuditFile))
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	head, _ := log.Open([]byte(lines[len(lines)-1]))
	return note, log.Matches(s) && s.Head == head
}

// TestAuditStamp: every command leaves the lock file's stamp at the log's head; a stamp
// older than the log (a command that stopped after its append, before its stamp) is
// accepted once the log is read in full; a stamp that is missing or changed is found, as is
// an edit far from the end with the mtime put back.
func TestAuditStamp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	mustCall(t, dir, "", "init")
	mustCall(t, dir, "FAKE-stamp-0001", "add", "k")
	for _, args := range [][]string{{"lease", "k"}, {"list"}, {"status"}, {"audit", "--tail", "1"}} {
		mustCall(t, dir, "", args...)
		if _, ok := stampOf(t, dir); !ok {
			t.Fatalf("after secrets %v the log is not stamped at its head", args)
		}
	}

	// A stamp from before the last command: its append is durable, its stamp was lost.
	older, _ := stampOf(t, dir)
	mustCall(t, dir, "", "lease", "k")
	lock := filepath.Join(dir, store.LockFile)
	os.WriteFile(lock, older, 0o600)
	if _, ok := stampOf(t, dir); ok {
		t.Fatal("an older stamp matched the log")
	}
	if code, out, errs := call(t, dir, "", "lease", "k"); code != 0 || out != "FAKE-stamp-0001" {
		t.Fatalf("lease after a lost stamp: exit %d %q %s", code, out, errs)
	}
	if _, ok := stampOf(t, dir); !ok {
		t.Fatal("the next command did not stamp the log again")
	}

	// A missing stamp leaves the end of the log unpinned: found, and nothing is handed out.
	good, _ := stampOf(t, dir)
	os.WriteFile(lock, nil, 0o600)
	code, out, _ := call(t, dir, "", "lease", "k", "--json")
	if code != exitAudit || strings.Contains(out, "FAKE-stamp") || !strings.Contains(out, "stamp is missing") {
		t.Fatalf("lease with the stamp removed: exit %d\n%s", code, out)
	}
	if code, out, _ := call(t, dir, "", "status", "--json"); code != 0 || !strings.Contains(out, `"status": "tampered"`) {
		t.Fatalf("status with the stamp removed: exit %d\n%s", code, out)
	}
	changed := bytes.Replace(good, []byte("secrets-stamp-v2 0"), []byte("secrets-stamp-v2 1"), 1)
	os.WriteFile(lock, changed, 0o600)
	if code, out, _ := call(t, dir, "", "lease", "k", "--json"); code != exitAudit || !strings.Contains(out, "stamp was changed") {
		t.Fatalf("lease with the stamp changed: exit %d\n%s", code, out)
	}
	os.WriteFile(lock, good, 0o600)
	mustCall(t, dir, "", "lease", "k")

	// The first line, the one farthest from the end, edited behind the tool's back.
	logPath := filepath.Join(dir, store.AuditFile)
	b, _ := os.ReadFile(logPath)
	fi, _ := os.Stat(logPath)
	first, _, _ := strings.Cut(string(b), "\n")
	f, _ := os.OpenFile(logPath, os.O_WRONLY, 0)
	f.WriteAt([]byte(strings.Replace(first, `"ok":true`, `"ok":fals`, 1)), 0)
	f.Close()
	os.Chtimes(logPath, fi.ModTime(), fi.ModTime())
	code, out, _ = call(t, dir, "", "status", "--json")
	if code != 0 || !strings.Contains(out, `"status": "tampered"`) || !strings.Contains(out, "tampered at seq 1") {
		t.Fatalf("status on an edited first line: exit %d\n%s", code, out)
	}
	code, out, _ = call(t, dir, "", "lease", "k", "--json")
	if code != exitAudit || strings.Contains(out, "FAKE-stamp") {
		t.Fatalf("lease on an edited first line: exit %d\n%s", code, out)
	}
}
