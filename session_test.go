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

// TestWindowFindsHiddenEdit: a middle line edited in place in a way the stamp cannot see
// (a write through a shared mapping to a page already dirty leaves size and change time
// alone; here the stamp is rewritten with the key to the same effect) is found by the
// rolling check within log size / 16 KiB + 1 commands, the bound the README states.
func TestWindowFindsHiddenEdit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	mustCall(t, dir, "", "init")
	mustCall(t, dir, "FAKE-window-0001", "add", "k")
	if err := growLog(dir, 400, audit.Entry{Event: "fixture", OK: true, Detail: "a line of the log"}); err != nil {
		t.Fatal(err)
	}
	mustCall(t, dir, "", "list")
	logPath := filepath.Join(dir, store.AuditFile)
	b, _ := os.ReadFile(logPath)
	lines := strings.SplitAfter(string(b), "\n")
	off := len(strings.Join(lines[:len(lines)/3], ""))
	f, _ := os.OpenFile(logPath, os.O_WRONLY, 0)
	f.WriteAt([]byte(strings.Replace(lines[len(lines)/3], `"ok":true`, `"ok":fals`, 1)), int64(off))
	f.Close()

	hide := func() {
		st, err := store.Open(context.Background(), store.Options{Dir: dir, LockTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		stampKey, _ := st.Key(store.KeyStamp)
		auditKey, _ := st.Key(store.KeyAudit)
		s, err := audit.DecodeStamp(st.LockNote(), stampKey)
		if err != nil {
			t.Fatal(err)
		}
		log := audit.New(logPath, audit.Keys{Current: auditKey}, time.Now)
		now, err := log.StampNow(s.Head, s.Cursor)
		if err != nil {
			t.Fatal(err)
		}
		st.SetLockNote(now.Encode(stampKey))
	}
	hide()
	bound := int(int64(len(b))/(16<<10)) + 1
	for i := 1; i <= bound+1; i++ {
		code, out, _ := call(t, dir, "", "status", "--json")
		if strings.Contains(out, `"status": "tampered"`) {
			if i > bound {
				t.Fatalf("found after %d commands, past the bound %d", i, bound)
			}
			t.Logf("found by command %d of at most %d (log %d bytes)", i, bound, len(b))
			if code, out, _ := call(t, dir, "", "lease", "k"); code != exitAudit || strings.Contains(out, "FAKE") {
				t.Fatalf("lease after the finding: exit %d %q", code, out)
			}
			return
		}
		if code != 0 {
			t.Fatalf("status: exit %d %s", code, out)
		}
	}
	t.Fatalf("the edit was not found within %d commands", bound+1)
}
