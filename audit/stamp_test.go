package audit_test

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/audit"
)

// TestStamp: a stamp holds while nothing writes the log, and any write, by anything, breaks
// it: an append, an edit that keeps the size and puts the mtime back, a copy put in its
// place. It cannot be moved to another head, forged without the key, or read from garbage.
func TestStamp(t *testing.T) {
	l, p := newLog(t)
	if _, err := l.Stamp(audit.Head{}); err == nil {
		t.Fatal("a missing log was stamped")
	}
	h := fill(t, l, 5)
	stamp, err := l.Stamp(h)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Stamped(stamp, h) {
		t.Fatal("an untouched log does not match its stamp")
	}
	if l.Stamped(stamp, audit.Head{Seq: h.Seq - 1, Hash: h.Hash}) {
		t.Fatal("the stamp matched another head")
	}
	other := audit.New(p, audit.Keys{Current: bytes.Repeat([]byte{8}, 32)}, time.Now)
	if forged, _ := other.Stamp(h); l.Stamped(forged, h) {
		t.Fatal("a stamp under another key matched")
	}
	for _, junk := range [][]byte{nil, []byte("secrets-audit-stamp-v1\n"), stamp[:len(stamp)-2]} {
		if l.Stamped(junk, h) {
			t.Fatalf("junk %q matched", junk)
		}
	}

	orig, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	edited := bytes.Replace(orig, []byte(`"secret":"s1"`), []byte(`"secret":"s9"`), 1)
	if len(edited) != len(orig) || bytes.Equal(edited, orig) {
		t.Fatal("the edit must change a byte and keep the size")
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(edited, 0)
	f.Close()
	os.Chtimes(p, fi.ModTime(), fi.ModTime())
	if now, _ := os.Stat(p); now.Size() != fi.Size() || !now.ModTime().Equal(fi.ModTime()) {
		t.Fatal("size and mtime should look untouched")
	}
	if l.Stamped(stamp, h) {
		t.Fatal("an in-place edit with the mtime put back matched the stamp")
	}

	// A copy of the stamped bytes put in the log's place is a new file.
	os.WriteFile(p+".copy", orig, 0o600)
	os.Rename(p+".copy", p)
	if l.Stamped(stamp, h) {
		t.Fatal("a replaced file matched the stamp")
	}

	stamp, _ = l.Stamp(h)
	if _, err := l.Append(h, audit.Entry{Event: "lease_grant"}); err != nil {
		t.Fatal(err)
	}
	if l.Stamped(stamp, h) {
		t.Fatal("an appended log matched the stamp taken before")
	}
}
