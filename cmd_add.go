package main

import (
	"context"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/store"
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
			&cli.BoolFlag{Name: "canary", Usage: "a honeytoken: leasing it hands out the value and fires the killswitch (canary_action)"},
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
	sec, err := a.writeValue(ctx, c, "secret_add", name, func(sec *store.Secrets, v []byte) (*store.Secret, error) {
		added, err := sec.Add(name, v, c.String("rotate-via"), a.now())
		if err == nil {
			added.VerifyVia, added.Canary = c.String("verify-via"), c.Bool("canary")
		}
		return added, err
	})
	if err != nil {
		return nil, err
	}
	return &reply{
		result: secretInfo(name, sec, false),
		next: []action{
			{"secrets lease " + name + " --ttl 1h --client-id AGENT", "Lease it (prints the raw value)"},
			{"secrets exec --secret " + name + "=ENV_VAR -- CMD", "Run a command with it in the environment"},
		},
	}, nil
}

// writeValue is add and set: check the name, read the value before taking the lock (a
// person may be typing), then apply change under the lock and record event.
func (a *app) writeValue(ctx context.Context, c *cli.Command, event, name string, change func(*store.Secrets, []byte) (*store.Secret, error)) (*store.Secret, error) {
	var value []byte
	var readErr error
	if store.CheckName(name) == nil {
		value, readErr = a.readValue(name)
		defer clear(value)
	}
	s, err := a.open(ctx, c, modeWrite|withSecrets)
	if err != nil {
		return nil, err
	}
	var out *store.Secret
	return out, s.finish(func() error {
		e := audit.Entry{Event: event, Secret: name}
		if err := store.CheckName(name); err != nil {
			e.Secret = ""
			return s.deny(e, err)
		}
		if readErr != nil {
			return s.deny(e, readErr)
		}
		sec, err := s.loadSecrets()
		if err != nil {
			return err
		}
		if out, err = change(sec, value); err != nil {
			return s.deny(e, err)
		}
		s.secretsDirty = true
		e.OK = true
		s.record(e)
		return nil
	}())
}

// oneArg returns the single positional argument, or a usage error naming what is missing.
func oneArg(c *cli.Command, what string) (string, error) {
	switch c.NArg() {
	case 1:
		return c.Args().First(), nil
	case 0:
		return "", usagef("missing <%s>; usage: %s", what, c.UsageText)
	}
	return "", usagef("too many arguments; usage: %s", c.UsageText)
}

func clientIDFlag() cli.Flag {
	return &cli.StringFlag{Name: "client-id", Usage: "who is asking, for the audit log (default $SECRETS_CLIENT_ID, else <parent>-<ppid>)"}
}

// secretInfo is a secret's metadata as commands report it. It never includes the value,
// and says whether it is a canary only when asked: a canary must look like any secret.
func secretInfo(name string, sec *store.Secret, showCanary bool) map[string]any {
	m := map[string]any{
		"name":       name,
		"created_at": sec.CreatedAt,
		"updated_at": sec.UpdatedAt,
		"size":       len(sec.Value),
	}
	if sec.RotateVia != "" {
		m["rotate_via"] = sec.RotateVia
	}
	if sec.VerifyVia != "" {
		m["verify_via"] = sec.VerifyVia
	}
	if sec.RotatedAt != nil {
		m["rotated_at"] = sec.RotatedAt
	}
	if showCanary {
		m["canary"] = sec.Canary
	}
	return m
}
