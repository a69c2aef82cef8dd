package main

import (
	"context"

	"github.com/agent-secrets/secrets/vault"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdWitnessKey() *cli.Command {
	return &cli.Command{
		Name:      "witness-key",
		Usage:     "Print the key the heartbeat endpoint checks the log heads secrets watch sends with",
		UsageText: "secrets witness-key",
		Flags:     []cli.Flag{clientIDFlag()},
		Action:    a.act(a.witnessKey),
	}
}

func (a *app) witnessKey(ctx context.Context, c *cli.Command) (*reply, error) {
	if c.NArg() > 0 {
		return nil, vault.Usagef("witness-key takes no arguments; usage: %s", c.UsageText)
	}
	v, err := a.vault(c)
	if err != nil {
		return nil, err
	}
	k, err := v.WitnessKey(ctx, c.String("client-id"))
	if err != nil {
		return nil, err
	}
	return &reply{result: k, next: []action{
		{"secrets watch --once", "Send the log head to the heartbeat endpoint, and check the one it saw before"},
	}}, nil
}
