package vault

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/envfile"
	"github.com/agent-secrets/secrets/killswitch"
	"github.com/agent-secrets/secrets/lease"
)

func sampleState() *State {
	t := time.Date(2026, 11, 28, 12, 0, 0, 123456789, time.UTC)
	return &State{
		Version:     StateVersion,
		AuditHead:   audit.Head{Seq: 42, Hash: "sha256:abc"},
		AuditBroken: "seq 3: \"mac\" mismatch\n",
		EnvFiles:    []envfile.Record{{Path: "/src/app/.env", SHA256: "sha256:00", LeaseIDs: []string{"lease_02"}, CreatedAt: t}},
		Lockdown:    &killswitch.Lockdown{Since: t, Trigger: "canary", Reason: "canary k used by x"},
		Heartbeat:   &killswitch.Heartbeat{LastCheck: t, LastError: "status 500", Failures: 2},
		Leases: []lease.Lease{
			{ID: "lease_01", Secret: "github_token", ClientID: "bot \"q\" \\ é 🔑 \u2028", CreatedAt: t, ExpiresAt: t.Add(time.Hour), TTL: "1h", Kind: lease.KindLease},
			{ID: "lease_02", Secret: "a/b.c-d", ClientID: "x", CreatedAt: t, ExpiresAt: t.Add(time.Minute), TTL: "1m", Kind: lease.KindEnv, Path: "/tmp/a\tb/.env", PID: 4242},
			{ID: "lease_03", Secret: "k", ClientID: "x", CreatedAt: t, ExpiresAt: t, TTL: "1h", Kind: lease.KindExec, PID: 77, PIDStart: 18446744073709551615},
		},
	}
}

func TestStateCodecRoundTrip(t *testing.T) {
	want := sampleState()
	b, err := encodeState(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeState("leases.age", b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip\n got %+v\nwant %+v", got, want)
	}
	var ref State
	if err := json.Unmarshal(b, &ref); err != nil || !reflect.DeepEqual(&ref, want) {
		t.Fatalf("encoding/json reads our bytes differently: %v\n%+v", err, ref)
	}
}

func TestStateCodecReadsEncodingJSON(t *testing.T) {
	want := sampleState()
	b, _ := json.MarshalIndent(want, "\t", "   ")
	got, err := decodeState("leases.age", b)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%v\n%+v", err, got)
	}
}

func TestStateCodecRejects(t *testing.T) {
	for _, in := range []string{
		``, `[]`, `{`, `{"version":1,"leases":[]`, `{"version":1,"leases":[]} x`,
		`{"version":1,"leases":[{"id":1}]}`, `{"version":1,"leases":[{"color":"red"}]}`,
		`{"version":1,"surprise":true}`, `{"version":"1"}`, `{"version":2}`,
		`{"version":1,"leases":[{"pid":1.5}]}`, `{"version":1,"leases":[{"created_at":"yesterday"}]}`,
		`{"version":1,"leases":[{"id":"\x01"}]}`, `{"version":1,"leases":[{"id":"\q"}]}`,
	} {
		if _, err := decodeState("leases.age", []byte(in)); err == nil {
			t.Errorf("accepted %q", in)
		}
	}
}

// FuzzStateCodec holds the hand-written codec to encoding/json: whatever it accepts,
// encoding/json reads identically, and its own output reads back exactly both ways.
func FuzzStateCodec(f *testing.F) {
	b, _ := encodeState(sampleState())
	f.Add(b)
	b, _ = json.Marshal(sampleState())
	f.Add(b)
	f.Add([]byte(`{"version":1,"leases":[{"id":"\ud83d\udd11\ud800x\u00e9"}],"leases":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeState("leases.age", data)
		if err != nil {
			return
		}
		var ref State
		if err := json.Unmarshal(data, &ref); err != nil {
			t.Fatalf("we accepted what encoding/json rejects: %v", err)
		}
		normalize(got)
		normalize(&ref)
		if !reflect.DeepEqual(got, &ref) {
			t.Fatalf("decoded differently\n ours %+v\n json %+v", got, &ref)
		}
		enc, err := encodeState(got)
		if err != nil {
			return // a time outside what RFC 3339 can write; encoding/json refuses it too
		}
		again, err := decodeState("leases.age", enc)
		if err == nil {
			normalize(again)
		}
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("own output does not round-trip: %v\n%s", err, enc)
		}
	})
}

// normalize makes an empty env_files nil: omitempty writes neither, as in encoding/json.
func normalize(s *State) {
	if len(s.EnvFiles) == 0 {
		s.EnvFiles = nil
	}
}

func BenchmarkStateCodec1000(b *testing.B) {
	m := lease.Manager{Now: time.Now, DefaultTTL: time.Hour, MaxTTL: 24 * time.Hour}
	st := &State{Version: StateVersion}
	for i := 0; i < 1000; i++ {
		m.Grant(&st.Leases, lease.Request{Secret: "github_token", ClientID: "claude-refactor-123", TTL: "1h"})
	}
	data, _ := encodeState(st)
	b.Run("encode", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			encodeState(st)
		}
	})
	b.Run("decode", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			decodeState("x", data)
		}
	})
}
