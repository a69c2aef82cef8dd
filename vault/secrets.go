package vault

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/agent-secrets/secrets/audit"
	names "github.com/agent-secrets/secrets/internal/name"
	"github.com/agent-secrets/secrets/killswitch"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/store"
)

// AddInput stores a new secret. Value is read by the caller before the call (a person
// may be typing, and no lock is held while they do); Add checks it.
type AddInput struct {
	Name      string
	Value     []byte
	RotateVia string
	VerifyVia string
	Canary    bool
	ClientID  string
}

// Add stores a new secret and records secret_add. A bad name, a bad value or a name that
// exists is refused and recorded (store.ErrInvalidName, store.ErrInvalidValue,
// store.ErrSecretExists).
func (v *Vault) Add(ctx context.Context, in AddInput) (*SecretInfo, error) {
	return v.writeValue(ctx, "secret_add", in.Name, in.ClientID, func(sec *store.Secrets, now time.Time) (*store.Secret, error) {
		added, err := sec.Add(in.Name, in.Value, in.RotateVia, now)
		if err == nil {
			added.VerifyVia, added.Canary = in.VerifyVia, in.Canary
			if in.RotateVia != "" || in.VerifyVia != "" {
				at := now.UTC()
				added.HooksChangedAt = &at
			}
		}
		return added, err
	}, func(tx *Tx, done bool) error {
		switch {
		case in.RotateVia == "" && in.VerifyVia == "":
		case !done:
			return tx.refuseHooksInLockdown(audit.Entry{Event: "secret_add", Secret: in.Name})
		default:
			tx.recordHookChange(HookChange{Secret: in.Name, At: tx.now.UTC(), NewRotate: in.RotateVia, NewVerify: in.VerifyVia})
		}
		return nil
	})
}

// SetInput replaces a secret's value, keeping its metadata.
type SetInput struct {
	Name     string
	Value    []byte
	ClientID string
}

// Set replaces the value of an existing secret and records secret_set. The leases of the
// old value stay: they are the caller's to revoke.
func (v *Vault) Set(ctx context.Context, in SetInput) (*SecretInfo, error) {
	return v.writeValue(ctx, "secret_set", in.Name, in.ClientID, func(sec *store.Secrets, now time.Time) (*store.Secret, error) {
		return sec.Set(in.Name, in.Value, now)
	}, nil)
}

