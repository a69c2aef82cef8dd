package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/lease"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdAudit() *cli.Command {
	return &cli.Command{
		Name:      "audit",
		Usage:     "Read, verify or reset the tamper-evident audit log",
		UsageText: "secrets audit [--tail 50] [--secret NAME] [--client-id ID] [--event E] [--since 1h] | --verify | --reset --yes",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "tail", Value: 50, Usage: "how many of the last entries to show"},
			&cli.StringFlag{Name: "secret", Usage: "only entries for this secret"},
			&cli.StringFlag{Name: "client-id", Usage: "only entries by this client"},
			&cli.StringFlag{Name: "event", Usage: "only this event (lease_grant, lease_denied, lease_revoke, …)"},
			&cli.StringFlag{Name: "since", Usage: "only entries newer than a duration ago (1h) or an RFC 3339 time"},
			&cli.BoolFlag{Name: "verify", Usage: "check every line's MAC and chain link and the pinned head"},
			&cli.BoolFlag{Name: "reset", Usage: "move a damaged log aside (kept) and start a new one; needs --yes"},
			&cli.BoolFlag{Name: "yes", Usage: "confirm --reset"},
		},
		Action: a.act(a.audit),
	}
}

func (a *app) audit(ctx context.Context, c *cli.Command) (*reply, error) {
	if c.NArg() > 0 {
		return nil, usagef("audit takes no arguments")
	}
	if c.Bool("verify") && c.Bool("reset") {
		return nil, usagef("give --verify or --reset, not both")
	}
	if c.Bool("reset") && !c.Bool("yes") {
		return nil, usagef("--reset moves the audit log aside and starts a new one; confirm with --reset --yes")
	}
	if c.Int("tail") < 1 {
		return nil, usagef("--tail must be at least 1")
	}
	f := audit.Filter{Secret: c.String("secret"), ClientID: c.String("client-id"), Event: c.String("event")}
	if since := c.String("since"); since != "" {
		t, err := a.parseSince(since)
		if err != nil {
			return nil, err
		}
		f.Since = t
	}
	m := modeRead
	if c.Bool("verify") || c.Bool("reset") {
		m |= readsWholeLog
	}
	s, err := a.open(ctx, c, m)
	if err != nil {
		return nil, err
	}
	switch {
	case c.Bool("verify"):
		return s.verify()
	case c.Bool("reset"):
		return s.reset()
	}
	entries, err := s.log.Tail(c.Int("tail"), f)
	if err := s.finish(err); err != nil {
		return nil, err
	}
	return &reply{
		result: map[string]any{"entries": entries, "count": len(entries)},
		next:   []action{{"secrets audit --verify", "Check the whole log against its chain and pinned head"}},
	}, nil
}

func (a *app) parseSince(since string) (time.Time, error) {
	if d, err := lease.ParseDuration(since); err == nil && d > 0 {
		return a.now().Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, since); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("--since: want a duration like 1h or an RFC 3339 time, got %q", since)
}

// verify checks the whole log. Damage is recorded in leases.age, so every later command
// that would append refuses until a reset, even where its O(1) head check cannot see it.
// A finding that no longer holds (the log was restored from a backup) is lifted.
func (s *session) verify() (*reply, error) {
	rep, err := s.log.Verify(s.state.AuditHead)
	var tamper *audit.TamperError
	if err != nil && !errors.As(err, &tamper) {
		return nil, s.finish(err)
	}
	found := ""
	if tamper != nil {
		found = tamper.Error()
	}
	if found != s.state.AuditBroken {
		s.state.AuditBroken = found
		if serr := s.st.SaveState(s.state); serr != nil {
			return nil, s.finish(serr)
		}
	}
	if err != nil {
		return nil, s.finish(err)
	}
	s.broken, s.unstamped = nil, true // read in full and sound: stamp it
	if err := s.finish(nil); err != nil {
		return nil, err
	}
	return &reply{
		result: map[string]any{"valid": true, "entries": rep.Entries, "head": rep.Head, "pinned": s.state.AuditHead},
		next:   []action{{"secrets audit --tail 20", "Read the latest entries"}},
	}, nil
}

// reset moves a damaged log aside and starts a new one whose first entry records the
// break. It verifies first, so the entry names the damage as it is now, and it refuses
// to reset an intact log: that would only hide history.
func (s *session) reset() (*reply, error) {
	_, verr := s.log.Verify(s.state.AuditHead)
	if verr == nil {
		return nil, s.finish(usagef("the audit log verifies; --reset is only for a damaged log (run secrets audit --verify to clear an earlier finding)"))
	}
	if !errors.Is(verr, audit.ErrTampered) {
		return nil, s.finish(verr)
	}
	reason := verr.Error()
	moved, start, err := s.log.Reset()
	if err != nil {
		return nil, s.finish(fmt.Errorf("%w: %v", audit.ErrFailed, err))
	}
	s.broken, s.head, s.state.AuditBroken = nil, start, ""
	s.pending = nil
	s.record(audit.Entry{Event: audit.EventReset, OK: true,
		Detail: fmt.Sprintf("previous log moved to %s (%s); reason: %s", moved, start.Hash, reason)})
	if err := s.finish(nil); err != nil {
		return nil, err
	}
	return &reply{
		result: map[string]any{"reset": true, "moved_to": moved, "previous_sha256": start.Hash, "reason": reason},
		next:   []action{{"secrets audit --verify", "Check the new log"}},
	}, nil
}
