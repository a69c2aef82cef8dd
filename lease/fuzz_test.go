package lease_test

import (
	"testing"
	"time"

	"github.com/agent-secrets/secrets/lease"
)

// FuzzParseDuration: no panic, and whatever parses formats back to the same duration.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"30m", "1h30m", "2d", "1d12h", "0", "-1d", "1.5h", "d", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := lease.ParseDuration(s)
		if err != nil {
			return
		}
		back, err := time.ParseDuration(lease.FormatDuration(d))
		if err != nil || back != d {
			t.Fatalf("%q -> %v -> %q -> %v, %v", s, d, lease.FormatDuration(d), back, err)
		}
	})
}
