package main

import (
	"context"

	"github.com/agent-secrets/secrets/lease"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdList() *cli.Command {
	return &cli.Command{
		Name:      "list",
		Usage:     "List secret names and metadata (never values)",
		UsageText: "secrets list [--show-canaries]",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "show-canaries", Usage: "say which secrets are canaries"}},
		Action:    a.act(a.list),
	}
}

func (a *app) list(ctx context.Context, c *cli.Command) (*reply, error) {
	if c.NArg() > 0 {
		return nil, usagef("list takes no arguments")
	}
	s, err := a.open(ctx, c, modeRead|withSecrets)
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	err = s.finish(func() error {
		sec, err := s.loadSecrets()
		if err != nil {
			return err
		}
		counts := map[string]int{}
		for _, l := range s.active() {
			counts[l.Secret]++
		}
		out = make([]map[string]any, 0, len(sec.Secrets))
		for _, name := range sec.Names() {
			m := secretInfo(name, sec.Secrets[name], c.Bool("show-canaries"))
			m["active_leases"] = counts[name]
			out = append(out, m)
		}
		return nil
	}())
	if err != nil {
		return nil, err
	}
	next := []action{{"secrets lease NAME --ttl 1h --client-id AGENT", "Lease a secret (prints the raw value)"}}
	if len(out) == 0 {
		next = []action{{"echo \"$VALUE\" | secrets add NAME", "Store the first secret"}}
	}
	return &reply{result: map[string]any{"secrets": out, "count": len(out)}, next: next}, nil
}

// active returns the leases that have not expired, without pruning (read commands write nothing).
func (s *session) active() []lease.Lease {
	now := s.a.now()
	out := make([]lease.Lease, 0, len(s.state.Leases))
	for _, l := range s.state.Leases {
		if l.ExpiresAt.After(now) {
			out = append(out, l)
		}
	}
	return out
}
