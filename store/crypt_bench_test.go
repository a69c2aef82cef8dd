package store

import (
	"bytes"
	"testing"
	"time"
)

// BenchmarkStateCrypto1000: age encryption and decryption of a document the size of
// 1,000 leases (about 190 KB), what every write of leases.age pays beside the codec.
func BenchmarkStateCrypto1000(b *testing.B) {
	data := bytes.Repeat([]byte(`{"id":"lease_01JBENCH0000000000000000000","secret":"github_token","client_id":"claude-refactor-123","created_at":"2026-11-28T12:00:00.123456789Z","expires_at":"2026-11-28T13:00:00.123456789Z","ttl":"1h","kind":"lease"},`), 1000)
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
