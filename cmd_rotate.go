package main

import (
	"context"

	"github.com/agent-secrets/secrets/vault"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdRotate() *cli.Command {
	return &cli.Command{
		Name:      "rotate",
		Usage:     "Run a secret's rotation hook, store the new value and revoke the leases of the old one",
		UsageText: "secrets rotate <name> | secrets rotate --all",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Usage: "rotate every secret that has a hook"},
			clientIDFlag(),
		},
		Action: a.act(a.rotate),
	}
}

func (a *app) rotate(ctx context.Context, c *cli.Command) (*reply, error) {
	all := c.Bool("all")
	var names []string
	switch {
	case all && c.NArg() > 0:
		return nil, vault.Usagef("give a name or --all, not both")
	case !all && c.NArg() != 1:
		return nil, vault.Usagef("give one secret name, or --all; usage: %s", c.UsageText)
	case !all:
		names = []string{c.Args().First()}
	}
	v, err := a.vault(c)
	if err != nil {
		return nil, err
	}
	out, err := v.Rotate(ctx, names, c.String("client-id"))
	if err != nil {
		return nil, err
	}
	return &reply{result: out, next: []action{{"secrets audit --event rotate", "See the rotations in the audit log"}}}, nil
}
