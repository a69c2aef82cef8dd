package vault

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/killswitch"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/store"
)

// KillswitchInput says what the killswitch does besides lockdown and revoking every lease.
type KillswitchInput struct {
	RotateAll bool   // then rotate every secret that has a hook
	Wipe      bool   // then crypto-shred identity.age, secrets.age and leases.age
	Reason    string // for the audit log and status
	ClientID  string
}

// KillswitchResult is what the killswitch did.
type KillswitchResult struct {
	Lockdown         *LockdownInfo     `json:"lockdown,omitzero"`
	LeasesRevoked    *int              `json:"leases_revoked,omitempty"` // nil only after an interrupted wipe
	Steps            []string          `json:"steps,omitzero"`
	Rotated          []Rotated         `json:"rotated,omitzero"`
	RotationFailures []RotationFailure `json:"rotation_failures,omitzero"`
	Wiped            []string          `json:"wiped,omitzero"`
	// FinishedInterruptedWipe says the store could not be opened and what remained of a
	// wipe that a crash interrupted was shredded.
	FinishedInterruptedWipe bool `json:"finished_interrupted_wipe,omitempty"`
}

// Killswitch fires by hand: lockdown and every lease revoked in one commit, then, outside
// the lock, rotate all and wipe as in asks. Every step is audited; a failing rotation
// hook does not stop the rest, and running it again after a crash finishes the job. A
// wipe on a store that a crashed wipe left unopenable shreds what remains.
func (v *Vault) Killswitch(ctx context.Context, in KillswitchInput) (*KillswitchResult, error) {
	client, err := v.client(in.ClientID)
	if err != nil {
		return nil, err
	}
	if err := checkReason(in.Reason); err != nil {
		return nil, err
	}
	out, err := v.fire(ctx, client, "manual", in.Reason, store.FailAction{RevokeAll: true, RotateAll: in.RotateAll, WipeStore: in.Wipe})
	if err != nil && in.Wipe && (errors.Is(err, store.ErrNotInitialized) || errors.Is(err, store.ErrDecrypt) || errors.Is(err, store.ErrCorrupt)) {
		files, serr := store.ShredDir(ctx, v.storeOptions())
		if serr != nil {
			return nil, serr
		}
		v.warn("the store could not be opened (%v); shredded what remained of an interrupted wipe", err)
		return &KillswitchResult{Wiped: nonNil(files), FinishedInterruptedWipe: true}, nil
	}
	return out, err
}

