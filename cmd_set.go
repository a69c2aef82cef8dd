package main

import (
	"context"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/store"
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
	if c.IsSet("rotate-via") || c.IsSet("verify-via") {
		return a.setHooks(ctx, c, name)
	}
	sec, err := a.writeValue(ctx, c, "secret_set", name, func(sec *store.Secrets, v []byte) (*store.Secret, error) {
		return sec.Set(name, v, a.now())
	})
	if err != nil {
		return nil, err
	}
	return &reply{
		result: secretInfo(name, sec, false),
		next: []action{
			{"secrets leases --secret " + name, "See leases still holding the previous value"},
			{"secrets revoke LEASE_ID", "End a lease that holds the previous value"},
		},
	}, nil
}

// setHooks changes a secret's rotation hook and check, and reads no value.
func (a *app) setHooks(ctx context.Context, c *cli.Command, name string) (*reply, error) {
	s, err := a.open(ctx, c, modeWrite|withSecrets)
	if err != nil {
		return nil, err
	}
	var sec *store.Secret
	err = s.finish(func() error {
		e := audit.Entry{Event: "secret_hooks", Secret: shortField(name)}
		if sec, err = s.secrets.Get(name); err != nil {
			return s.deny(e, err)
		}
		if c.IsSet("rotate-via") {
			sec.RotateVia = c.String("rotate-via")
		}
		if c.IsSet("verify-via") {
			sec.VerifyVia = c.String("verify-via")
		}
		s.secretsDirty = true
		e.OK, e.Detail = true, "rotation hook or check changed"
		s.record(e)
		return nil
	}())
	if err != nil {
		return nil, err
	}
	return &reply{result: secretInfo(name, sec, false), next: []action{{"secrets rotate " + name, "Rotate it now"}}}, nil
}
