package vault

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/envfile"
	"github.com/agent-secrets/secrets/internal/codec"
	"github.com/agent-secrets/secrets/killswitch"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/store"
)

var testKey = bytes.Repeat([]byte{3}, 32)

func sampleState() (*State, []lease.Lease) {
	t := time.Date(2026, 11, 28, 12, 0, 0, 123456789, time.UTC)
	s := &State{
		StoreKey:          "sk1:0123456789abcdef",
		Position:          audit.Position{Seq: 42, Hash: "sha256:abc", Offset: 12345},
		AuditKeySince:     7,
		SecretsGeneration: 9,
		AuditBroken:       "seq 3: \"mac\" mismatch\n",
		AppliedIntent:     "0123abcd",
		KeyCache:          "skc1:00",
		EnvFiles:          []envfile.Record{{Path: "/src/app/.env", SHA256: "sha256:00", LeaseIDs: []string{"lease_02"}, CreatedAt: t}},
		Lockdown:          &killswitch.Lockdown{Since: t, Trigger: "canary", Reason: "canary k used by x"},
		Heartbeat:         &killswitch.Heartbeat{LastCheck: t, LastError: "status 500", Failures: 2},
		Converted:         &Conversion{From: "secrets v2", At: t, Seq: 7},
	}
	leases := []lease.Lease{
		{ID: "lease_01", Secret: "github_token", ClientID: "bot \"q\" \\ é 🔑 \u2028", CreatedAt: t, ExpiresAt: t.Add(time.Hour), TTL: "1h", Kind: lease.KindLease},
		{ID: "lease_02", Secret: "a/b.c-d", ClientID: "x", CreatedAt: t, ExpiresAt: t.Add(time.Minute), TTL: "1m", Kind: lease.KindEnv, Path: "/tmp/a\tb/.env", PID: 4242},
		{ID: "lease_03", Secret: "k", ClientID: "x", CreatedAt: t, ExpiresAt: t, TTL: "1h", Kind: lease.KindExec, PID: 77, PIDStart: 18446744073709551615},
		// Longer than the reader's buffer: a long line is read whole, not taken for a cut.
		{ID: "lease_04", Secret: "k", ClientID: strings.Repeat("long-client ", 3000), CreatedAt: t, ExpiresAt: t.Add(2 * time.Hour), TTL: "2h", Kind: lease.KindLease},
	}
	return s, leases
}

// snapshotBytes reads an encoded snapshot the way a transaction does.
func openBytes(t testing.TB, b []byte, key []byte) *snapshotFile {
	t.Helper()
	line, err := store.LineAt(bytes.NewReader(b), int64(len(b)), 0)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndex(line, []byte(`,"mac":"`))
	s, err := decodeHeader(line[:i])
	if err != nil {
		t.Fatal(err)
	}
	s.MAC = string(line[i+len(`,"mac":"`) : len(line)-len(`"`+leasesOpen)])
	if !store.CheckMAC(s.MAC, key, []byte("secrets state header v1\x00"), line[:i]) {
		t.Fatal("header MAC")
	}
	return &snapshotFile{path: "leases.age", r: bytes.NewReader(b), size: int64(len(b)), bodyStart: int64(len(line) + 1), key: key, state: s}
}

// TestSnapshotRoundTrip: what encodeSnapshot writes reads back exactly, whole and by the
// expired front, and encoding/json reads the same file as the same state.
func TestSnapshotRoundTrip(t *testing.T) {
	s, leases := sampleState()
	b, err := encodeSnapshot(s, leases, testKey)
	if err != nil {
		t.Fatal(err)
	}
	f := openBytes(t, b, testKey)
	got, err := f.leases(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, leases) {
		t.Fatalf("leases\n got %+v\nwant %+v", got, leases)
	}
	want := *s
	want.Leases = nil
	h := *f.state
	if !reflect.DeepEqual(&h, &want) {
		t.Fatalf("header\n got %+v\nwant %+v", h, want)
	}
	if h.Count != 4 || !h.NextExpiry.Equal(leases[0].ExpiresAt) || leases[0].ID != "lease_03" {
		t.Fatalf("count %d next %v first %s", h.Count, h.NextExpiry, leases[0].ID)
	}
	front, err := f.leases(leases[0].ExpiresAt.Add(time.Second))
	if err != nil || len(front) != 1 || front[0].ID != "lease_03" {
		t.Fatalf("front: %+v %v", front, err)
	}
	var ref State
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatalf("encoding/json cannot read the snapshot: %v", err)
	}
	if len(ref.Leases) != 4 || ref.Position != s.Position || ref.Lockdown.Trigger != "canary" {
		t.Fatalf("encoding/json reads %+v", ref)
	}
}

