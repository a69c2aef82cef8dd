package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/killswitch"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/store"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdKillswitch() *cli.Command {
	return &cli.Command{
		Name:      "killswitch",
		Usage:     "Revoke every lease and lock the store down; optionally rotate every secret and wipe the store",
		UsageText: "secrets killswitch [--rotate-all] [--wipe] [--yes] [--reason TEXT]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "rotate-all", Usage: "then rotate every secret that has a hook"},
			&cli.BoolFlag{Name: "wipe", Usage: "then crypto-shred identity.age, secrets.age and leases.age (the audit log stays)"},
			&cli.BoolFlag{Name: "yes", Usage: "confirm --wipe without a terminal prompt"},
			&cli.StringFlag{Name: "reason", Usage: "why, for the audit log and status"},
			clientIDFlag(),
		},
		Action: a.act(a.killswitch),
	}
}

func (a *app) killswitch(ctx context.Context, c *cli.Command) (*reply, error) {
	if c.NArg() > 0 {
		return nil, usagef("killswitch takes no arguments")
	}
	if c.Bool("wipe") && !c.Bool("yes") {
		if !isTerminal(a.stdin) {
			return nil, usagef("--wipe destroys the store's keys and secrets; confirm with --yes")
		}
		fmt.Fprint(a.stderr, "This destroys identity.age, secrets.age and leases.age for good. Type WIPE to go on: ")
		line, _ := bufio.NewReader(a.stdin).ReadString('\n')
		if strings.TrimSpace(line) != "WIPE" {
			return nil, usagef("not confirmed; nothing was changed")
		}
	}
	out, err := a.fire(ctx, c, "manual", c.String("reason"), store.FailAction{RevokeAll: true, RotateAll: c.Bool("rotate-all"), WipeStore: c.Bool("wipe")})
	if err != nil && c.Bool("wipe") && (errors.Is(err, store.ErrNotInitialized) || errors.Is(err, store.ErrDecrypt) || errors.Is(err, store.ErrCorrupt)) {
		// A wipe that a crash interrupted leaves a store that cannot be opened; finish it.
		o, oerr := a.storeOptions(c)
		if oerr != nil {
			return nil, oerr
		}
		files, serr := store.ShredDir(ctx, o)
		if serr != nil {
			return nil, serr
		}
		a.warn("the store could not be opened (" + err.Error() + "); shredded what remained of an interrupted wipe")
		return &reply{result: map[string]any{"wiped": files, "finished_interrupted_wipe": true},
			next: []action{{"secrets audit --tail 20", "Read what happened; the audit log survives the wipe"}}}, nil
	}
	if err != nil {
		return nil, err
	}
	next := []action{{"secrets status", "See the lockdown"}, {"secrets unlock", "Lift the lockdown (on a terminal, typing the store fingerprint)"}}
	if c.Bool("wipe") {
		next = []action{{"secrets audit --tail 20", "Read what happened; the audit log survives the wipe"}}
	}
	return &reply{result: out, next: next}, nil
}

// fire runs the killswitch: lockdown and revoke all under the lock, recorded in one
// commit with the entries that caused it, then (outside the lock) rotate all and wipe, as
// act says. Every step is audited; a failing rotation hook does not stop the rest, and
// running it again after a crash finishes the job.
func (a *app) fire(ctx context.Context, c *cli.Command, trigger, reason string, act store.FailAction, first ...audit.Entry) (map[string]any, error) {
	s, err := a.open(ctx, c, modeWrite)
	if err != nil {
		return nil, err
	}
	for _, e := range first {
		s.record(e)
	}
	out := s.lockdown(trigger, reason, act)
	if err := s.finish(nil); err != nil {
		return nil, err
	}
	return out, a.afterLockdown(ctx, c, trigger, act, out)
}

// lockdown is the part of the killswitch done in the caller's session: the lockdown,
// every lease revoked (with act.RevokeAll), and the killswitch entry.
func (s *session) lockdown(trigger, reason string, act store.FailAction) map[string]any {
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
	ended := killswitch.Fire(s.state, trigger, reason, act.RevokeAll, s.a.now())
	s.record(audit.Entry{Event: "killswitch", OK: true, Detail: fmt.Sprintf("%s: %s; %s", trigger, strings.Join(steps, ", "), reason)})
	s.end(ended, "lease_revoke", "killswitch")
	return map[string]any{
		"lockdown":       lockdownInfo(s.state.Lockdown, s.st.UnlockCode()),
		"leases_revoked": len(ended),
		"steps":          steps,
	}
}

