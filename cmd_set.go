package main

import (
	"context"

	"github.com/agent-secrets/secrets/store"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdSet() *cli.Command {
	return &cli.Command{
		Name:      "set",
		Usage:     "Replace a secret's value (stdin or hidden prompt), keeping its metadata",
		UsageText: "secrets set <name>  (value on stdin, or typed at the prompt)",
		Flags:     []cli.Flag{clientIDFlag()},
		Action:    a.act(a.set),
	}
}

func (a *app) set(ctx context.Context, c *cli.Command) (*reply, error) {
	name, err := oneArg(c, "name")
	if err != nil {
		return nil, err
	}
	sec, err := a.writeValue(ctx, c, "secret_set", name, func(sec *store.Secrets, v []byte) (*store.Secret, error) {
		return sec.Set(name, v, a.now())
	})
	if err != nil {
		return nil, err
	}
	return &reply{
		result: secretInfo(name, sec),
		next: []action{
			{"secrets leases --secret " + name, "See leases still holding the previous value"},
			{"secrets revoke LEASE_ID", "End a lease that holds the previous value"},
		},
	}, nil
}
