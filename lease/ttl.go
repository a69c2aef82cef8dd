package lease

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidTTL reports a TTL that is not a positive duration.
var ErrInvalidTTL = errors.New("invalid ttl")

// ErrTTLExceedsMax reports a TTL above the store's max_lease_ttl. It is never clamped.
var ErrTTLExceedsMax = errors.New("ttl exceeds max")

// ParseDuration parses Go duration syntax ("30m", "1h30m") extended with a "d" unit for
// days of 24 hours ("2d", "1d12h"). It returns an error for anything else, including an
// empty string and bare numbers.
func ParseDuration(s string) (time.Duration, error) {
	rest := s
	var days time.Duration
	if i := strings.IndexByte(rest, 'd'); i >= 0 {
		n, err := strconv.ParseUint(rest[:i], 10, 16)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		rest = rest[i+1:]
		if rest == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(rest)
	if err != nil || strings.HasPrefix(rest, "-") && days > 0 {
		return 0, fmt.Errorf("invalid duration %q (use forms like 30m, 1h30m, 2d)", s)
	}
	return days + d, nil
}

// ParseTTL parses a lease TTL: a duration greater than zero. Errors match ErrInvalidTTL.
func ParseTTL(s string) (time.Duration, error) {
	d, err := ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrInvalidTTL, err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%w: %q must be greater than zero", ErrInvalidTTL, s)
	}
	return d, nil
}

// FormatDuration writes d without zero units: 24h, 30m, 1h30m, 90s.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
