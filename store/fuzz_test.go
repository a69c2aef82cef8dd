package store

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzParseConfig: no panic, and every failure is a ConfigError (invalid_config).
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"max_lease_ttl":"2d","heartbeat":{"enabled":true,"url":"https://x","fail_action":{"wipe_store":true}}}`))
	f.Add([]byte(`{"heartbeat":null,"lock_timeout":"1s"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := ParseConfig("config.json", "/d", data)
		if err != nil && !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("%q: error %v is not invalid_config", data, err)
		}
	})
}

// FuzzParseSecrets: the secrets.age decoder (every version) never panics, fails only with
// ErrCorrupt, and what it accepts survives a write in version 3 and a read back, whole
// and one secret at a time.
func FuzzParseSecrets(f *testing.F) {
	key := bytes.Repeat([]byte{5}, 32)
	f.Add([]byte(`{"version":2,"generation":3,"secrets":{"k":{"value":"RkFLRQ==","created_at":"2026-11-28T12:00:00Z","updated_at":"2026-11-28T12:00:00Z","canary":true}}}`))
	f.Add([]byte(`{"secrets":{"github_token":{"name":"github_token","value":"FAKE","last_rotated":null}}}`))
	f.Add([]byte(`{"version":3}`))
	sample := &Secrets{Generation: 4, Secrets: map[string]*Secret{"a": {Value: []byte("FAKE-a")}, "b/c": {Value: []byte("FAKE\x00b"), RotateVia: "echo \"x\"", Canary: true}}}
	f.Add(encodeSecretsV3(sample, key))
	sample.Policy = []byte(`{"deliver":["exec"]}`)
	sample.Secrets["a"].Policy = []byte(`{"max_uses":1,"exec":[["npm","test"]]}`)
	f.Add(encodeSecretsV3(sample, key))
	f.Add([]byte("{\"version\":2,\"generation\":1,\"policy\":{\n\"approve\" : \"once\"},\"secrets\":{\"k\":{\"value\":\"RkFLRQ==\",\"policy\":{ \"max_uses\":\n1}}}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseSecrets("secrets.age", data, key)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not store_corrupt", err)
			}
			return
		}
		for _, sec := range s.Secrets {
			for _, t0 := range []time.Time{sec.CreatedAt, sec.UpdatedAt} {
				if y := t0.Year(); y < 0 || y > 9999 {
					return // a time outside what RFC 3339 can write
				}
			}
		}
		b := encodeSecretsV3(s, key)
		again, err := parseSecrets("secrets.age", b, key)
		if err != nil || len(again.Secrets) != len(s.Secrets) || again.Generation != s.Generation {
			t.Fatalf("does not round-trip: %v", err)
		}
		for name, want := range s.Secrets {
			got, h, err := lookupSecretV3("secrets.age", bytes.NewReader(b), int64(len(b)), name, key)
			if err != nil || h.generation != s.Generation || !bytes.Equal(got.Value, want.Value) || got.RotateVia != want.RotateVia || got.Canary != want.Canary || !jsonEqual(got.Policy, want.Policy) {
				t.Fatalf("lookup %q: %+v %v", name, got, err)
			}
		}
	})
}

// jsonEqual compares two JSON values as compact text.
func jsonEqual(a, b []byte) bool {
	return string(appendCompact(nil, a)) == string(appendCompact(nil, b)) || len(a) == 0 && len(b) == 0
}