// afterLockdown rotates and wipes, outside the lock, as act says, adding to out.
func (a *app) afterLockdown(ctx context.Context, c *cli.Command, trigger string, act store.FailAction, out map[string]any) error {
	if act.RotateAll {
		done, err := a.rotateSecrets(ctx, c, nil, trigger+" killswitch")
		out["rotated"], out["rotation_failures"] = done.ok, done.failed
		if err != nil {
			a.warn("killswitch: " + err.Error() + "; going on")
		}
	}
	if !act.WipeStore {
		return nil
	}
	s, err := a.open(ctx, c, modeWrite)
	if err != nil {
		return err
	}
	s.record(audit.Entry{Event: "wipe", OK: true, Detail: trigger + ": shredding identity.age, secrets.age and leases.age; the audit log and config stay"})
	if err := s.commit(); err != nil {
		s.st.Close()
		return err
	}
	files, err := s.st.Shred()
	s.st.Close()
	out["wiped"] = files
	return err
}

func lockdownInfo(l *store.Lockdown, code string) map[string]any {
	if l == nil {
		return nil
	}
	return map[string]any{
		"since":       l.Since.UTC().Format(time.RFC3339),
		"trigger":     l.Trigger,
		"reason":      l.Reason,
		"fingerprint": code,
		"unlock":      "run secrets unlock on a terminal and type the fingerprint",
	}
}

// refuseInLockdown denies a request that would hand out a value while the store is locked down.
func (s *session) refuseInLockdown(e audit.Entry) error {
	l := s.state.Lockdown
	if l == nil {
		return nil
	}
	return s.deny(e, fmt.Errorf("%w: the store is locked down since %s (%s%s); nothing is handed out until secrets unlock",
		killswitch.ErrLockdown, l.Since.UTC().Format(time.RFC3339), l.Trigger, suffix(": ", l.Reason)))
}

func suffix(sep, s string) string {
	if s == "" {
		return ""
	}
	return sep + s
}

func (a *app) cmdUnlock() *cli.Command {
	return &cli.Command{
		Name:      "unlock",
		Usage:     "Lift a lockdown: type the store fingerprint on the controlling terminal",
		UsageText: "secrets unlock",
		Flags:     []cli.Flag{clientIDFlag()},
		Action:    a.act(a.unlock),
	}
}

// unlock asks for the store fingerprint on /dev/tty, never stdin: an agent that was told
// to run secrets unlock cannot answer for a person. It guards against instructions being
// followed, not against a process that controls a terminal.
func (a *app) unlock(ctx context.Context, c *cli.Command) (*reply, error) {
	if c.NArg() > 0 {
		return nil, usagef("unlock takes no arguments")
	}
	s, err := a.open(ctx, c, modeWrite)
	if err != nil {
		return nil, err
	}
	if s.state.Lockdown == nil {
		s.finish(nil)
		return &reply{result: map[string]any{"lockdown": nil, "unlocked": false}, next: []action{{"secrets status", "Check the store"}}}, nil
	}
	code := s.st.UnlockCode()
	err = s.finish(func() error {
		e := audit.Entry{Event: "unlock"}
		tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
		if err != nil {
			return s.deny(e, fmt.Errorf("%w: unlock needs a person at the controlling terminal (%v)", killswitch.ErrLockdown, err))
		}
		defer tty.Close()
		fmt.Fprintf(tty, "The store is locked down since %s (%s). Type its fingerprint (from secrets status) to lift it: ",
			s.state.Lockdown.Since.UTC().Format(time.RFC3339), s.state.Lockdown.Trigger)
		line, _ := bufio.NewReader(tty).ReadString('\n')
		if strings.TrimSpace(line) != code {
			return s.deny(e, fmt.Errorf("%w: that is not the store fingerprint; the lockdown stays", killswitch.ErrLockdown))
		}
		e.OK, e.Detail = true, "lockdown by "+s.state.Lockdown.Trigger+" lifted"
		s.state.Lockdown = nil
		s.record(e)
		return nil
	}())
	if err != nil {
		return nil, err
	}
	return &reply{result: map[string]any{"lockdown": nil, "unlocked": true}, next: []action{{"secrets status", "Check the store"}}}, nil
}

// canaries returns the canary secrets among leases.
func (s *session) canaries(leases []lease.Lease) []string {
	var names []string
	for _, l := range leases {
		if sec := s.secrets.Secrets[l.Secret]; sec != nil && sec.Canary && !slices.Contains(names, l.Secret) {
			names = append(names, l.Secret)
		}
	}
	return names
}

// tripCanaries runs after a canary's value was handed out as usual: it records
// canary_tripped (with the actor) and fires the killswitch with canary_action.
func (a *app) tripCanaries(ctx context.Context, c *cli.Command, names []string, client string, act store.FailAction) {
	if len(names) == 0 {
		return
	}
	entries := make([]audit.Entry, len(names))
	for i, n := range names {
		entries[i] = audit.Entry{Event: "canary_tripped", Secret: n, ClientID: client, OK: true, Detail: "a canary was handed out; firing the killswitch"}
	}
	reason := fmt.Sprintf("canary %s used by %s", strings.Join(names, ", "), client)
	if _, err := a.fire(ctx, c, "canary", reason, act, entries...); err != nil {
		a.warn("canary: the killswitch failed: " + err.Error())
	}
}
