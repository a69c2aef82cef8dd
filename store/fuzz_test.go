package store

import (
	"encoding/json"
	"errors"
	"testing"
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

// FuzzParseSecrets: the secrets.age decoder (both versions) never panics, fails only with
// ErrCorrupt, and what it accepts survives a write and a read.
func FuzzParseSecrets(f *testing.F) {
	f.Add([]byte(`{"version":2,"generation":3,"secrets":{"k":{"value":"RkFLRQ==","created_at":"2026-11-28T12:00:00Z","updated_at":"2026-11-28T12:00:00Z","canary":true}}}`))
	f.Add([]byte(`{"secrets":{"github_token":{"name":"github_token","value":"FAKE","last_rotated":null}}}`))
	f.Add([]byte(`{"version":3}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseSecrets("secrets.age", data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not store_corrupt", err)
			}
			return
		}
		s.Version = SecretsVersion
		b, err := json.Marshal(s)
		if err != nil {
			return // a time outside what RFC 3339 can write
		}
		again, err := parseSecrets("secrets.age", b)
		if err != nil || len(again.Secrets) != len(s.Secrets) {
			t.Fatalf("does not round-trip: %v", err)
		}
	})
}
