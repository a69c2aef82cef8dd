package duration_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/internal/duration"
)

func TestParse(t *testing.T) {
	good := map[string]time.Duration{
		"30m": 30 * time.Minute, "1h30m": 90 * time.Minute, "2d": 48 * time.Hour,
		"1d12h": 36 * time.Hour, "90s": 90 * time.Second, "0": 0,
	}
	for in, want := range good {
		if got, err := duration.Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "1", "abc", "-1d", "1d-1h", "1h2d", "1.5d", "99999999d"} {
		_, err := duration.Parse(in)
		if !errors.Is(err, duration.ErrInvalid) || !strings.Contains(err.Error(), `"`+in+`": use a form like 30m, 1h30m or 2d`) {
			t.Errorf("Parse(%q) = %v", in, err)
		}
	}
}

func TestPositive(t *testing.T) {
	for _, in := range []string{"0", "0s", "-5m"} {
		if _, err := duration.Positive(in); !errors.Is(err, duration.ErrInvalid) || !strings.Contains(err.Error(), "greater than zero") {
			t.Errorf("Positive(%q) = %v", in, err)
		}
	}
	if d, err := duration.Positive("1d"); err != nil || d != 24*time.Hour {
		t.Errorf("Positive(1d) = %v, %v", d, err)
	}
}

func TestFormat(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Hour: "1h", 24 * time.Hour: "24h", 90 * time.Minute: "1h30m", 30 * time.Second: "30s", 30 * time.Minute: "30m"} {
		if got := duration.Format(d); got != want {
			t.Errorf("Format(%v) = %q, want %q", d, got, want)
		}
	}
}

// FuzzParse: no panic, and whatever parses formats back to the same duration.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"30m", "1h30m", "2d", "1d12h", "0", "-1d", "1.5h", "d", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := duration.Parse(s)
		if err != nil {
			return
		}
		back, err := time.ParseDuration(duration.Format(d))
		if err != nil || back != d {
			t.Fatalf("%q -> %v -> %q -> %v, %v", s, d, duration.Format(d), back, err)
		}
	})
}
