package main

import (
	"context"

	"github.com/agent-secrets/secrets/vault"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdCleanup() *cli.Command {
	return &cli.Command{
		Name:      "cleanup",
		Usage:     "Remove .env files written by secrets env whose leases ended (--all: every one, ending its leases)",
		UsageText: "secrets cleanup [--dry-run] [--all]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "dry-run", Usage: "say what would be removed, change nothing"},
			&cli.BoolFlag{Name: "all", Usage: "remove every managed file, revoking the leases still using it"},
			clientIDFlag(),
		},
		Action: a.act(a.cleanup),
	}
}

func (a *app) cleanup(ctx context.Context, c *cli.Command) (*reply, error) {
	if err := noArgs(c); err != nil {
		return nil, err
	}
	in := vault.CleanupInput{DryRun: c.Bool("dry-run"), All: c.Bool("all"), ClientID: c.String("client-id")}
	var out *vault.CleanupResult
	var err error
	if a.guarded != nil {
		out, err = a.cleanupGuarded(ctx, a.guarded, in)
	} else {
		var v *vault.Vault
		if v, err = a.vault(c); err == nil {
			out, err = v.Cleanup(ctx, in)
		}
	}
	if err != nil {
		return nil, err
	}
	return &reply{result: out, next: []action{{"secrets leases", "List the leases still active"}}}, nil
}
