package main

import (
	"context"

	"github.com/agent-secrets/secrets/vault"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdRevoke() *cli.Command {
	return &cli.Command{
		Name:      "revoke",
		Usage:     "End a lease now, or every lease with --all",
		UsageText: "secrets revoke <lease_id> | secrets revoke --all",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Usage: "revoke every active lease"},
			clientIDFlag(),
		},
		Action: a.act(a.revoke),
	}
}

func (a *app) revoke(ctx context.Context, c *cli.Command) (*reply, error) {
	all := c.Bool("all")
	switch {
	case all && c.NArg() > 0:
		return nil, vault.Usagef("give a lease id or --all, not both")
	case !all && c.NArg() != 1:
		return nil, vault.Usagef("give one lease id, or --all; usage: %s", c.UsageText)
	}
	v, err := a.vault(c)
	if err != nil {
		return nil, err
	}
	next := []action{{"secrets leases", "List the leases still active"}}
	if all {
		out, err := v.RevokeAll(ctx, c.String("client-id"))
		if err != nil {
			return nil, err
		}
		return &reply{result: out, next: next}, nil
	}
	out, err := v.Revoke(ctx, c.Args().First(), c.String("client-id"))
	if err != nil {
		return nil, err
	}
	return &reply{result: out, next: next}, nil
}
