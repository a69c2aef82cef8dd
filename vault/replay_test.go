package vault

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/lease"
)

// FuzzReplay feeds arbitrary log tails to replay, as a damaged or hostile log could (the
// lines reach replay only after their MACs check out, but replay must not trust that):
// it never panics, and whatever state it builds writes as a snapshot that reads back the
// same.
func FuzzReplay(f *testing.F) {
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	l := lease.Lease{ID: "lease_01", Secret: "k", ClientID: "c", CreatedAt: at, ExpiresAt: at.Add(time.Hour), TTL: "1h", Kind: lease.KindExec, PID: 7, PIDStart: 9}
	grant, _ := leaseChange(l)
	for _, e := range []audit.Entry{
		{Seq: 1, Txn: 1, Event: "lease_grant", OK: true, LeaseID: l.ID, State: grant},
		{Seq: 2, Txn: 3, Event: "lease_revoke", OK: true, LeaseID: l.ID},
		{Seq: 3, Txn: 3, Event: "killswitch", OK: true, State: change{Intent: "ab"}.raw()},
		{Seq: 4, Event: "env_write", OK: true, State: []byte(`{"env_file":{"path":"/p/.env","sha256":"sha256:00","lease_ids":["lease_01"],"created_at":"2026-11-28T12:00:00Z"}}`)},
		{Seq: 5, Event: "audit_reset", OK: true, State: []byte(`{"reset_from":{"seq":9,"hash":"sha256:ff"}}`)},
	} {
		e.TS, e.Prev = at, "sha256:00"
		b, _ := json.Marshal(e)
		f.Add(b)
	}
	f.Add([]byte(`{"seq":1,"event":"lease_grant","ok":true,"state":{"lease":{"id":"","expires_at":"0001-01-01T00:00:00Z"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tx := &Tx{state: &State{Version: StateVersion}, table: &leaseTable{all: []lease.Lease{}, read: true}}
		for i, line := range bytes.Split(data, []byte("\n")) {
			if tx.apply(audit.Line{Seq: uint64(i + 1), Raw: line}) != nil {
				break
			}
		}
		leases, err := tx.table.leases()
		if err != nil {
			t.Fatal(err)
		}
		b, err := encodeSnapshot(tx.state, leases, testKey)
		if err != nil {
			return // a value no snapshot can hold (a time past year 9999) is refused, not written
		}
		back := openBytes(t, b, testKey)
		got, err := back.leases(time.Time{})
		if err != nil {
			t.Fatalf("the snapshot replay built does not read back: %v", err)
		}
		if len(got) != len(leases) {
			t.Fatalf("%d leases, %d read back", len(leases), len(got))
		}
		want := *tx.state
		want.Leases, want.MAC, want.Count, want.NextExpiry, want.BodySHA256 = nil, "", back.state.Count, back.state.NextExpiry, back.state.BodySHA256
		h := *back.state
		h.MAC = ""
		if !reflect.DeepEqual(normalize(&h), normalize(&want)) {
			t.Fatalf("header\n got %+v\nwant %+v", h, want)
		}
	})
}

// normalize makes nil and empty slices alike, as JSON does.
func normalize(s *State) State {
	c := *s
	if len(c.EnvFiles) == 0 {
		c.EnvFiles = nil
	}
	if len(c.Sealed) == 0 {
		c.Sealed = nil
	}
	return c
}
