package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/rotate"
	"github.com/agent-secrets/secrets/store"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdRotate() *cli.Command {
	return &cli.Command{
		Name:      "rotate",
		Usage:     "Run a secret's rotation hook, store the new value and revoke the leases of the old one",
		UsageText: "secrets rotate <name> | secrets rotate --all",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Usage: "rotate every secret that has a hook"},
			clientIDFlag(),
		},
		Action: a.act(a.rotate),
	}
}

func (a *app) rotate(ctx context.Context, c *cli.Command) (*reply, error) {
	all := c.Bool("all")
	var names []string
	switch {
	case all && c.NArg() > 0:
		return nil, usagef("give a name or --all, not both")
	case !all && c.NArg() != 1:
		return nil, usagef("give one secret name, or --all; usage: %s", c.UsageText)
	case !all:
		names = []string{c.Args().First()}
	}
	done, err := a.rotateSecrets(ctx, c, names, "rotate")
	result := map[string]any{"rotated": done.ok, "failed": done.failed}
	if err != nil {
		return nil, err
	}
	return &reply{result: result, next: []action{{"secrets audit --event rotate", "See the rotations in the audit log"}}}, nil
}

type rotated struct {
	Name          string `json:"name"`
	Changed       bool   `json:"changed"`
	Verified      bool   `json:"verified"`
	DurationMS    int64  `json:"duration_ms"`
	LeasesRevoked int    `json:"leases_revoked"`
}

type rotationFailure struct {
	Name  string `json:"name"`
	Error string `json:"error"`
}

type rotations struct {
	ok     []rotated
	failed []rotationFailure
}

// rotateSecrets rotates names (nil: every secret with a hook). The hooks run outside the
// store lock; each outcome is then stored under the lock, unless the secret changed in
// the meantime, and the leases of a rotated secret are revoked, since its old value is
// dead. A failing hook does not stop the others; the error reports every failure.
func (a *app) rotateSecrets(ctx context.Context, c *cli.Command, names []string, why string) (rotations, error) {
	done := rotations{ok: []rotated{}, failed: []rotationFailure{}}
	type job struct {
		hook    rotate.Hook
		old     []byte
		updated time.Time
	}
	var jobs []job
	s, err := a.open(ctx, c, modeWrite|withSecrets)
	if err != nil {
		return done, err
	}
	timeout := time.Duration(s.st.Config().RotationTimeout)
	err = s.finish(func() error {
		if names == nil {
			for _, n := range s.secrets.Names() {
				if s.secrets.Secrets[n].RotateVia != "" {
					names = append(names, n)
				}
			}
		}
		for _, n := range names {
			sec, err := s.secrets.Get(n)
			if err != nil {
				return s.deny(audit.Entry{Event: "rotate", Secret: shortField(n)}, err)
			}
			if sec.RotateVia == "" {
				return s.deny(audit.Entry{Event: "rotate", Secret: n}, fmt.Errorf("%w: %s has no rotation hook; add one with: secrets set %s --rotate-via CMD", rotate.ErrFailed, n, n))
			}
			jobs = append(jobs, job{
				hook: rotate.Hook{Name: n, Command: sec.RotateVia, Verify: sec.VerifyVia, Timeout: timeout, Env: childEnv(a.environ, false, nil, nil)},
				old:  append([]byte(nil), sec.Value...), updated: sec.UpdatedAt,
			})
		}
		return nil
	}())
	if err != nil || len(jobs) == 0 {
		return done, err
	}
	type outcome struct {
		res rotate.Result
		err error
	}
	outcomes := make([]outcome, len(jobs))
	for i, j := range jobs {
		outcomes[i].res, outcomes[i].err = j.hook.Run(ctx, j.old)
	}
	s, err = a.open(ctx, c, modeWrite|withSecrets)
	if err != nil {
		return done, err
	}
	err = s.finish(func() error {
		now := a.now().UTC()
		for i, j := range jobs {
			o, name := outcomes[i], j.hook.Name
			e := audit.Entry{Event: "rotate", Secret: name, Detail: fmt.Sprintf("%s; %s, exit %d", why, o.res.Duration.Round(time.Millisecond), o.res.ExitStatus)}
			sec, gerr := s.secrets.Get(name)
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
				s.record(e)
				done.failed = append(done.failed, rotationFailure{Name: name, Error: o.err.Error()})
				continue
			}
			e.OK = true
			e.Detail += fmt.Sprintf("; old %s new %s", s.st.Fingerprint(j.old), s.st.Fingerprint(o.res.Value))
			if !o.res.Changed {
				e.Detail += "; refreshed elsewhere, value kept"
			}
			if o.res.Verified {
				e.Detail += "; verified"
			}
			sec.Value, sec.UpdatedAt, sec.RotatedAt = o.res.Value, now, &now
			s.secretsDirty = true
			s.record(e)
			ended := lease.RevokeSecret(&s.state.Leases, name)
			s.end(ended, "lease_revoke", "rotated")
			done.ok = append(done.ok, rotated{Name: name, Changed: o.res.Changed, Verified: o.res.Verified, DurationMS: o.res.Duration.Milliseconds(), LeasesRevoked: len(ended)})
		}
		return nil
	}())
	if err != nil {
		return done, err
	}
	if len(done.failed) > 0 {
		msgs := make([]string, len(done.failed))
		for i, f := range done.failed {
			msgs[i] = strings.TrimPrefix(f.Error, rotate.ErrFailed.Error()+": ")
		}
		return done, fmt.Errorf("%w (%d of %d): %s", rotate.ErrFailed, len(done.failed), len(jobs), strings.Join(msgs, "; "))
	}
	return done, nil
}
