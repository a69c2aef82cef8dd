package codec_test

import (
	"testing"
	"time"

	"github.com/agent-secrets/secrets/internal/codec"
)

// TestParseTimeAgreesWithUnmarshalText checks the fast path at the edges of each field.
func TestParseTimeAgreesWithUnmarshalText(t *testing.T) {
	for _, s := range []string{
		"2026-11-28T12:00:00Z", "2026-11-28T12:00:00.5Z", "2026-11-28T12:00:00.123456789Z",
		"2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2000-02-29T00:00:00Z",
		"2026-04-31T00:00:00Z", "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-01-00T00:00:00Z",
		"2026-01-01T24:00:00Z", "2026-01-01T23:60:00Z", "2026-01-01T23:59:60Z", "2026-01-01T23:59:59.Z",
		"2026-01-01T23:59:59.1234567890Z", "2026-01-01T23:59:59+01:00", "0000-01-01T00:00:00Z",
	} {
		var want, got time.Time
		werr := want.UnmarshalText([]byte(s))
		gerr := codec.ParseTime(&got, s)
		if (werr == nil) != (gerr == nil) || !got.Equal(want) || got.Location() != want.Location() {
			t.Errorf("%s: got %v, %v; UnmarshalText %v, %v", s, got, gerr, want, werr)
		}
	}
}
