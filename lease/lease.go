// Package lease holds lease records and the rules that grant, renew, revoke and expire
// them. It is pure logic: it never touches files, and reads time only through Manager.Now.
package lease

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/agent-secrets/secrets/internal/duration"
	names "github.com/agent-secrets/secrets/internal/name"
	"github.com/oklog/ulid/v2"
)

// ErrNotFound reports a lease id that is not active (never granted, revoked or expired).
var ErrNotFound = errors.New("lease not found")

// Kind says how a lease's value left the store.
type Kind string

// The kinds of lease.
const (
	KindLease Kind = "lease" // printed by `secrets lease`
	KindEnv   Kind = "env"   // written to a .env file by `secrets env`
	KindExec  Kind = "exec"  // placed in a child's environment by `secrets exec`
	// KindInject is put by the exec supervisor's proxy into a child's requests to the
	// hosts Path names; the child holds a placeholder.
	KindInject Kind = "inject"
)

// Supervised reports whether the lease is held by an exec supervisor (PID), which
// revocation signals.
func (l Lease) Supervised() bool { return (l.Kind == KindExec || l.Kind == KindInject) && l.PID > 0 }

// Lease is one grant of access to one secret. It never holds the value.
type Lease struct {
	ID        string    `json:"id"`
	Secret    string    `json:"secret"`
	ClientID  string    `json:"client_id"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	TTL       string    `json:"ttl"`
	Kind      Kind      `json:"kind"`
	Path      string    `json:"path,omitempty"`
	PID       int       `json:"pid,omitempty"`
	// PIDStart is the start time of process PID (clock ticks since boot, from
	// /proc/PID/stat), so that a recycled pid is never mistaken for the supervisor.
	PIDStart uint64 `json:"pid_start,omitempty"`
	// UID is the agent user a guarded store granted it to; 0 in a plain store.
	UID int `json:"uid,omitempty"`
}

// Request asks for a lease.
type Request struct {
	Secret   string
	ClientID string
	TTL      string // "" means the default TTL
	Kind     Kind
	Path     string
	PID      int
	PIDStart uint64
	UID      int
}

// Manager applies the TTL policy. The zero value is not usable: set Now, DefaultTTL and MaxTTL.
type Manager struct {
	Now        func() time.Time
	DefaultTTL time.Duration
	MaxTTL     time.Duration
}

// ttl resolves and checks a requested TTL, returning the duration and its text.
func (m Manager) ttl(s string) (time.Duration, string, error) {
	if s == "" {
		return m.DefaultTTL, duration.Format(m.DefaultTTL), nil
	}
	d, err := ParseTTL(s)
	if err != nil {
		return 0, "", err
	}
	if d > m.MaxTTL {
		return 0, "", fmt.Errorf("%w: %s is more than max_lease_ttl %s", ErrTTLExceedsMax, s, duration.Format(m.MaxTTL))
	}
	return d, s, nil
}

// CheckTTL reports whether s is an acceptable TTL under the policy, with the errors Grant
// would return.
func (m Manager) CheckTTL(s string) error {
	_, _, err := m.ttl(s)
	return err
}

// Grant adds a new lease to leases and returns it. It fails with ErrInvalidTTL or
// ErrTTLExceedsMax and then leaves leases unchanged. The caller checks that the secret exists.
func (m Manager) Grant(leases *[]Lease, r Request) (Lease, error) {
	d, text, err := m.ttl(r.TTL)
	if err != nil {
		return Lease{}, err
	}
	now := m.Now().UTC()
	id, err := ulid.New(ulid.Timestamp(now), entropy)
	if err != nil {
		return Lease{}, fmt.Errorf("new lease id: %w", err)
	}
	l := Lease{
		ID:        "lease_" + id.String(),
		Secret:    r.Secret,
		ClientID:  r.ClientID,
		CreatedAt: now,
		ExpiresAt: now.Add(d),
		TTL:       text,
		Kind:      r.Kind,
		Path:      r.Path,
		PID:       r.PID,
		PIDStart:  r.PIDStart,
		UID:       r.UID,
	}
	if l.Kind == "" {
		l.Kind = KindLease
	}
	*leases = append(*leases, l)
	return l, nil
}

// Renew sets a new expiry of now+ttl on the active lease id ("" ttl keeps the lease's own
// TTL). It fails with ErrNotFound or a TTL error and then changes nothing.
func (m Manager) Renew(leases []Lease, id, ttl string) (Lease, error) {
	i := find(leases, id)
	if i < 0 {
		return Lease{}, fmt.Errorf("%w: %s", ErrNotFound, names.LeaseID(id))
	}
	if ttl == "" {
		ttl = leases[i].TTL
	}
	d, text, err := m.ttl(ttl)
	if err != nil {
		return Lease{}, err
	}
	leases[i].ExpiresAt = m.Now().UTC().Add(d)
	leases[i].TTL = text
	return leases[i], nil
}

// Expire removes and returns the leases whose expiry is at or before now.
func (m Manager) Expire(leases *[]Lease) []Lease {
	now := m.Now()
	return take(leases, func(l Lease) bool { return !l.ExpiresAt.After(now) })
}

// Revoke removes and returns the active lease id, or fails with ErrNotFound.
func Revoke(leases *[]Lease, id string) (Lease, error) {
	ended := take(leases, func(l Lease) bool { return l.ID == id })
	if len(ended) == 0 {
		return Lease{}, fmt.Errorf("%w: %s", ErrNotFound, names.LeaseID(id))
	}
	return ended[0], nil
}

// RevokeIDs removes and returns the leases whose ids are in ids; ids no longer active are
// skipped (they ended already).
func RevokeIDs(leases *[]Lease, ids []string) []Lease {
	return take(leases, func(l Lease) bool { return slices.Contains(ids, l.ID) })
}

// RevokeAll removes and returns every lease.
func RevokeAll(leases *[]Lease) []Lease {
	return take(leases, func(Lease) bool { return true })
}

// RevokeSecret removes and returns every lease of the named secret.
func RevokeSecret(leases *[]Lease, secret string) []Lease {
	return take(leases, func(l Lease) bool { return l.Secret == secret })
}

// take removes the leases that match and returns them in their original order.
func take(leases *[]Lease, match func(Lease) bool) []Lease {
	var ended []Lease
	kept := (*leases)[:0]
	for _, l := range *leases {
		if match(l) {
			ended = append(ended, l)
		} else {
			kept = append(kept, l)
		}
	}
	clear((*leases)[len(kept):])
	*leases = kept
	return ended
}

func find(leases []Lease, id string) int {
	for i := range leases {
		if leases[i].ID == id {
			return i
		}
	}
	return -1
}
