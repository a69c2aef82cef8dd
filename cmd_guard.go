package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/agent-secrets/secrets/guard"
	"github.com/agent-secrets/secrets/vault"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdGuard() *cli.Command {
	return &cli.Command{
		Name:      "guard",
		Usage:     "Put the store behind an OS boundary: a system user owns it, agent users reach it only through this binary via sudo (root)",
		UsageText: "sudo secrets guard --allow USER|%GROUP … [--user _secrets] [--dir /var/lib/secrets] [--from DIR] | secrets guard --status | sudo secrets guard --remove [--delete-store --yes]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "allow", Usage: "an agent user, or %group, that may use the store (repeat for more); never an admin"},
			&cli.StringFlag{Name: "user", Value: guard.DefaultUser, Usage: "the system user that owns the store (created when missing)"},
			&cli.StringFlag{Name: "from", Usage: "move this plain store in (its files byte for byte, history kept); it is removed once the guarded copy verifies"},
			&cli.BoolFlag{Name: "status", Usage: "report what is in place and what is wrong"},
			&cli.BoolFlag{Name: "remove", Usage: "take the sudoers rule, guard.json and the binary away (the store is kept)"},
			&cli.BoolFlag{Name: "delete-store", Usage: "with --remove, also delete the store and its user"},
			&cli.BoolFlag{Name: "yes", Usage: "confirm --delete-store"},
		},
		Action: a.act(a.guard),
	}
}

func (a *app) guard(ctx context.Context, c *cli.Command) (*reply, error) {
	if err := noArgs(c); err != nil {
		return nil, err
	}
	switch {
	case c.Bool("status"):
		r, err := guard.Status()
		if err != nil {
			return nil, err
		}
		if len(r.Problems) > 0 {
			return nil, fmt.Errorf("%w: %s", guard.ErrUnavailable, strings.Join(r.Problems, "; "))
		}
		return &reply{result: r, next: []action{{"secrets status", "Check the guarded store through the owner side"}}}, nil
	case c.Bool("remove"):
		if c.Bool("delete-store") && !c.Bool("yes") {
			return nil, vault.Usagef("--delete-store destroys every secret in the guarded store: add --yes")
		}
		r, err := guard.Remove(c.Bool("delete-store"))
		if err != nil {
			return nil, err
		}
		return &reply{result: r, next: []action{}}, nil
	}
	// The store is the global --dir here: where the guarded store is made, not a store to open.
	r, err := guard.Install(guard.Setup{User: c.String("user"), Allow: c.StringSlice("allow"), Dir: c.String("dir"), Release: version, Admin: a.getenv("SUDO_USER"), From: c.String("from")})
	if err != nil {
		return nil, err
	}
	var next []action
	for _, u := range r.Allow {
		if !strings.HasPrefix(u, "%") {
			next = append(next, action{"sudo -u " + u + " -i secrets status", "Check the store as the agent user " + u})
		}
	}
	next = append(next, action{"secrets guard --status", "Check the set-up"})
	return &reply{result: r, next: next}, nil
}
