package main

import (
	"context"
	"fmt"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/lease"
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
		return nil, usagef("give a lease id or --all, not both")
	case !all && c.NArg() != 1:
		return nil, usagef("give one lease id, or --all; usage: %s", c.UsageText)
	}
	s, err := a.open(ctx, c, modeWrite)
	if err != nil {
		return nil, err
	}
	var ended []lease.Lease
	err = s.finish(func() error {
		if all {
			ended = lease.RevokeAll(&s.state.Leases)
			s.end(ended, "lease_revoke", "revoke --all")
			s.record(audit.Entry{Event: "revoke_all", OK: true, Detail: fmt.Sprintf("%d leases revoked", len(ended))})
			return nil
		}
		id := c.Args().First()
		l, err := lease.Revoke(&s.state.Leases, id)
		if err != nil {
			return s.deny(audit.Entry{Event: "lease_revoke", LeaseID: shortField(id)}, err)
		}
		ended = []lease.Lease{l}
		s.end(ended, "lease_revoke", "revoked")
		return nil
	}())
	if err != nil {
		return nil, err
	}
	next := []action{{"secrets leases", "List the leases still active"}}
	if all {
		return &reply{result: map[string]any{"leases_revoked": len(ended), "lease_ids": leaseIDs(ended)}, next: next}, nil
	}
	r := leaseInfo(ended[0])
	r["revoked"] = true
	return &reply{result: r, next: next}, nil
}
