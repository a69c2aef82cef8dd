package vault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/agent-secrets/secrets/audit"
	nm "github.com/agent-secrets/secrets/internal/name"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/rotate"
	"github.com/agent-secrets/secrets/store"
)

// Rotated is one secret a rotation stored.
type Rotated struct {
	Name          string `json:"name"`
	Changed       bool   `json:"changed"`
	Verified      bool   `json:"verified"`
	DurationMS    int64  `json:"duration_ms"`
	LeasesRevoked int    `json:"leases_revoked"`
}

// RotationFailure is one secret whose rotation changed nothing.
type RotationFailure struct {
	Name  string `json:"name"`
	Error string `json:"error"`
}

// RotateResult is what a rotation did, secret by secret.
type RotateResult struct {
	Rotated []Rotated         `json:"rotated"`
	Failed  []RotationFailure `json:"failed"`
}

// Rotate runs the rotation hooks of names (nil: every secret that has one), stores the
// new values and ends the leases of the old ones. A failing hook does not stop the others;
// the error (rotate.ErrFailed) reports every failure, and the result what was done.
func (v *Vault) Rotate(ctx context.Context, names []string, clientFlag string) (*RotateResult, error) {
	client, err := v.client(clientFlag)
	if err != nil {
		return nil, err
	}
	return v.rotate(ctx, client, names, "rotate")
}

