package main

import (
	"context"

	"github.com/agent-secrets/secrets/vault"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdSet() *cli.Command {
	return &cli.Command{
		Name:      "set",
		Usage:     "Replace a secret's value (stdin or hidden prompt), keeping its metadata; or, with --rotate-via/--verify-via, change only its hooks",
		UsageText: "secrets set <name>  (value on stdin, or typed at the prompt) | secrets set <name> [--rotate-via CMD] [--verify-via CMD]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "rotate-via", Usage: "set the rotation hook (\"\" removes it); no value is read"},
			&cli.StringFlag{Name: "verify-via", Usage: "set the rotation check (\"\" removes it); no value is read"},
			clientIDFlag(),
		},
		Action: a.act(a.set),
	}
}

func (a *app) set(ctx context.Context, c *cli.Command) (*reply, error) {
	name, err := oneArg(c, "name")
	if err != nil {
		return nil, err
	}
	v, err := a.vault(c)
	if err != nil {
		return nil, err
	}
	if c.IsSet("rotate-via") || c.IsSet("verify-via") {
		in := vault.HooksInput{Name: name, ClientID: c.String("client-id")}
		if c.IsSet("rotate-via") {
			in.RotateVia = ptr(c.String("rotate-via"))
		}
		if c.IsSet("verify-via") {
			in.VerifyVia = ptr(c.String("verify-via"))
		}
		info, err := v.SetHooks(ctx, in)
		if err != nil {
			return nil, err
		}
		return &reply{result: info, next: []action{{"secrets rotate " + name, "Rotate it now"}}}, nil
	}
	value, err := a.valueFor(name)
	if err != nil {
		return nil, err
	}
	defer clear(value)
	info, err := v.Set(ctx, vault.SetInput{Name: name, Value: value, ClientID: c.String("client-id")})
	if err != nil {
		return nil, err
	}
	return &reply{result: info, next: []action{
		{"secrets leases --secret " + name, "See leases still holding the previous value"},
		{"secrets revoke LEASE_ID", "End a lease that holds the previous value"},
	}}, nil
}

func ptr[T any](v T) *T { return &v }
