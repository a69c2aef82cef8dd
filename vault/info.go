package vault

import (
	"time"

	"github.com/agent-secrets/secrets/killswitch"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/store"
)

// LeaseInfo is a lease as every result reports it, in the earlier tool's key names. It
// never holds a value.
type LeaseInfo struct {
	LeaseID    string `json:"lease_id"`
	SecretName string `json:"secret_name"`
	ClientID   string `json:"client_id"`
	Kind       string `json:"kind"`
	CreatedAt  string `json:"created_at"` // RFC 3339, UTC, whole seconds
	ExpiresAt  string `json:"expires_at"`
	TTL        string `json:"ttl"` // as given, e.g. "30m"
	Path       string `json:"path,omitempty"`
}

func leaseInfo(l lease.Lease) LeaseInfo {
	return LeaseInfo{
		LeaseID: l.ID, SecretName: l.Secret, ClientID: l.ClientID, Kind: string(l.Kind),
		CreatedAt: rfc3339(l.CreatedAt), ExpiresAt: rfc3339(l.ExpiresAt), TTL: l.TTL, Path: l.Path,
	}
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// SecretInfo is a secret's metadata. It never holds the value, and says whether the
// secret is a canary only when asked: a canary must look like any other secret.
type SecretInfo struct {
	Name      string     `json:"name"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	Size      int        `json:"size"`
	RotateVia string     `json:"rotate_via,omitempty"`
	VerifyVia string     `json:"verify_via,omitempty"`
	RotatedAt *time.Time `json:"rotated_at,omitempty"`
	// HooksChangedAt is when a hook last changed (the audit log has the old and the new).
	HooksChangedAt *time.Time `json:"hooks_changed_at,omitempty"`
	Canary         *bool      `json:"canary,omitempty"`
}

func secretInfo(name string, sec *store.Secret, showCanary bool) SecretInfo {
	info := SecretInfo{Name: name, CreatedAt: sec.CreatedAt, UpdatedAt: sec.UpdatedAt, Size: len(sec.Value),
		RotateVia: sec.RotateVia, VerifyVia: sec.VerifyVia, RotatedAt: sec.RotatedAt, HooksChangedAt: sec.HooksChangedAt}
	if showCanary {
		info.Canary = &sec.Canary
	}
	return info
}

// LockdownInfo is a lockdown as results report it, with what lifts it.
type LockdownInfo struct {
	Since       string `json:"since"`
	Trigger     string `json:"trigger"`
	Reason      string `json:"reason"`
	Fingerprint string `json:"fingerprint,omitempty"`
	Unlock      string `json:"unlock"`
	// Pending is a lockdown recorded in killswitch.intent while another process held the
	// store lock (status): every command honours it; the state takes it in when the lock
	// is free.
	Pending bool `json:"pending,omitempty"`
}

// lockdownInfo shows l; shown passes its reason as the caller may see it.
func lockdownInfo(l *killswitch.Lockdown, code string, shown func(string) string) *LockdownInfo {
	if l == nil {
		return nil
	}
	return &LockdownInfo{Since: rfc3339(l.Since), Trigger: l.Trigger, Reason: shown(l.Reason), Fingerprint: code,
		Unlock: "run secrets unlock on a terminal and type the fingerprint"}
}

func leaseIDs(ls []lease.Lease) []string {
	ids := make([]string, len(ls))
	for i, l := range ls {
		ids[i] = l.ID
	}
	return ids
}

// shortField bounds what an unvalidated argument can put into an audit entry.
func shortField(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
