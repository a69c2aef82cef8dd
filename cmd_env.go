package main

import (
	"context"
	"fmt"

	"github.com/agent-secrets/secrets/internal/duration"
	"github.com/agent-secrets/secrets/vault"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdEnv() *cli.Command {
	return &cli.Command{
		Name:      "env",
		Usage:     "Lease the project's secrets and write them to a managed .env file (0600), removed when the leases end",
		UsageText: "secrets env [--output .env] [--force] [--file .secrets.json | --secret NAME[=ENV_VAR] …] [--ttl D]",
		Flags: append(mappingFlags(),
			&cli.StringFlag{Name: "output", Value: ".env", Usage: "the file to write"},
			&cli.BoolFlag{Name: "force", Usage: "replace an existing file"},
		),
		Action: a.act(a.env),
	}
}

// mappingFlags are the flags that say which secrets go into which variables.
func mappingFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "file", Value: ".secrets.json", Usage: "the project's mapping file"},
		&cli.StringSliceFlag{Name: "secret", Usage: "NAME[=ENV_VAR], repeatable, instead of a mapping file"},
		&cli.StringFlag{Name: "ttl", Usage: "TTL for entries that set none (default: default_lease_ttl)"},
		clientIDFlag(), waitFlag(),
	}
}

// project reads the mapping flags.
func project(c *cli.Command) vault.Project {
	return vault.Project{File: c.String("file"), Secrets: c.StringSlice("secret")}
}

func (a *app) env(ctx context.Context, c *cli.Command) (*reply, error) {
	if c.NArg() > 0 {
		return nil, vault.Usagef("env takes no arguments; name secrets with --secret or in %s", c.String("file"))
	}
	wait, err := durationFlag(c, "wait", duration.Positive)
	if err != nil {
		return nil, err
	}
	in := vault.EnvInput{Project: project(c), Output: c.String("output"), Force: c.Bool("force"),
		TTL: c.String("ttl"), ClientID: c.String("client-id"), Wait: wait}
	var out *vault.EnvResult
	if a.guarded != nil {
		out, err = a.envGuarded(ctx, a.guarded, in)
	} else {
		var v *vault.Vault
		if v, err = a.vault(c); err == nil {
			out, err = v.Env(ctx, in)
		}
	}
	if err != nil {
		return nil, err
	}
	for _, name := range out.Warnings {
		a.warn(fmt.Sprintf("%s holds characters that only bash reads back exactly from a .env file; other dotenv parsers may misread it or fail on the file. Prefer: secrets exec -- CMD", name))
	}
	return &reply{result: out, next: []action{
		{"set -a; source " + shellWord(out.Path) + "; set +a", "Load the variables into the current shell"},
		{"secrets cleanup --all", "Remove the file now and end its leases (it is also removed when they end)"},
		{"secrets exec --file " + shellWord(out.Source) + " -- CMD", "Run a command with the secrets and no file at all"},
	}}, nil
}
