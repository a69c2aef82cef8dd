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
	if c.NArg() > 0 {
		return nil, usagef("leases takes no arguments")
	}
	s, err := a.open(ctx, c, modeRead)
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for _, l := range s.active() {
		if (c.String("secret") == "" || l.Secret == c.String("secret")) && (c.String("client-id") == "" || l.ClientID == c.String("client-id")) {
			out = append(out, leaseInfo(l))
		}
	}
	if err := s.finish(nil); err != nil {
		return nil, err
	}
	next := []action{{"secrets revoke --all", "Revoke every active lease"}}
	if len(out) > 0 {
		next = append([]action{{"secrets revoke " + out[0]["lease_id"].(string), "Revoke a lease"}}, next...)
	}
	return &reply{result: map[string]any{"leases": out, "count": len(out)}, next: next}, nil
}
