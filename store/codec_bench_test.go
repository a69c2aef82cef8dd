package store

import (
	"testing"
	"time"

	"github.com/agent-secrets/secrets/lease"
)

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
	id, _, _ := newIdentity(false, time.Now())
	ct, _ := id.encrypt(data)
	b.Run("encrypt", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			id.encrypt(data)
		}
	})
	b.Run("decrypt", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			id.decrypt("x", ct)
		}
	})
}
