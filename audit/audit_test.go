package audit_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/audit"
)

var key = bytes.Repeat([]byte{7}, 32)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { c.t = c.t.Add(time.Second); return c.t }

func newLog(t *testing.T) (*audit.Log, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	c := &clock{t: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
	return audit.New(p, audit.Keys{Current: key}, c.now), p
}

// fill appends n entries one command at a time and returns the pinned head.
func fill(t *testing.T, l *audit.Log, n int) audit.Head {
	t.Helper()
	var h audit.Head
	for i := 0; i < n; i++ {
		var err error
		h, err = l.Append(h, audit.Entry{Event: "lease_grant", Secret: fmt.Sprintf("s%d", i), OK: true})
		if err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func lines(t *testing.T, p string) []string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
}

func writeLines(t *testing.T, p string, ls []string) {
	s := strings.Join(ls, "")
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func tamperSeq(t *testing.T, err error) uint64 {
	t.Helper()
	var te *audit.TamperError
	if !errors.As(err, &te) || !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("want a TamperError, got %v", err)
	}
	return te.Seq
}

func TestAppendChainsAndVerifies(t *testing.T) {
	l, p := newLog(t)
	h := fill(t, l, 5)
	if h.Seq != 5 || !strings.HasPrefix(h.Hash, "sha256:") {
		t.Fatalf("head %+v", h)
	}
	h, err := l.Append(h, audit.Entry{Event: "a", OK: true}, audit.Entry{Event: "b", OK: true})
	if err != nil || h.Seq != 7 {
		t.Fatalf("batch append: %+v %v", h, err)
	}
	rep, err := l.Verify(h)
	if err != nil || rep.Entries != 7 || rep.Head != h {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	got, _, err := l.Check(h)
	if err != nil || got != h {
		t.Fatalf("check: %+v %v", got, err)
	}
	first := lines(t, p)[0]
	if !strings.HasPrefix(first, `{"seq":1,"txn":1,"ts":"2026-11-28T12:00:01Z","event":"lease_grant"`) ||
		!strings.Contains(first, `"prev":"sha256:0000000000000000000000000000000000000000000000000000000000000000"`) {
		t.Errorf("first line %s", first)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
}

func TestCheckAcceptsLinesAfterThePin(t *testing.T) {
	// A command that crashed after its append but before pinning leaves lines after the pin.
	l, _ := newLog(t)
	pinned := fill(t, l, 3)
	h, err := l.Append(pinned, audit.Entry{Event: "x"}, audit.Entry{Event: "y"})
	if err != nil {
		t.Fatal(err)
	}
	got, torn, err := l.Check(pinned)
	if err != nil || torn != 0 || got != h {
		t.Fatalf("check: %+v %d %v", got, torn, err)
	}
}

// TestCheckFindsTornTail: Check and Verify report a torn last line without calling it
// tampering or changing the file; CutTorn backs the log up and cuts it.
func TestCheckFindsTornTail(t *testing.T) {
	l, p := newLog(t)
	pinned := fill(t, l, 3)
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"seq":4,"ts":"20`)
	f.Close()
	before, _ := os.ReadFile(p)
	got, torn, err := l.Check(pinned)
	if err != nil || got != pinned || torn != 17 {
		t.Fatalf("check: %+v %d %v", got, torn, err)
	}
	if rep, err := l.Verify(pinned); err != nil || rep.Torn != 17 || rep.Head != pinned {
		t.Fatalf("verify of a torn log: %+v %v", rep, err)
	}
	if after, _ := os.ReadFile(p); !bytes.Equal(after, before) {
		t.Fatal("Check or Verify changed the log")
	}
	repair, err := l.CutTorn(torn)
	if err != nil || repair.Dropped != 17 {
		t.Fatalf("cut: %+v %v", repair, err)
	}
	if kept, _ := os.ReadFile(repair.Backup); !bytes.Equal(kept, before) {
		t.Error("backup is not the log as found")
	}
	if rep, err := l.Verify(pinned); err != nil || rep.Torn != 0 {
		t.Fatalf("verify after repair: %+v %v", rep, err)
	}
}

func TestCheckDetectsTampering(t *testing.T) {
	cases := map[string]struct {
		edit func([]string) []string
		seq  uint64
	}{
		"edited last line": {func(ls []string) []string {
			ls[9] = strings.Replace(ls[9], `"ok":true`, `"ok":false`, 1)
			return ls
		}, 10},
		"last line deleted": {func(ls []string) []string { return ls[:9] }, 10},
		"tail cut":          {func(ls []string) []string { return ls[:4] }, 5},
		"log emptied":       {func(ls []string) []string { return []string{""} }, 10},
		"forged line appended": {func(ls []string) []string {
			return append(ls, strings.Replace(ls[9], `"seq":10`, `"seq":11`, 1))
		}, 10},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			l, p := newLog(t)
			pinned := fill(t, l, 10)
			writeLines(t, p, tc.edit(lines(t, p)))
			if name == "log emptied" {
				os.WriteFile(p, nil, 0o600)
			}
			before, _ := os.ReadFile(p)
			_, _, err := l.Check(pinned)
			if seq := tamperSeq(t, err); seq != tc.seq {
				t.Errorf("seq %d, want %d (%v)", seq, tc.seq, err)
			}
			if after, _ := os.ReadFile(p); !bytes.Equal(before, after) {
				t.Error("check changed a tampered log")
			}
		})
	}
}

// TestVerifyFindsEveryTampering edits, deletes and swaps each line of a log in turn.
func TestVerifyFindsEveryTampering(t *testing.T) {
	l, p := newLog(t)
	pinned := fill(t, l, 30)
	orig := lines(t, p)
	check := func(what string, ls []string, want uint64) {
		t.Helper()
		writeLines(t, p, ls)
		_, err := l.Verify(pinned)
		if err == nil {
			t.Fatalf("%s: not detected", what)
		}
		if seq := tamperSeq(t, err); seq != want {
			t.Errorf("%s: first bad seq %d, want %d (%v)", what, seq, want, err)
		}
	}
	for i := range orig {
		ls := append([]string(nil), orig...)
		ls[i] = strings.Replace(ls[i], "lease_grant", "lease_grabt", 1)
		check(fmt.Sprintf("edit line %d", i+1), ls, uint64(i+1))

		ls = append(append([]string(nil), orig[:i]...), orig[i+1:]...)
		check(fmt.Sprintf("delete line %d", i+1), ls, uint64(i+1))

		if i+1 < len(orig) {
			ls = append([]string(nil), orig...)
			ls[i], ls[i+1] = ls[i+1], ls[i]
			check(fmt.Sprintf("swap lines %d,%d", i+1, i+2), ls, uint64(i+1))
		}
	}
	for n := 1; n <= 10; n++ {
		check(fmt.Sprintf("cut %d", n), orig[:len(orig)-n], uint64(len(orig)-n+1))
	}
	// Re-chained by someone without the key: every hash is right, no MAC is.
	other := audit.New(p+".forged", audit.Keys{Current: bytes.Repeat([]byte{8}, 32)}, time.Now)
	fill(t, other, 30)
	forged, _ := os.ReadFile(p + ".forged")
	os.WriteFile(p, forged, 0o600)
	if seq := tamperSeq(t, func() error { _, err := l.Verify(pinned); return err }()); seq != 1 {
		t.Errorf("re-chained log: seq %d", seq)
	}
}

func TestTailReadsFromTheEnd(t *testing.T) {
	l, _ := newLog(t)
	h := fill(t, l, 100)
	l.Append(h, audit.Entry{Event: "lease_denied", Secret: "s3", ClientID: "bob", Code: "secret_not_found"})
	got, err := l.Tail(3, audit.Filter{})
	if err != nil || len(got) != 3 || got[0].Seq != 99 || got[2].Seq != 101 {
		t.Fatalf("tail 3: %v %v", got, err)
	}
	got, _ = l.Tail(10, audit.Filter{Secret: "s3"})
	if len(got) != 2 || got[0].Event != "lease_grant" || got[1].Event != "lease_denied" {
		t.Fatalf("secret filter: %+v", got)
	}
	got, _ = l.Tail(10, audit.Filter{ClientID: "bob", Event: "lease_denied"})
	if len(got) != 1 || got[0].Code != "secret_not_found" {
		t.Fatalf("client+event filter: %+v", got)
	}
	got, _ = l.Tail(1000, audit.Filter{Since: got[0].TS.Add(-10500 * time.Millisecond)})
	if len(got) != 11 {
		t.Fatalf("since: %d entries", len(got))
	}
}

func TestResetKeepsTheOldLog(t *testing.T) {
	l, p := newLog(t)
	fill(t, l, 3)
	old, _ := os.ReadFile(p)
	moved, _, start, err := l.Reset()
	if err != nil {
		t.Fatal(err)
	}
	if kept, _ := os.ReadFile(moved); !bytes.Equal(kept, old) {
		t.Fatal("moved log differs")
	}
	h, err := l.Append(start, audit.Entry{Event: audit.EventReset, OK: true})
	if err != nil || h.Seq != 1 {
		t.Fatal(err)
	}
	if !strings.Contains(lines(t, p)[0], `"prev":"`+start.Hash+`"`) {
		t.Error("new log does not link to the old file's hash")
	}
	if _, err := l.Verify(h); err != nil {
		t.Fatalf("verify new log: %v", err)
	}
	// Only a reset entry may start a log with a prev other than zero.
	_, p2 := newLog(t)
	l2 := audit.New(p2, audit.Keys{Current: key}, time.Now)
	h2, _ := l2.Append(start, audit.Entry{Event: "lease_grant"})
	if _, err := l2.Verify(h2); tamperSeq(t, err) != 1 {
		t.Error("a log that starts mid-chain verified")
	}
}

func TestDetectAgent(t *testing.T) {
	for env, want := range map[string]string{
		"CLAUDECODE=1": "claude-code", "CODEX_SANDBOX=seatbelt": "codex", "CURSOR_TRACE_ID=x": "cursor",
		"GEMINI_CLI=1": "gemini-cli", "AI_AGENT=my-bot": "my-bot", "CLAUDECODE=": "", "PATH=/bin": "",
	} {
		if got := audit.DetectAgent([]string{env}); got != want {
			t.Errorf("%s: %q, want %q", env, got, want)
		}
	}
}
