package main

import (
	"context"

	"github.com/agent-secrets/secrets/vault"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdAudit() *cli.Command {
	return &cli.Command{
		Name:      "audit",
		Usage:     "Read, verify or reset the tamper-evident audit log",
		UsageText: "secrets audit [--tail 50] [--secret NAME] [--client-id ID] [--event E] [--since 1h] | --verify | --rotate | --reset --yes",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "tail", Value: 50, Usage: "how many of the last entries to show"},
			&cli.StringFlag{Name: "secret", Usage: "only entries for this secret"},
			&cli.StringFlag{Name: "client-id", Usage: "only entries by this client"},
			&cli.StringFlag{Name: "event", Usage: "only this event (lease_grant, lease_denied, lease_revoke, …)"},
			&cli.StringFlag{Name: "since", Usage: "only entries newer than a duration ago (1h) or an RFC 3339 time"},
			&cli.BoolFlag{Name: "verify", Usage: "check every line's MAC and chain link and the pinned head"},
			&cli.BoolFlag{Name: "rotate", Usage: "seal the current segment (kept, read-only, chained) and start a new one"},
			&cli.BoolFlag{Name: "reset", Usage: "move a damaged log aside (kept) and start a new one; needs --yes"},
			&cli.BoolFlag{Name: "yes", Usage: "confirm --reset"},
		},
		Action: a.act(a.audit),
	}
}

func (a *app) audit(ctx context.Context, c *cli.Command) (*reply, error) {
	if err := noArgs(c); err != nil {
		return nil, err
	}
	modes := 0
	for _, f := range []string{"verify", "rotate", "reset"} {
		if c.Bool(f) {
			modes++
		}
	}
	switch {
	case modes > 1:
		return nil, vault.Usagef("give one of --verify, --rotate and --reset")
	case c.Bool("reset") && !c.Bool("yes"):
		return nil, vault.Usagef("--reset moves the audit log aside and starts a new one; confirm with --reset --yes")
	}
	v, err := a.vault(c)
	if err != nil {
		return nil, err
	}
	switch {
	case c.Bool("verify"):
		out, err := v.Verify(ctx)
		if err != nil {
			return nil, err
		}
		return &reply{result: out, next: []action{{"secrets audit --tail 20", "Read the latest entries"}}}, nil
	case c.Bool("rotate"):
		out, err := v.RotateLog(ctx)
		if err != nil {
			return nil, err
		}
		return &reply{result: out, next: []action{{"secrets audit --verify", "Check the whole chain, sealed segments included"}}}, nil
	case c.Bool("reset"):
		out, err := v.Reset(ctx)
		if err != nil {
			return nil, err
		}
		return &reply{result: out, next: []action{{"secrets audit --verify", "Check the new log"}}}, nil
	}
	out, err := v.Audit(ctx, vault.AuditInput{Tail: int(c.Int("tail")), Secret: c.String("secret"), ClientID: c.String("client-id"),
		Event: c.String("event"), Since: c.String("since")})
	if err != nil {
		return nil, err
	}
	return &reply{result: out, next: []action{{"secrets audit --verify", "Check the whole log against its chain and pinned head"}}}, nil
}
