package audit_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/audit"
)

// appendAt appends n entries after pos and returns the position after them.
func appendAt(t *testing.T, l *audit.Log, pos audit.Position, n int) audit.Position {
	t.Helper()
	var entries []audit.Entry
	for i := 0; i < n; i++ {
		entries = append(entries, audit.Entry{Event: "lease_grant", Secret: fmt.Sprintf("s%d", pos.Seq+uint64(i)), OK: true, State: []byte(`{"n":1}`)})
	}
	b, head, err := l.Prepare(pos.Head(), entries...)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Write(); err != nil {
		t.Fatal(err)
	}
	return audit.Position{Seq: head.Seq, Hash: head.Hash, Offset: b.End}
}

func readAll(t *testing.T, l *audit.Log, from audit.Position) ([]uint64, audit.Position, error) {
	t.Helper()
	var seqs []uint64
	end, _, err := l.Read(from, func(line audit.Line) error {
		seqs = append(seqs, line.Seq)
		return nil
	})
	return seqs, end, err
}

// TestReadFromAPosition: Read returns exactly the lines after a position, with the
// state payload intact, and refuses a position the segment does not hold.
func TestReadFromAPosition(t *testing.T) {
	l, p := newLog(t)
	mid := appendAt(t, l, audit.Position{}, 3)
	end := appendAt(t, l, mid, 2)
	seqs, got, err := readAll(t, l, mid)
	if err != nil || fmt.Sprint(seqs) != "[4 5]" || got != end {
		t.Fatalf("read from seq 3: %v %+v %v", seqs, got, err)
	}
	if seqs, _, err := readAll(t, l, audit.Position{}); err != nil || len(seqs) != 5 {
		t.Fatalf("read from the start: %v %v", seqs, err)
	}
	if !bytes.Contains(must(os.ReadFile(p)), []byte(`"state":{"n":1}`)) {
		t.Fatal("the state payload is not in the line")
	}
	for _, bad := range []audit.Position{
		{Seq: 3, Hash: mid.Hash, Offset: mid.Offset - 1},
		{Seq: 2, Hash: mid.Hash, Offset: mid.Offset},
		{Seq: 3, Hash: "sha256:x", Offset: mid.Offset},
		{Seq: 9, Hash: "sha256:x", Offset: end.Offset + 10},
	} {
		if _, _, err := readAll(t, l, bad); !errors.Is(err, audit.ErrNoPosition) {
			t.Errorf("position %+v: %v", bad, err)
		}
	}
	// An edited line after the position is tampering; a torn last line is not.
	ls := lines(t, p)
	ls[4] = strings.Replace(ls[4], `"s4"`, `"s9"`, 1)
	writeLines(t, p, ls)
	if _, _, err := readAll(t, l, mid); tamperSeq(t, err) != 5 {
		t.Fatal("the edit was not found at seq 5")
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestReadStopsBeforeATornLine: a crash mid-append leaves a line Read neither counts nor
// fails on, and reports.
func TestReadStopsBeforeATornLine(t *testing.T) {
	l, p := newLog(t)
	end := appendAt(t, l, audit.Position{}, 2)
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"seq":3,"ts":"20`)
	f.Close()
	got, torn, err := l.Read(audit.Position{}, func(audit.Line) error { return nil })
	if err != nil || got != end || torn != 17 {
		t.Fatalf("%+v %d %v", got, torn, err)
	}
}

// TestStampV2: fixed length whatever the numbers, the head and cursor round-trip, another
// key or an edit fails, the older release's stamp and an empty note are told apart, and
// any write to the log breaks Matches.
func TestStampV2(t *testing.T) {
	l, p := newLog(t)
	end := appendAt(t, l, audit.Position{}, 3)
	s, err := l.StampNow(end.Head(), 12345)
	if err != nil {
		t.Fatal(err)
	}
	b := s.Encode(key)
	if len(b) != audit.StampSize {
		t.Fatalf("stamp is %d bytes, want %d", len(b), audit.StampSize)
	}
	if zero := (audit.StampV2{}).Encode(key); len(zero) != audit.StampSize {
		t.Fatalf("an empty stamp is %d bytes", len(zero))
	}
	got, err := audit.DecodeStamp(append(b, "trailing bytes of a longer old note"...), key)
	if err != nil || got != s {
		t.Fatalf("decode: %+v %v", got, err)
	}
	if _, err := audit.DecodeStamp(b, bytes.Repeat([]byte{9}, 32)); err == nil {
		t.Fatal("a stamp under another key decoded")
	}
	edited := bytes.Replace(b, []byte(fmt.Sprintf("%020d", 3)), []byte(fmt.Sprintf("%020d", 2)), 1)
	if _, err := audit.DecodeStamp(edited, key); err == nil {
		t.Fatal("an edited stamp decoded")
	}
	if _, err := audit.DecodeStamp(nil, key); !errors.Is(err, audit.ErrNoStamp) {
		t.Fatalf("empty: %v", err)
	}
	if _, err := audit.DecodeStamp([]byte("secrets-audit-stamp-v1 1 2 3\n"), key); !errors.Is(err, audit.ErrLegacyStamp) {
		t.Fatalf("legacy: %v", err)
	}
	if !l.Matches(s) {
		t.Fatal("an untouched log does not match")
	}
	appendAt(t, l, end, 1)
	if l.Matches(s) {
		t.Fatal("an appended log matches the stamp taken before")
	}
	os.WriteFile(p+".copy", must(os.ReadFile(p)), 0o600)
	os.Rename(p+".copy", p)
	if now, _ := l.StampNow(s.Head, 0); l.Matches(s) || now.Ino == s.Ino {
		t.Fatal("a copy put in the log's place matches")
	}
}

// TestCheckWindowSweeps: windows started from the cursor each returns cover the whole
// segment in size-bounded steps, and an edited line is found by the window that holds it.
func TestCheckWindowSweeps(t *testing.T) {
	l, p := newLog(t)
	appendAt(t, l, audit.Position{}, 200)
	fi, _ := os.Stat(p)
	const size = 4096
	cursor, steps := int64(0), 0
	for {
		next, err := l.CheckWindow(cursor, size)
		if err != nil {
			t.Fatal(err)
		}
		steps++
		if next == 0 {
			break
		}
		if next <= cursor {
			t.Fatalf("window at %d did not move on (%d)", cursor, next)
		}
		cursor = next
	}
	if want := int(fi.Size()/size) + 1; steps < want-1 || steps > want+1 {
		t.Fatalf("%d windows for %d bytes in %d-byte windows", steps, fi.Size(), size)
	}
	// Edit a line in the middle, keeping its length: the sweep finds it.
	ls := lines(t, p)
	ls[120] = strings.Replace(ls[120], `"ok":true`, `"ok":fals`, 1)
	writeLines(t, p, ls)
	found := false
	for cursor = 0; ; {
		next, err := l.CheckWindow(cursor, size)
		if errors.Is(err, audit.ErrTampered) {
			found = true
			break
		}
		if err != nil || next == 0 {
			break
		}
		cursor = next
	}
	if !found {
		t.Fatal("a sweep did not find the edited line")
	}
}

// TestSealAndReadChain: a sealed segment keeps its lines under its own name, read-only;
// the next append starts a new segment linked to it; Verify follows the chain; a position
// in the sealed segment is read on through the new one; Find reaches both.
func TestSealAndReadChain(t *testing.T) {
	l, _ := newLog(t)
	a := appendAt(t, l, audit.Position{}, 5)
	sg, err := l.Seal(a.Head())
	if err != nil {
		t.Fatal(err)
	}
	if sg.First != 1 || sg.Last != 5 || filepath.Base(sg.Path) != "audit.jsonl.000000000001-000000000005" {
		t.Fatalf("sealed %+v", sg)
	}
	if fi, err := os.Stat(sg.Path); err != nil || fi.Mode().Perm() != 0o400 {
		t.Fatalf("sealed segment mode: %v %v", fi.Mode(), err)
	}
	b := appendAt(t, l, audit.Position{Seq: a.Seq, Hash: a.Hash}, 3)
	if first, _ := l.FirstSeq(); first != 6 {
		t.Fatalf("the new segment starts at %d", first)
	}
	rep, err := l.Verify(b.Head())
	if err != nil || rep.Entries != 8 || rep.Head != b.Head() {
		t.Fatalf("verify the chain: %+v %v", rep, err)
	}
	var seqs []uint64
	mid := audit.Position{Seq: 3, Hash: must2(l.Find(3)).Hash, Offset: 1 << 40}
	end, _, err := l.ReadChain(mid, func(line audit.Line) error { seqs = append(seqs, line.Seq); return nil })
	if err != nil || fmt.Sprint(seqs) != "[4 5 6 7 8]" || end.Seq != 8 {
		t.Fatalf("read the chain from seq 3: %v %+v %v", seqs, end, err)
	}
	if h, err := l.Find(7); err != nil || h.Seq != 7 {
		t.Fatalf("find 7: %+v %v", h, err)
	}
	// A sealed segment removed, or a new segment that does not link to it, breaks the chain.
	os.Chmod(sg.Path, 0o600)
	ls := lines(t, sg.Path)
	writeLines(t, sg.Path, ls[:4])
	if _, err := l.Verify(b.Head()); tamperSeq(t, err) != 5 {
		t.Fatal("a cut sealed segment was not found at seq 5")
	}
	os.Remove(sg.Path)
	if _, err := l.Verify(b.Head()); !errors.Is(err, audit.ErrTampered) {
		t.Fatal("a missing sealed segment was not found")
	}
}

func must2(h audit.Head, err error) audit.Head {
	if err != nil {
		panic(err)
	}
	return h
}

// TestLegacyKeyUpToSince: a converted log verifies its older lines under the key they were
// written with and the rest under the new one; the new key does not verify an old line.
func TestLegacyKeyUpToSince(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	oldKey, newKey := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	old := audit.New(p, audit.Keys{Current: oldKey}, time.Now)
	pos := appendAt(t, old, audit.Position{}, 3)
	conv := audit.New(p, audit.Keys{Current: newKey, Legacy: oldKey, Since: 4}, time.Now)
	end := appendAt(t, conv, pos, 3) // seq 4 under the old key, 5 and 6 under the new
	if _, err := conv.Verify(end.Head()); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.New(p, audit.Keys{Current: newKey}, time.Now).Verify(end.Head()); tamperSeq(t, err) != 1 {
		t.Fatal("the new key alone verified the older lines")
	}
	if _, err := audit.New(p, audit.Keys{Current: newKey, Legacy: oldKey, Since: 3}, time.Now).Verify(end.Head()); tamperSeq(t, err) != 4 {
		t.Fatal("a wrong switch point verified")
	}
}

// TestNewSegmentCreation: the write that creates a segment file sets End to its size; an
// empty batch creates nothing.
func TestNewSegmentCreation(t *testing.T) {
	l, p := newLog(t)
	b, _, _ := l.Prepare(audit.Head{})
	if err := b.Write(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("an empty batch created the log")
	}
	end := appendAt(t, l, audit.Position{}, 1)
	var st syscall.Stat_t
	syscall.Stat(p, &st)
	if end.Offset != st.Size {
		t.Fatalf("End %d, size %d", end.Offset, st.Size)
	}
}
