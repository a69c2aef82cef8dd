package audit_test

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
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

// FuzzEncodeEntry holds the hand encoder of entries to encoding/json (without its HTML
// escaping): the same bytes for every entry.
func FuzzEncodeEntry(f *testing.F) {
	f.Add(uint64(3), uint64(4), int64(1764000000), "lease_grant", "k", "lease_01", "bot <\"é\u2028>", true, "", "ttl 30m", 42, "/src/a b", "claude-code", `{"lease":{"id":"x"}}`)
	f.Add(uint64(1), uint64(0), int64(0), "", "", "", "", false, "usage", "\x00\xff", -1, "", "", "")
	f.Fuzz(func(t *testing.T, seq, txn uint64, sec int64, event, secret, leaseID, client string, ok bool, code, detail string, pid int, cwd, agent, state string) {
		e := audit.Entry{Seq: seq, Txn: txn, TS: time.Unix(sec%253402300799, 0).UTC(), Event: event, Secret: secret, LeaseID: leaseID, ClientID: client, OK: ok,
			Code: code, Detail: detail, Actor: audit.Actor{PID: pid, PPID: pid / 2, Parent: client, UID: pid % 7, CWD: cwd, Agent: agent}, Prev: "sha256:00"}
		if json.Valid([]byte(state)) {
			var c bytes.Buffer
			if json.Compact(&c, []byte(state)) == nil && c.Len() > 0 {
				e.State = c.Bytes()
			}
		}
		got, err := audit.EncodeEntry(&e)
		if err != nil {
			return
		}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(&e); err != nil {
			t.Fatal(err)
		}
		if string(got) != strings.TrimSuffix(want.String(), "\n") {
			t.Fatalf("\n ours %s\n json %s", got, want.String())
		}
	})
}
