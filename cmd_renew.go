package main

import (
	"context"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/lease"
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
	s, err := a.open(ctx, c, modeWrite)
	if err != nil {
		return nil, err
	}
	var l lease.Lease
	err = s.finish(func() error {
		e := audit.Entry{Event: "lease_renew", LeaseID: shortField(id)}
		l, err = s.mgr.Renew(s.state.Leases, id, c.String("ttl"))
		if err != nil {
			return s.deny(e, err)
		}
		e.Secret, e.OK, e.Detail = l.Secret, true, "ttl "+l.TTL
		s.record(e)
		return nil
	}())
	if err != nil {
		return nil, err
	}
	return &reply{result: leaseInfo(l), next: []action{{"secrets revoke " + l.ID, "Revoke this lease when done"}}}, nil
}

// shortField bounds what an unvalidated argument can put into an audit entry.
func shortField(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
