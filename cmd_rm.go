package main

import (
	"context"
	"fmt"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/store"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdRm() *cli.Command {
	return &cli.Command{
		Name:      "rm",
		Usage:     "Remove a secret and revoke its leases",
		UsageText: "secrets rm <name>",
		Flags:     []cli.Flag{clientIDFlag()},
		Action:    a.act(a.rm),
	}
}

func (a *app) rm(ctx context.Context, c *cli.Command) (*reply, error) {
	name, err := oneArg(c, "name")
	if err != nil {
		return nil, err
	}
	s, err := a.open(ctx, c, modeWrite|withSecrets)
	if err != nil {
		return nil, err
	}
	var ended []lease.Lease
	err = s.finish(func() error {
		e := audit.Entry{Event: "secret_remove", Secret: name}
		if err := store.CheckName(name); err != nil {
			e.Secret = ""
			return s.deny(e, err)
		}
		sec, err := s.loadSecrets()
		if err != nil {
			return err
		}
		if err := sec.Remove(name); err != nil {
			return s.deny(e, err)
		}
		s.secretsDirty = true
		ended = lease.RevokeSecret(&s.state.Leases, name)
		s.end(ended, "lease_revoke", "secret removed")
		e.OK, e.Detail = true, fmt.Sprintf("%d leases revoked", len(ended))
		s.record(e)
		return nil
	}())
	if err != nil {
		return nil, err
	}
	return &reply{
		result: map[string]any{"name": name, "removed": true, "leases_revoked": len(ended), "lease_ids": leaseIDs(ended)},
		next:   []action{{"secrets list", "List the remaining secrets"}},
	}, nil
}

func leaseIDs(ls []lease.Lease) []string {
	ids := make([]string, len(ls))
	for i, l := range ls {
		ids[i] = l.ID
	}
	return ids
}
