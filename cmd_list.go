package main

import (
	"context"

	"github.com/urfave/cli/v3"
)

func (a *app) cmdList() *cli.Command {
	return &cli.Command{
		Name:      "list",
		Usage:     "List secret names and metadata (never values)",
		UsageText: "secrets list",
		// Which secrets are canaries is an admin's to see (README, "Canaries"): the flag is
		// not shown to the agents that read this help, and using it is audited.
		Flags:  []cli.Flag{&cli.BoolFlag{Name: "show-canaries", Hidden: true}},
		Action: a.act(a.list),
	}
}

func (a *app) list(ctx context.Context, c *cli.Command) (*reply, error) {
	if err := noArgs(c); err != nil {
		return nil, err
	}
	v, err := a.vault(c)
	if err != nil {
		return nil, err
	}
	out, err := v.List(ctx, c.Bool("show-canaries"))
	if err != nil {
		return nil, err
	}
	next := []action{{"secrets lease NAME --ttl 1h --client-id AGENT", "Lease a secret (prints the raw value)"}}
	if out.Count == 0 {
		next = []action{{"echo \"$VALUE\" | secrets add NAME", "Store the first secret"}}
	}
	return &reply{result: out, next: next}, nil
}
