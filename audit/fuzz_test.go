package audit_test

import (
	"os"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/audit"
)

// FuzzLine feeds arbitrary bytes as a log's last line: Check, Tail and Verify must never
// panic, and a line that is not the one written must never pass as the pinned head.
func FuzzLine(f *testing.F) {
	f.Add([]byte(`{"seq":2,"ts":"2026-11-28T12:00:02Z","event":"x","ok":true,"actor":{"pid":1,"ppid":1,"parent":"sh","uid":0,"cwd":"/"},"prev":"sha256:00","mac":"hmac-sha256:00"}`))
	f.Add([]byte("{}"))
	f.Add([]byte(`,"mac":"hmac-sha256:`))
	f.Fuzz(func(t *testing.T, line []byte) {
		l, p := newLog(t)
		pinned := fill(t, l, 2)
		good, _ := os.ReadFile(p)
		data := append(append([]byte(nil), good...), line...)
		data = append(data, '\n')
		os.WriteFile(p, data, 0o600)
		if _, _, err := l.Check(pinned); err == nil && len(line) > 0 {
			t.Fatalf("an appended line passed the head check: %q", line)
		}
		l.Tail(5, audit.Filter{Since: time.Unix(0, 0)})
		if _, err := l.Verify(pinned); err == nil {
			t.Fatalf("an appended line verified: %q", line)
		}
	})
}