// TestSnapshotBlocks: a snapshot of many leases is checked block by block: a changed
// lease anywhere, a block moved from another snapshot, or a dropped line is refused.
func TestSnapshotBlocks(t *testing.T) {
	s, _ := sampleState()
	m := lease.Manager{Now: time.Now, DefaultTTL: time.Hour, MaxTTL: 48 * time.Hour}
	var leases []lease.Lease
	for i := 0; i < 300; i++ {
		m.Grant(&leases, lease.Request{Secret: "k", ClientID: "c", TTL: fmt.Sprintf("%dm", i+1)})
	}
	b, err := encodeSnapshot(s, leases, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), `"block_mac"`); n != 5 {
		t.Fatalf("%d blocks for 300 leases, want 5", n)
	}
	if got, err := openBytes(t, b, testKey).leases(time.Time{}); err != nil || len(got) != 300 {
		t.Fatalf("%d leases, %v", len(got), err)
	}
	lines := strings.Split(string(b), "\n")
	for what, edit := range map[string]func([]string) []string{
		"a lease changed": func(ls []string) []string {
			ls[200] = strings.Replace(ls[200], `"ttl":"`, `"ttl":"9`, 1)
			return ls
		},
		"a line dropped": func(ls []string) []string { return append(ls[:10:10], ls[11:]...) },
		"blocks swapped": func(ls []string) []string {
			out := append([]string{}, ls[:1]...)
			out = append(out, ls[65:129]...)
			out = append(out, ls[1:65]...)
			return append(out, ls[129:]...)
		},
	} {
		cp := edit(append([]string{}, lines...))
		if _, err := openBytes(t, []byte(strings.Join(cp, "\n")), testKey).leases(time.Time{}); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("%s: %v", what, err)
		}
	}
	// Another snapshot's block does not fit this one's header.
	s2, _ := sampleState()
	s2.Position.Seq++
	b2, _ := encodeSnapshot(s2, leases, testKey)
	l2 := strings.Split(string(b2), "\n")
	cp := append([]string{}, lines...)
	copy(cp[1:65], l2[1:65])
	if _, err := openBytes(t, []byte(strings.Join(cp, "\n")), testKey).leases(time.Time{}); !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("a block from another snapshot: %v", err)
	}
}

// FuzzStateCodec holds the hand-written snapshot codec to encoding/json: whatever header
// it accepts, encoding/json reads identically, and a snapshot it writes reads back exactly
// both ways.
func FuzzStateCodec(f *testing.F) {
	s, leases := sampleState()
	b, _ := encodeSnapshot(s, leases, testKey)
	f.Add(b[:bytes.IndexByte(b, '\n')])
	f.Add([]byte(`{"version":3,"store_key":"","position":{"seq":0,"hash":"","offset":0},"secrets_generation":0,"count":0,"next_expiry":"0001-01-01T00:00:00Z"`))
	f.Fuzz(func(t *testing.T, head []byte) {
		got, err := decodeHeader(head)
		if err != nil {
			return
		}
		var ref State
		if err := json.Unmarshal(append(append([]byte(nil), head...), '}'), &ref); err != nil {
			t.Fatalf("we accepted what encoding/json rejects: %v", err)
		}
		if len(got.EnvFiles) == 0 {
			got.EnvFiles = nil
		}
		if len(ref.EnvFiles) == 0 {
			ref.EnvFiles = nil
		}
		if !reflect.DeepEqual(got, &ref) {
			t.Fatalf("decoded differently\n ours %+v\n json %+v", got, &ref)
		}
		enc, err := encodeSnapshot(got, nil, testKey)
		if err != nil {
			return // a time outside what RFC 3339 can write; encoding/json refuses it too
		}
		again := openBytes(t, enc, testKey).state
		again.MAC, got.MAC = "", ""
		if len(again.EnvFiles) == 0 {
			again.EnvFiles = nil
		}
		if !reflect.DeepEqual(again, got) {
			t.Fatalf("own output does not round-trip:\n%s", enc)
		}
	})
}

func BenchmarkStateCodec1000(b *testing.B) {
	m := lease.Manager{Now: time.Now, DefaultTTL: time.Hour, MaxTTL: 24 * time.Hour}
	s, _ := sampleState()
	var leases []lease.Lease
	for i := 0; i < 1000; i++ {
		m.Grant(&leases, lease.Request{Secret: "github_token", ClientID: "claude-refactor-123", TTL: "1h"})
	}
	data, _ := encodeSnapshot(s, leases, testKey)
	b.Run("encode", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			encodeSnapshot(s, leases, testKey)
		}
	})
	b.Run("decode", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			openBytes(b, data, testKey).leases(time.Time{})
		}
	})
}

// TestConfigCodec holds appendConfig to encoding/json, which replay's entries use, and
// decodeConfig to reading both back.
func TestConfigCodec(t *testing.T) {
	c := &AppliedConfig{DefaultLeaseTTL: time.Hour, MaxLeaseTTL: 48 * time.Hour, HeartbeatEnabled: true, HeartbeatURL: "https://x.example/\"h\"",
		HeartbeatInterval: time.Minute, HeartbeatTimeout: 10 * time.Second, FailuresBefore: 3,
		FailAction: store.FailAction{RevokeAll: true, WipeStore: true}, CanaryAction: store.FailAction{RotateAll: true},
		RotationTimeout: 30 * time.Second, AuditRotateSize: 8 << 20,
		At: time.Date(2026, 12, 1, 12, 0, 0, 120000000, time.UTC)}
	want, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if got := appendConfig(nil, c); string(got) != string(want) {
		t.Fatalf("appendConfig:\n%s\nencoding/json:\n%s", got, want)
	}
	var back AppliedConfig
	if err := decodeConfig(codec.NewDecoder(want), &back); err != nil || back != *c {
		t.Fatalf("decodeConfig: %+v %v", back, err)
	}
}
