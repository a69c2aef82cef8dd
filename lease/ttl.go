package lease

import (
	"errors"
	"fmt"
	"time"

	"github.com/agent-secrets/secrets/internal/duration"
)

// ErrInvalidTTL reports a TTL that is not a positive duration.
var ErrInvalidTTL = errors.New("invalid ttl")

// ErrTTLExceedsMax reports a TTL above the store's max_lease_ttl. It is never clamped.
var ErrTTLExceedsMax = errors.New("ttl exceeds max")

// ParseTTL parses a lease TTL: a duration (internal/duration's syntax) greater than zero.
// Errors match ErrInvalidTTL.
func ParseTTL(s string) (time.Duration, error) {
	d, err := duration.Positive(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalidTTL, err)
	}
	return d, nil
}
