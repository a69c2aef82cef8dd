package main

import (
	"context"

	"github.com/agent-secrets/secrets/vault"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdAdd() *cli.Command {
	return &cli.Command{
		Name:      "add",
		Usage:     "Store a new secret; the value comes from stdin or a hidden prompt, never from argv",
		UsageText: "secrets add <name> [--rotate-via CMD]  (value on stdin, or typed at the prompt)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "rotate-via", Usage: "command that rotates this secret: gets the value on stdin, prints the new one (or nothing if it refreshed it elsewhere)"},
			&cli.StringFlag{Name: "verify-via", Usage: "command that checks a rotated value (on stdin) before it is stored"},
			// Hidden for the reason of list --show-canaries: the README documents it.
			&cli.BoolFlag{Name: "canary", Hidden: true},
			clientIDFlag(),
		},
		Action: a.act(a.add),
	}
}

func (a *app) add(ctx context.Context, c *cli.Command) (*reply, error) {
	name, err := oneArg(c, "name")
	if err != nil {
		return nil, err
	}
	if a.guarded != nil {
		value, err := a.valueFor(name)
		if err != nil {
			return nil, err
		}
		defer clear(value)
		return nil, a.addGuarded(ctx, a.guarded, name, value, c.String("client-id"))
	}
	v, err := a.vault(c)
	if err != nil {
		return nil, err
	}
	value, err := a.valueFor(name)
	if err != nil {
		return nil, err
	}
	defer clear(value)
	info, err := v.Add(ctx, vault.AddInput{Name: name, Value: value, RotateVia: c.String("rotate-via"), VerifyVia: c.String("verify-via"),
		Canary: c.Bool("canary"), ClientID: c.String("client-id")})
	if err != nil {
		return nil, err
	}
	return &reply{result: info, next: []action{
		{"secrets lease " + name + " --ttl 1h --client-id AGENT", "Lease it (prints the raw value)"},
		{"secrets exec --secret " + name + "=ENV_VAR -- CMD", "Run a command with it in the environment"},
	}}, nil
}

// valueFor reads the value for name, before any lock is taken (a person may be typing),
// and only when the name is valid: an invalid name is refused (and recorded) by the
// vault without asking for a value it would not store.
func (a *app) valueFor(name string) ([]byte, error) {
	if vault.CheckName(name) != nil {
		return nil, nil
	}
	return a.readValue(name)
}