// rotate is make before break (STYLE.md, aws-vault): the hooks run outside the store lock
// with the values read in a first transaction; each outcome is then stored in a second
// one, unless the secret changed in the meantime, and the leases of a rotated secret are
// ended, since its old value is dead.
func (v *Vault) rotate(ctx context.Context, client string, names []string, why string) (*RotateResult, error) {
	done := &RotateResult{Rotated: []Rotated{}, Failed: []RotationFailure{}}
	type job struct {
		hook    rotate.Hook
		old     []byte
		updated time.Time
	}
	var jobs []job
	err := v.update(ctx, write|withSecrets, client, func(tx *Tx) error {
		sec, err := tx.Secrets()
		if err != nil {
			return err
		}
		if names == nil {
			for _, n := range sec.Names() {
				if sec.Secrets[n].RotateVia != "" {
					names = append(names, n)
				}
			}
		}
		timeout := time.Duration(tx.cfg.RotationTimeout)
		for _, n := range names {
			s, err := sec.Get(n)
			if err != nil {
				return tx.Deny(audit.Entry{Event: "rotate", Secret: nm.Word(n)}, err)
			}
			if r := tx.rotating(n); r != nil {
				return tx.Deny(audit.Entry{Event: "rotate", Secret: n}, fmt.Errorf("%w: %s is being rotated since %s by process %d; a second hook run would retire the value the first one brings (it gives up at %s)",
					ErrRotationInProgress, n, rfc3339(r.Since), r.PID, rfc3339(r.Until)))
			}
			if s.RotateVia == "" {
				return tx.Deny(audit.Entry{Event: "rotate", Secret: n}, fmt.Errorf("%w: %s has no rotation hook; add one with: secrets set %s --rotate-via CMD", rotate.ErrFailed, n, n))
			}
			jobs = append(jobs, job{
				hook: rotate.Hook{Name: n, Command: s.RotateVia, Verify: s.VerifyVia, Timeout: timeout, Env: hookEnv(v.o.Environ)},
				old:  append([]byte(nil), s.Value...), updated: s.UpdatedAt,
			})
		}
		// A hook run is an access: the hook gets the value. It is recorded, with the
		// commands, before any hook runs, and a canary among the secrets trips now, in
		// this commit, except in the killswitch's own rotate all, which must not trip
		// itself again.
		var canaries []string
		for _, j := range jobs {
			// The rotation is recorded as in progress until its outcome is stored, so a
			// second one for the secret is refused rather than run over it.
			r := Rotation{Secret: j.hook.Name, Since: tx.now.UTC(), Until: tx.now.Add(2*timeout + time.Minute).UTC(), PID: os.Getpid()}
			tx.state.putRotation(r)
			tx.Record(audit.Entry{Event: "hook_run", Secret: j.hook.Name, OK: true, Detail: fmt.Sprintf("%s: rotate_via %s; verify_via %s", why, hookText(j.hook.Command), hookText(j.hook.Verify)),
				State: change{Rotation: &r}.raw()})
			if sec.Secrets[j.hook.Name].Canary {
				canaries = append(canaries, j.hook.Name)
			}
		}
		if why == "rotate" {
			if _, err := tx.tripCanaries(canaries, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || len(jobs) == 0 {
		return done, err
	}
	defer func() {
		for _, j := range jobs {
			clear(j.old)
		}
	}()
	type outcome struct {
		res rotate.Result
		err error
	}
	outcomes := make([]outcome, len(jobs))
	for i, j := range jobs {
		outcomes[i].res, outcomes[i].err = j.hook.Run(ctx, j.old)
	}
	err = v.update(ctx, write|withSecrets, client, func(tx *Tx) error {
		secrets, err := tx.Secrets()
		if err != nil {
			return err
		}
		now := tx.now.UTC()
		for _, j := range jobs {
			done := Rotation{Secret: j.hook.Name, Done: true}
			tx.state.putRotation(done)
			tx.Record(audit.Entry{Event: "rotation_end", Secret: j.hook.Name, OK: true, State: change{Rotation: &done}.raw()})
		}
		for i, j := range jobs {
			o, name := outcomes[i], j.hook.Name
			e := audit.Entry{Event: "rotate", Secret: name, Detail: fmt.Sprintf("%s; %s, exit %d", why, o.res.Duration.Round(time.Millisecond), o.res.ExitStatus)}
			sec, gerr := secrets.Get(name)
			switch {
			case o.err == nil && (gerr != nil || !sec.UpdatedAt.Equal(j.updated)):
				o.err = fmt.Errorf("%w: %s changed or was removed while its hook ran; nothing stored", rotate.ErrFailed, name)
			case o.err == nil:
				if err := store.CheckValue(o.res.Value); err != nil {
					o.err = fmt.Errorf("%w: %s: the hook printed an unusable value: %v", rotate.ErrFailed, name, err)
				}
			}
			if o.err != nil {
				e.Code, e.Detail = "rotation_failed", e.Detail+"; "+o.err.Error()
				tx.Record(e)
				done.Failed = append(done.Failed, RotationFailure{Name: name, Error: o.err.Error()})
				continue
			}
			e.OK = true
			e.Detail += fmt.Sprintf("; old %s new %s", tx.st.Fingerprint(j.old), tx.st.Fingerprint(o.res.Value))
			if !o.res.Changed {
				e.Detail += "; refreshed elsewhere, value kept"
			}
			if o.res.Verified {
				e.Detail += "; verified"
			}
			sec.Value, sec.UpdatedAt, sec.RotatedAt = append([]byte(nil), o.res.Value...), now, &now
			tx.secretsDirty = true
			tx.Record(e)
			ended, err := tx.revokeWhere(func(l lease.Lease) bool { return l.Secret == name })
			if err != nil {
				return err
			}
			tx.End(ended, "lease_revoke", "rotated")
			done.Rotated = append(done.Rotated, Rotated{Name: name, Changed: o.res.Changed, Verified: o.res.Verified, DurationMS: o.res.Duration.Milliseconds(), LeasesRevoked: len(ended)})
		}
		return nil
	})
	if err != nil {
		return done, err
	}
	if len(done.Failed) > 0 {
		msgs := make([]string, len(done.Failed))
		for i, f := range done.Failed {
			msgs[i] = strings.TrimPrefix(f.Error, rotate.ErrFailed.Error()+": ")
		}
		return done, fmt.Errorf("%w (%d of %d): %s", rotate.ErrFailed, len(done.Failed), len(jobs), strings.Join(msgs, "; "))
	}
	return done, nil
}

// ErrRotationInProgress refuses a rotation of a secret whose hook is running in another
// command.
var ErrRotationInProgress = errors.New("rotation in progress")

// Rotation is a secret whose rotation hook runs now, until its outcome is stored.
type Rotation struct {
	Secret string    `json:"secret"`
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"` // past this, a crashed rotation no longer blocks
	PID    int       `json:"pid"`
	Done   bool      `json:"done,omitempty"` // replay: the rotation ended
}

func (s *State) putRotation(r Rotation) {
	s.Rotations = slices.DeleteFunc(s.Rotations, func(x Rotation) bool { return x.Secret == r.Secret })
	if !r.Done {
		s.Rotations = append(s.Rotations, r)
	}
}

// rotating returns the rotation of name in progress, or nil: one past its Until, or
// whose process is gone, crashed and blocks nothing.
func (tx *Tx) rotating(name string) *Rotation {
	for _, r := range tx.state.Rotations {
		if r.Secret == name && r.Until.After(tx.now) && syscall.Kill(r.PID, 0) == nil {
			return &r
		}
	}
	return nil
}

// hookPath is the PATH a hook runs with, whatever the caller's.
const hookPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/homebrew/bin"

// hookEnv is the environment of a rotation or verify hook: a fixed PATH, the user's home
// from the password database, and the locale, nothing else of the caller's. A hook gets a
// value on stdin, and the caller (an agent, in lockdown too) could otherwise point PATH or
// LD_PRELOAD at code of its own and have the unchanged hook hand it the value.
func hookEnv(environ []string) []string {
	env := []string{"PATH=" + hookPath}
	home := ""
	if u, err := user.Current(); err == nil {
		home = u.HomeDir
		env = append(env, "USER="+u.Username, "LOGNAME="+u.Username)
	}
	if home != "" {
		env = append(env, "HOME="+home)
	}
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if k == "LANG" || k == "LC_ALL" || k == "LC_CTYPE" || k == "TZ" {
			env = append(env, kv)
		}
	}
	return env
}
