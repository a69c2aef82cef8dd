package main

import (
	"context"

	"github.com/agent-secrets/secrets/vault"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdInit() *cli.Command {
	return &cli.Command{
		Name:      "init",
		Usage:     "Create the encrypted store (identity, secrets, leases, audit log, config)",
		UsageText: "secrets init [--pq]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "pq", Usage: "generate a hybrid post-quantum (ML-KEM-768 + X25519) identity"},
		},
		Action: a.act(a.initStore),
	}
}

func (a *app) initStore(ctx context.Context, c *cli.Command) (*reply, error) {
	if err := noArgs(c); err != nil {
		return nil, err
	}
	v, err := a.vault(c)
	if err != nil {
		return nil, err
	}
	out, err := v.Init(ctx, vault.InitInput{PQ: c.Bool("pq")})
	if err != nil {
		return nil, err
	}
	return &reply{result: out, next: []action{
		{"echo \"$VALUE\" | secrets add NAME", "Store a secret from stdin (or run without a pipe to be prompted)"},
		{"secrets status", "Check the store"},
	}}, nil
}
