package main

import (
	"context"

	"github.com/urfave/cli/v3"
)

func (a *app) cmdLeases() *cli.Command {
	return &cli.Command{
		Name:      "leases",
		Usage:     "List active leases (no values)",
		UsageText: "secrets leases [--secret NAME] [--client-id ID]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "secret", Usage: "only leases of this secret"},
			&cli.StringFlag{Name: "client-id", Usage: "only leases held by this client"},
		},
		Action: a.act(a.leases),
	}
}

func (a *app) leases(ctx context.Context, c *cli.Command) (*reply, error) {
	if err := noArgs(c); err != nil {
		return nil, err
	}
	v, err := a.vault(c)
	if err != nil {
		return nil, err
	}
	out, err := v.Leases(ctx, c.String("secret"), c.String("client-id"))
	if err != nil {
		return nil, err
	}
	next := []action{{"secrets revoke --all", "Revoke every active lease"}}
	if out.Count > 0 {
		next = append([]action{{"secrets revoke " + out.Leases[0].LeaseID, "Revoke a lease"}}, next...)
	}
	return &reply{result: out, next: next}, nil
}
