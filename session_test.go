package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/store"
)

// TestAuditStamp: every command leaves the audit log stamped at its head, so the next one
// reads only the end of the log; a log written by anything else is read in full, and an edit
// far from the end is refused before anything is released.
func TestAuditStamp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	mustCall(t, dir, "", "init")
	mustCall(t, dir, "FAKE-stamp-0001", "add", "k")
	stamped := func() bool {
		_, state, err := rawState(dir)
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.Open(context.Background(), store.Options{Dir: dir, LockTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		return audit.New(st.Path(store.AuditFile), audit.Keys{Current: st.AuditKey()}, time.Now).Stamped(st.LockNote(), state.AuditHead)
	}
	for _, args := range [][]string{{"lease", "k"}, {"list"}, {"status"}, {"audit", "--tail", "1"}} {
		mustCall(t, dir, "", args...)
		if !stamped() {
			t.Fatalf("after secrets %v the log is not stamped at its head", args)
		}
	}

	// A lost stamp (a crash between append and stamp) is rebuilt by the next full read,
	// audit --verify's own included.
	os.WriteFile(filepath.Join(dir, store.LockFile), nil, 0o600)
	if stamped() {
		t.Fatal("an empty lock file matched")
	}
	mustCall(t, dir, "", "audit", "--verify")
	if !stamped() {
		t.Fatal("audit --verify read the whole log but did not stamp it")
	}

	// The first line, the one farthest from the end, edited behind the tool's back: the
	// stamp no longer matches, so a read-only command reads it all and reports it, and an
	// appending one refuses.
	logPath := filepath.Join(dir, store.AuditFile)
	b, _ := os.ReadFile(logPath)
	first, _, _ := strings.Cut(string(b), "\n")
	os.WriteFile(logPath, []byte(strings.Replace(string(b), first, strings.Replace(first, `"ok":true`, `"ok":fals`, 1), 1)), 0o600)
	if stamped() {
		t.Fatal("a rewritten log still matches its stamp")
	}
	code, out, _ := call(t, dir, "", "status", "--json")
	if code != 0 || !strings.Contains(out, `"status": "tampered"`) || !strings.Contains(out, "tampered at seq 1") {
		t.Fatalf("status on an edited first line: exit %d\n%s", code, out)
	}
	code, out, _ = call(t, dir, "", "lease", "k", "--json")
	if code != exitAudit || strings.Contains(out, "FAKE-stamp") {
		t.Fatalf("lease on an edited first line: exit %d\n%s", code, out)
	}
}
