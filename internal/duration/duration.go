// Package duration is the one duration syntax of secrets, for TTLs, config.json, flags
// and tool arguments alike: Go's ("30m", "1h30m", "90s") plus a "d" unit of 24 hours
// ("2d", "1d12h"). One parser means one message for one mistake, wherever it is made.
package duration

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid matches every error of Parse and Positive.
var ErrInvalid = errors.New("invalid duration")

// Parse reads s. Anything but the syntax above (an empty string, a bare number, a
// negative day count) is an error matching ErrInvalid, whose message quotes s and shows
// the accepted forms.
func Parse(s string) (time.Duration, error) {
	rest := s
	var days time.Duration
	if i := strings.IndexByte(rest, 'd'); i >= 0 {
		n, err := strconv.ParseUint(rest[:i], 10, 16)
		if err != nil {
			return 0, invalid(s)
		}
		days = time.Duration(n) * 24 * time.Hour
		rest = rest[i+1:]
		if rest == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(rest)
	if err != nil || strings.HasPrefix(rest, "-") && days > 0 {
		return 0, invalid(s)
	}
	return days + d, nil
}

// Positive is Parse for a duration that must be greater than zero.
func Positive(s string) (time.Duration, error) {
	d, err := Parse(s)
	if err == nil && d <= 0 {
		err = fmt.Errorf("%w %q: must be greater than zero", ErrInvalid, s)
	}
	return d, err
}

func invalid(s string) error {
	return fmt.Errorf("%w %q: use a form like 30m, 1h30m or 2d", ErrInvalid, s)
}

// Format writes d without zero units: 24h, 30m, 1h30m, 90s. Parse reads it back.
func Format(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