// fire runs the killswitch: lockdown and revoke all under the lock, recorded in one
// commit with the entries that caused it (first), then rotate all and wipe as act says.
// It cuts access whatever the log and while another process holds the lock (cutAccess):
// then it fails with a *PendingError that says what it cut.
func (v *Vault) fire(ctx context.Context, client, trigger, reason string, act store.FailAction, first ...audit.Entry) (*KillswitchResult, error) {
	in := newIntent(intentKillswitch, trigger, reason, client, v.o.Now())
	var out *KillswitchResult
	err := v.cutAccess(ctx, client, &in, func(tx *Tx) error {
		for _, e := range first {
			tx.Record(e)
		}
		var err error
		out, err = tx.lockdown(in.Trigger, in.Reason, act, in.ID, tx.now) // in, merged with a pending one
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, v.afterLockdown(ctx, client, trigger, act, out)
}

// lockdown is the part of the killswitch done under the caller's lock: the lockdown,
// every lease revoked (with act.RevokeAll), and the killswitch entry.
// lockdown's intent is the killswitch.intent it applies ("" for none), at when it fired.
func (tx *Tx) lockdown(trigger, reason string, act store.FailAction, intent string, at time.Time) (*KillswitchResult, error) {
	return tx.lockdownKeeping(trigger, reason, act, intent, at, nil)
}

// lockdownKeeping is lockdown that, revoking all, leaves the leases keep spares (nil:
// none) to their caller.
func (tx *Tx) lockdownKeeping(trigger, reason string, act store.FailAction, intent string, at time.Time, keep func(lease.Lease) bool) (*KillswitchResult, error) {
	steps := []string{"lockdown"}
	if act.RevokeAll {
		steps = []string{"revoke all", "lockdown"}
	}
	if act.RotateAll {
		steps = append(steps, "rotate all")
	}
	if act.WipeStore {
		steps = append(steps, "wipe")
	}
	tx.state.Lockdown = killswitch.Lock(tx.state.Lockdown, trigger, reason, at)
	if intent != "" {
		tx.state.AppliedIntent = intent
	}
	var ended []lease.Lease
	if act.RevokeAll {
		var err error
		if ended, err = tx.revokeWhere(func(l lease.Lease) bool { return keep == nil || !keep(l) }); err != nil {
			return nil, err
		}
	}
	tx.Record(audit.Entry{Event: "killswitch", OK: true, Detail: fmt.Sprintf("%s: %s; %s", trigger, strings.Join(steps, ", "), reason),
		State: change{Lockdown: tx.state.Lockdown, Intent: intent}.raw()})
	tx.End(ended, "lease_revoke", "killswitch")
	if act.RevokeAll {
		tx.stopSalvaged()
	}
	tx.dropApprovals("the killswitch fired")
	n := len(ended)
	return &KillswitchResult{Lockdown: lockdownInfo(tx.state.Lockdown, tx.st.UnlockCode(), tx.lockdownReason), LeasesRevoked: &n, Steps: steps}, nil
}

// afterLockdown rotates and wipes, each in its own transaction, as act says, adding to out.
func (v *Vault) afterLockdown(ctx context.Context, client, trigger string, act store.FailAction, out *KillswitchResult) error {
	if act.RotateAll {
		done, err := v.rotate(ctx, client, nil, trigger+" killswitch")
		out.Rotated, out.RotationFailures = nonNil(done.Rotated), nonNil(done.Failed)
		if err != nil {
			v.warn("killswitch: %v; going on", err)
		}
	}
	if !act.WipeStore {
		return nil
	}
	return v.update(ctx, write, client, func(tx *Tx) error {
		tx.Record(audit.Entry{Event: "wipe", OK: true, Detail: trigger + ": shredding identity.age, secrets.age and leases.age; the audit log and config stay"})
		// The wipe is on record before the keys are gone.
		if err := tx.Checkpoint(); err != nil {
			return err
		}
		files, err := tx.st.Shred()
		out.Wiped = nonNil(files)
		return err
	})
}

// checkReason refuses a killswitch reason that could pass for our own output where it is
// shown (every refusal in lockdown prints it, to whoever asks): control characters,
// terminal escapes, more than 256 bytes.
func checkReason(r string) error {
	if len(r) > 256 {
		return Usagef("--reason is longer than 256 bytes")
	}
	for _, c := range r {
		if c < 0x20 || c == 0x7f || c >= 0x80 && c < 0xa0 || c == 0x2028 || c == 0x2029 || c >= 0x202a && c <= 0x202e || c >= 0x2066 && c <= 0x2069 {
			return Usagef("--reason contains a control character; give one line of text")
		}
	}
	return nil
}

// lockdownReason is why the store is locked down, as a caller may see it: in a guarded
// store an agent user is not told which secret tripped a canary (the trigger says one did).
func (tx *Tx) lockdownReason(reason string) string {
	if tx.v.o.Caller != nil && strings.HasPrefix(reason, "canary ") {
		return ""
	}
	return reason
}

// refuseInLockdown denies a request that would hand out a value while the store is
// locked down, recording it as e.
func (tx *Tx) refuseInLockdown(e audit.Entry) error {
	l := tx.state.Lockdown
	if l == nil {
		return nil
	}
	reason := ""
	if r := tx.lockdownReason(l.Reason); r != "" {
		reason = ": " + r
	}
	return tx.Deny(e, fmt.Errorf("%w: the store is locked down since %s (%s%s); nothing is handed out until secrets unlock",
		killswitch.ErrLockdown, rfc3339(l.Since), l.Trigger, reason))
}

// canaries returns the canaries among leases' secrets. The secrets must be loaded.
func (tx *Tx) canaries(leases []lease.Lease) []string {
	var names []string
	for _, l := range leases {
		if sec := tx.known(l.Secret); sec != nil && sec.Canary && !slices.Contains(names, l.Secret) {
			names = append(names, l.Secret)
		}
	}
	return names
}

// tripCanaries trips the canaries names in the transaction that hands them out, before
// any value leaves: canary_tripped (with the actor), the lockdown and, with
// canary_action's revoke_all, every lease but those keep spares are ended, all in the
// grant's own commit, so that no value leaves before the trip is durable and nothing that
// holds the lock afterwards can stop it. Rotate all and wipe, as canary_action says, run
// after the commit; the lockdown holds even when they fail. It reports whether there was
// a canary.
func (tx *Tx) tripCanaries(names []string, keep func(lease.Lease) bool) (bool, error) {
	if len(names) == 0 {
		return false, nil
	}
	act := tx.cfg.CanaryAction
	for _, n := range names {
		tx.Record(audit.Entry{Event: "canary_tripped", Secret: n, OK: true, Detail: "a canary was handed out; firing the killswitch"})
	}
	reason := fmt.Sprintf("canary %s used by %s", strings.Join(names, ", "), tx.client)
	out, err := tx.lockdownKeeping("canary", reason, act, "", tx.now, keep)
	if err != nil {
		return true, err
	}
	if act.RotateAll || act.WipeStore {
		v, client := tx.v, tx.client
		tx.OnCommit(func() {
			if err := v.afterLockdown(context.Background(), client, "canary", act, out); err != nil {
				v.warn("canary: the killswitch's follow-up failed (%v); the lockdown holds", err)
			}
		})
	}
	return true, nil
}

// UnlockInput lifts a lockdown. Confirm shows prompt to a person and returns what they
// typed; it must read from the controlling terminal, never from stdin, so that an agent
// told to run `secrets unlock` cannot answer for a person. An error from it (no
// terminal) is recorded as a refused unlock.
type UnlockInput struct {
	Confirm  func(prompt string) (string, error)
	ClientID string
}

// UnlockResult says whether a lockdown was lifted, and the lockdown still in place when
// it was not.
type UnlockResult struct {
	Lockdown *LockdownInfo `json:"lockdown"`
	Unlocked bool          `json:"unlocked"`
}

// Unlock asks for the store fingerprint and lifts the lockdown when it is typed. No lock
// is held while the person is asked: an unanswered prompt would otherwise keep every
// other command waiting. So the state is read again after the answer, and a lockdown
// that another command lifted meanwhile is reported as not locked down.
func (v *Vault) Unlock(ctx context.Context, in UnlockInput) (*UnlockResult, error) {
	client, err := v.client(in.ClientID)
	if err != nil {
		return nil, err
	}
	var since time.Time
	var trigger string
	err = v.View(ctx, func(tx *Tx) error {
		if l := tx.state.Lockdown; l != nil {
			since, trigger = l.Since, l.Trigger
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if trigger == "" {
		return &UnlockResult{}, nil
	}
	answer, askErr := in.Confirm(fmt.Sprintf("The store is locked down since %s (%s). Type its fingerprint (from secrets status) to lift it: ", rfc3339(since), trigger))
	out := &UnlockResult{}
	err = v.update(ctx, write, client, func(tx *Tx) error {
		l := tx.state.Lockdown
		if l == nil || !l.Since.Equal(since) || l.Trigger != trigger {
			// Lifted while the person was typing, or lifted and fired again: an answer
			// lifts only the lockdown its prompt showed.
			out.Lockdown = lockdownInfo(l, tx.st.UnlockCode(), tx.lockdownReason)
			return nil
		}
		e := audit.Entry{Event: "unlock"}
		switch {
		case askErr != nil:
			return tx.Deny(e, fmt.Errorf("%w: unlock needs a person at the controlling terminal (%v)", killswitch.ErrLockdown, askErr))
		case strings.TrimSpace(answer) != tx.st.UnlockCode():
			return tx.Deny(e, fmt.Errorf("%w: that is not the store fingerprint; the lockdown stays", killswitch.ErrLockdown))
		}
		e.OK, e.Detail = true, "lockdown by "+l.Trigger+" lifted"
		tx.state.Lockdown = nil
		if w := tx.state.Witness; w != nil && w.Rollback != "" {
			// A person looked: the witness's finding is acknowledged with the lockdown.
			cleared := *w
			cleared.Rollback = ""
			tx.state.Witness = &cleared
			e.Detail += "; the witness's rollback finding acknowledged"
			e.State = change{Witness: &cleared}.raw()
		}
		tx.Record(e)
		out.Unlocked = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// nonNil makes a nil slice empty, so a result lists [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