// writeValue is add and set: change the secrets under the lock and record event, or the
// refusal.
func (v *Vault) writeValue(ctx context.Context, event, name, clientFlag string, change func(*store.Secrets, time.Time) (*store.Secret, error), hooks func(tx *Tx, done bool) error) (*SecretInfo, error) {
	client, err := v.client(clientFlag)
	if err != nil {
		return nil, err
	}
	var info SecretInfo
	err = v.update(ctx, write|withSecrets, client, func(tx *Tx) error {
		e := audit.Entry{Event: event, Secret: name}
		if err := store.CheckName(name); err != nil {
			e.Secret = ""
			return tx.Deny(e, err)
		}
		sec, err := tx.Secrets()
		if err != nil {
			return err
		}
		if hooks != nil {
			if err := hooks(tx, false); err != nil {
				return err
			}
		}
		s, err := change(sec, tx.now)
		if err != nil {
			return tx.Deny(e, err)
		}
		tx.secretsDirty = true
		e.OK = true
		tx.Record(e)
		if hooks != nil {
			if err := hooks(tx, true); err != nil {
				return err
			}
		}
		info = secretInfo(name, s, false)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &info, nil
}

// HooksInput changes a secret's rotation hook and check; nil leaves one as it is, ""
// removes it. No value is read.
type HooksInput struct {
	Name      string
	RotateVia *string
	VerifyVia *string
	ClientID  string
}

// SetHooks changes a secret's hooks and records secret_hooks.
func (v *Vault) SetHooks(ctx context.Context, in HooksInput) (*SecretInfo, error) {
	client, err := v.client(in.ClientID)
	if err != nil {
		return nil, err
	}
	var info SecretInfo
	err = v.update(ctx, write|withSecrets, client, func(tx *Tx) error {
		e := audit.Entry{Event: "secret_hooks", Secret: names.Word(in.Name)}
		secrets, err := tx.Secrets()
		if err != nil {
			return err
		}
		sec, err := secrets.Get(in.Name)
		if err != nil {
			return tx.Deny(e, err)
		}
		// A hook is a command that gets a value: no hook changes while the store is
		// locked down, so that one can be replaced in lockdown only by what an admin set
		// before it.
		if err := tx.refuseHooksInLockdown(e); err != nil {
			return err
		}
		change := HookChange{Secret: in.Name, At: tx.now.UTC(), OldRotate: sec.RotateVia, OldVerify: sec.VerifyVia, NewRotate: sec.RotateVia, NewVerify: sec.VerifyVia}
		if in.RotateVia != nil {
			change.NewRotate = *in.RotateVia
		}
		if in.VerifyVia != nil {
			change.NewVerify = *in.VerifyVia
		}
		if change.NewRotate == change.OldRotate && change.NewVerify == change.OldVerify {
			info = secretInfo(in.Name, sec, false)
			return nil
		}
		sec.RotateVia, sec.VerifyVia = change.NewRotate, change.NewVerify
		at := tx.now.UTC()
		sec.HooksChangedAt = &at
		tx.secretsDirty = true
		tx.recordHookChange(change)
		info = secretInfo(in.Name, sec, false)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &info, nil
}

// RemoveResult is what rm did.
type RemoveResult struct {
	Name          string   `json:"name"`
	Removed       bool     `json:"removed"`
	LeasesRevoked int      `json:"leases_revoked"`
	LeaseIDs      []string `json:"lease_ids"`
}

// Remove deletes a secret and ends its leases, with all that ending does (its .env files
// removed, its exec commands stopped), and records secret_remove.
func (v *Vault) Remove(ctx context.Context, name, clientFlag string) (*RemoveResult, error) {
	client, err := v.client(clientFlag)
	if err != nil {
		return nil, err
	}
	var ended []lease.Lease
	err = v.update(ctx, write|withSecrets, client, func(tx *Tx) error {
		e := audit.Entry{Event: "secret_remove", Secret: name}
		if err := store.CheckName(name); err != nil {
			e.Secret = ""
			return tx.Deny(e, err)
		}
		sec, err := tx.Secrets()
		if err != nil {
			return err
		}
		if err := sec.Remove(name); err != nil {
			return tx.Deny(e, err)
		}
		tx.secretsDirty = true
		if ended, err = tx.revokeWhere(func(l lease.Lease) bool { return l.Secret == name }); err != nil {
			return err
		}
		tx.End(ended, "lease_revoke", "secret removed")
		e.OK, e.Detail = true, fmt.Sprintf("%d leases revoked", len(ended))
		tx.Record(e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &RemoveResult{Name: name, Removed: true, LeasesRevoked: len(ended), LeaseIDs: leaseIDs(ended)}, nil
}

// ListedSecret is one secret of List: its metadata and how many leases hold it now.
type ListedSecret struct {
	SecretInfo
	ActiveLeases int `json:"active_leases"`
}

// ListResult is every secret, in name order.
type ListResult struct {
	Secrets []ListedSecret `json:"secrets"`
	Count   int            `json:"count"`
}

// List returns the secrets' metadata, never values. showCanaries adds whether each is a
// canary: an admin act, recorded as canaries_shown (so it runs as a write).
func (v *Vault) List(ctx context.Context, showCanaries bool) (*ListResult, error) {
	out := &ListResult{Secrets: []ListedSecret{}}
	m, client := withSecrets, ""
	if showCanaries {
		var err error
		if client, err = v.client(""); err != nil {
			return nil, err
		}
		m |= write
	}
	err := v.update(ctx, m, client, func(tx *Tx) error {
		if showCanaries {
			tx.Record(audit.Entry{Event: "canaries_shown", OK: true, Detail: "secrets list --show-canaries"})
		}
		sec, err := tx.Secrets()
		if err != nil {
			return err
		}
		active, err := tx.active()
		if err != nil {
			return err
		}
		counts := map[string]int{}
		for _, l := range active {
			// A guarded store's caller counts its own: another's are not its to see.
			if c := v.o.Caller; c == nil || l.UID == c.UID {
				counts[l.Secret]++
			}
		}
		for _, name := range sec.Names() {
			out.Secrets = append(out.Secrets, ListedSecret{secretInfo(name, sec.Secrets[name], showCanaries), counts[name]})
		}
		out.Count = len(out.Secrets)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// HookChange is one change of a secret's hooks, with the commands before and after.
type HookChange struct {
	Secret    string    `json:"secret"`
	At        time.Time `json:"at"`
	OldRotate string    `json:"old_rotate_via,omitempty"`
	NewRotate string    `json:"new_rotate_via,omitempty"`
	OldVerify string    `json:"old_verify_via,omitempty"`
	NewVerify string    `json:"new_verify_via,omitempty"`
}

// hookChangesKept is how many hook changes the state keeps for status.
const hookChangesKept = 8

func (s *State) addHookChange(c HookChange) {
	s.HookChanges = append(s.HookChanges, c)
	if n := len(s.HookChanges); n > hookChangesKept {
		s.HookChanges = slices.Clone(s.HookChanges[n-hookChangesKept:])
	}
}

// recordHookChange records secret_hooks with the old and the new commands, escaped.
func (tx *Tx) recordHookChange(c HookChange) {
	tx.state.addHookChange(c)
	detail := fmt.Sprintf("rotate_via %s -> %s; verify_via %s -> %s", hookText(c.OldRotate), hookText(c.NewRotate), hookText(c.OldVerify), hookText(c.NewVerify))
	tx.Record(audit.Entry{Event: "secret_hooks", Secret: c.Secret, OK: true, Detail: detail, State: change{Hook: &c}.raw()})
}

func hookText(cmd string) string {
	if cmd == "" {
		return "(none)"
	}
	return strconv.Quote(cmd)
}

// refuseHooksInLockdown denies a hook change while the store is locked down.
func (tx *Tx) refuseHooksInLockdown(e audit.Entry) error {
	l := tx.state.Lockdown
	if l == nil {
		return nil
	}
	return tx.Deny(e, fixed{fmt.Errorf("%w: no rotation or verify hook can change while the store is locked down (since %s); the hooks set before the lockdown keep running",
		killswitch.ErrLockdown, rfc3339(l.Since)), "run secrets unlock first, at a terminal"})
}
