package main

import (
	"context"

	"github.com/urfave/cli/v3"
)

func (a *app) cmdStatus() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "Show the store: secrets, active leases, identity, audit log health",
		UsageText: "secrets status",
		Action:    a.act(a.status),
	}
}

func (a *app) status(ctx context.Context, c *cli.Command) (*reply, error) {
	if err := noArgs(c); err != nil {
		return nil, err
	}
	v, err := a.vault(c)
	if err != nil {
		return nil, err
	}
	out, err := v.Status(ctx)
	if err != nil {
		return nil, err
	}
	next := []action{{"secrets list", "List stored secrets"}, {"secrets leases", "List active leases"}}
	if out.Lockdown != nil {
		next = []action{{"secrets unlock", "Lift the lockdown: a person types the fingerprint on a terminal"}}
	}
	if out.Audit.Status != "ok" {
		next = []action{{"secrets audit --verify", "Find where the audit log was changed"}, {"secrets audit --reset --yes", "Move the damaged log aside and start a new one"}}
	}
	return &reply{result: out, next: next}, nil
}
