package main

import (
	"context"

	"github.com/agent-secrets/secrets/vault"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdRenew() *cli.Command {
	return &cli.Command{
		Name:      "renew",
		Usage:     "Extend an active lease to now + TTL",
		UsageText: "secrets renew <lease_id> [--ttl 1h]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "ttl", Usage: "new duration from now (default: the lease's own TTL)"},
			clientIDFlag(),
		},
		Action: a.act(a.renew),
	}
}

func (a *app) renew(ctx context.Context, c *cli.Command) (*reply, error) {
	id, err := oneArg(c, "lease_id")
	if err != nil {
		return nil, err
	}
	v, err := a.vault(c)
	if err != nil {
		return nil, err
	}
	l, err := v.Renew(ctx, vault.RenewInput{ID: id, TTL: c.String("ttl"), ClientID: c.String("client-id")})
	if err != nil {
		return nil, err
	}
	return &reply{result: l, next: []action{{"secrets revoke " + l.LeaseID, "Revoke this lease when done"}}}, nil
}
