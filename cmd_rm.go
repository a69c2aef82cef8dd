package main

import (
	"context"

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
	v, err := a.vault(c)
	if err != nil {
		return nil, err
	}
	out, err := v.Remove(ctx, name, c.String("client-id"))
	if err != nil {
		return nil, err
	}
	return &reply{result: out, next: []action{{"secrets list", "List the remaining secrets"}}}, nil
}
