package vault

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/agent-secrets/secrets/audit"
	names "github.com/agent-secrets/secrets/internal/name"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/policy"
	"github.com/agent-secrets/secrets/store"
	"github.com/agent-secrets/secrets/supervisor"
)

// LeaseInput asks for one secret's value under a new lease.
type LeaseInput struct {
	Name     string
	TTL      string // "" is default_lease_ttl
	ClientID string
	// Wait is how long to wait for a person's approval when the policy asks one; 0
	// fails at once with ErrApprovalRequired.
	Wait time.Duration
}

// Grant is a lease and the value it hands out.
type Grant struct {
	Lease LeaseInfo
	Value []byte
}

// Lease grants a lease on one secret and returns its value, once the grant is durable.
// A request in lockdown, for an invalid name, an unknown secret or a bad TTL is refused
// and recorded as lease_denied. A canary's value is handed out as any other, once its
// trip is durable in the same commit (tripCanaries).
func (v *Vault) Lease(ctx context.Context, in LeaseInput) (*Grant, error) {
	client, err := v.client(in.ClientID)
	if err != nil {
		return nil, err
	}
	var g Grant
	err = v.retryApproved(ctx, in.Wait, func() error {
		return v.update(ctx, write, client, func(tx *Tx) error {
			denied := audit.Entry{Event: "lease_denied", Secret: in.Name}
			if err := tx.refuseInLockdown(denied); err != nil {
				return err
			}
			if err := store.CheckName(in.Name); err != nil {
				denied.Secret = ""
				return tx.Deny(denied, err)
			}
			// One secret, read from secrets.age as far as it takes.
			secret, err := tx.secret(in.Name)
			if errors.Is(err, store.ErrSecretNotFound) {
				return tx.Deny(denied, err)
			}
			if err != nil {
				return err
			}
			l, err := tx.Grant(lease.Request{Secret: in.Name, ClientID: client, TTL: in.TTL, Kind: lease.KindLease}, "")
			if err != nil {
				return tx.Deny(denied, err)
			}
			if secret.Canary {
				if _, err := tx.tripCanaries([]string{in.Name}, nil); err != nil {
					return err
				}
			}
			g = Grant{Lease: leaseInfo(l), Value: secret.Value}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return &g, nil
}

// LeasesResult is the active leases.
type LeasesResult struct {
	Leases []LeaseInfo `json:"leases"`
	Count  int         `json:"count"`
}

// owns reports whether the caller may see and change l: anyone in a plain store; in a
// guarded store, the agent user it was granted to. Another user's lease is not found.
func (v *Vault) owns(l lease.Lease) bool {
	return v.o.Caller == nil || l.UID == v.o.Caller.UID
}

// Leases lists the active leases, of one secret and one client when those are given.
func (v *Vault) Leases(ctx context.Context, secret, client string) (*LeasesResult, error) {
	out := &LeasesResult{Leases: []LeaseInfo{}}
	err := v.View(ctx, func(tx *Tx) error {
		active, err := tx.active()
		if err != nil {
			return err
		}
		for _, l := range active {
			if (secret == "" || l.Secret == secret) && (client == "" || l.ClientID == client) && v.owns(l) {
				out.Leases = append(out.Leases, leaseInfo(l))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out.Count = len(out.Leases)
	return out, nil
}

// RenewInput moves an active lease's expiry to now + TTL.
type RenewInput struct {
	ID       string
	TTL      string // "" keeps the lease's own TTL
	ClientID string
}

// Renew extends an active lease (lease.ErrNotFound for one that ended) and records
// lease_renew, or the refusal.
func (v *Vault) Renew(ctx context.Context, in RenewInput) (*LeaseInfo, error) {
	client, err := v.client(in.ClientID)
	if err != nil {
		return nil, err
	}
	var info LeaseInfo
	err = v.update(ctx, write, client, func(tx *Tx) error {
		l, err := tx.renew(in.ID, in.TTL)
		if errors.Is(err, lease.ErrNotFound) || errors.Is(err, lease.ErrInvalidTTL) || errors.Is(err, lease.ErrTTLExceedsMax) || errors.Is(err, policy.ErrTTLExceedsMax) {
			return tx.Deny(audit.Entry{Event: "lease_renew", LeaseID: names.LeaseID(in.ID)}, err)
		}
		if err != nil {
			return err
		}
		info = leaseInfo(l)
		if l.Supervised() {
			// The supervisor follows the lease's expiry: tell it, once the renewal is
			// durable, to read the new one (a lost signal is caught at the old expiry).
			tx.OnCommit(func() { supervisor.Notify(l.PID, l.PIDStart) })
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &info, nil
}

// Revoked is a lease that Revoke ended.
type Revoked struct {
	LeaseInfo
	Revoked bool `json:"revoked"`
}

// Revoke ends one active lease, with all that ending does.
func (v *Vault) Revoke(ctx context.Context, id, clientFlag string) (*Revoked, error) {
	client, err := v.client(clientFlag)
	if err != nil {
		return nil, err
	}
	var out Revoked
	err = v.update(ctx, write, client, func(tx *Tx) error {
		l, ok, err := tx.table.find(id)
		if err != nil {
			return err
		}
		if ok && v.owns(l) {
			l, ok, err = tx.table.take(id)
			if err != nil {
				return err
			}
		} else {
			ok = false
		}
		if !ok {
			return tx.Deny(audit.Entry{Event: "lease_revoke", LeaseID: names.LeaseID(id)}, fmt.Errorf("%w: %s", lease.ErrNotFound, names.LeaseID(id)))
		}
		tx.End([]lease.Lease{l}, "lease_revoke", "revoked")
		out = Revoked{leaseInfo(l), true}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeAllResult is what revoke --all ended.
type RevokeAllResult struct {
	LeasesRevoked int      `json:"leases_revoked"`
	LeaseIDs      []string `json:"lease_ids"`
}

// RevokeAll ends every active lease and records revoke_all. Like the killswitch, it cuts
// access whatever the log and while another process holds the lock (cutAccess).
func (v *Vault) RevokeAll(ctx context.Context, clientFlag string) (*RevokeAllResult, error) {
	client, err := v.client(clientFlag)
	if err != nil {
		return nil, err
	}
	in := newIntent(intentRevokeAll, "", "", client, v.o.Now())
	var ended []lease.Lease
	n := 0
	err = v.cutAccess(ctx, client, &in, func(tx *Tx) error {
		var err error
		if ended, err = tx.revokeWhere(func(lease.Lease) bool { return true }); err != nil {
			return err
		}
		n = len(ended)
		tx.End(ended, "lease_revoke", "revoke --all")
		tx.stopSalvaged()
		tx.dropApprovals("revoke --all")
		tx.state.AppliedIntent = in.ID
		tx.Record(audit.Entry{Event: "revoke_all", OK: true, Detail: fmt.Sprintf("%d leases revoked", len(ended)), State: change{Intent: in.ID}.raw()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if c := v.o.Caller; c != nil {
		// A guarded caller is told the count, and the ids of its own leases only.
		ended = slices.DeleteFunc(ended, func(l lease.Lease) bool { return l.UID != c.UID })
		return &RevokeAllResult{LeasesRevoked: n, LeaseIDs: leaseIDs(ended)}, nil
	}
	return &RevokeAllResult{LeasesRevoked: len(ended), LeaseIDs: leaseIDs(ended)}, nil
}
