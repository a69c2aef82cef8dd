package main

import (
	"context"

	"github.com/agent-secrets/secrets/envfile"
	"github.com/agent-secrets/secrets/killswitch"
	"github.com/agent-secrets/secrets/lease"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdCleanup() *cli.Command {
	return &cli.Command{
		Name:      "cleanup",
		Usage:     "Remove .env files written by secrets env whose leases ended (--all: every one, ending its leases)",
		UsageText: "secrets cleanup [--dry-run] [--all]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "dry-run", Usage: "say what would be removed, change nothing"},
			&cli.BoolFlag{Name: "all", Usage: "remove every managed file, revoking the leases still using it"},
			clientIDFlag(),
		},
		Action: a.act(a.cleanup),
	}
}

type cleaned struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

func (a *app) cleanup(ctx context.Context, c *cli.Command) (*reply, error) {
	if c.NArg() > 0 {
		return nil, usagef("cleanup takes no arguments")
	}
	dry, all := c.Bool("dry-run"), c.Bool("all")
	m := modeWrite
	if dry {
		m = modeRead // a dry run prunes nothing either
	}
	s, err := a.open(ctx, c, m)
	if err != nil {
		return nil, err
	}
	removed, skipped := []cleaned{}, []cleaned{}
	note := func(e killswitch.Effect) {
		if e.Event == "env_remove" && e.OK {
			removed = append(removed, cleaned{e.Path, e.Detail})
		} else {
			skipped = append(skipped, cleaned{e.Path, e.Detail})
		}
	}
	active := map[string]bool{}
	for _, l := range s.active() {
		active[l.ID] = true
	}
	records := append([]envfile.Record(nil), s.state.EnvFiles...)
	for _, rec := range records {
		if !dry {
			envfile.RemoveTemps(rec.Path)
		}
		live := false
		for _, id := range rec.LeaseIDs {
			live = live || active[id]
		}
		switch {
		case live && !all:
			skipped = append(skipped, cleaned{rec.Path, "its leases are active (use --all, or revoke them)"})
		case dry:
			o, err := envfile.Inspect(rec)
			switch {
			case err != nil:
				skipped = append(skipped, cleaned{rec.Path, err.Error()})
			case o == envfile.Modified:
				skipped = append(skipped, cleaned{rec.Path, "changed since secrets wrote it; would be left in place"})
			default:
				removed = append(removed, cleaned{rec.Path, "would be " + string(o)})
			}
		case live:
			for _, e := range s.end(lease.RevokeIDs(&s.state.Leases, rec.LeaseIDs), "lease_revoke", "secrets cleanup --all") {
				note(e)
			}
		default:
			e, keep := killswitch.RemoveFile(rec)
			s.effects([]killswitch.Effect{e})
			note(e)
			if !keep {
				s.dropEnvFile(rec.Path)
			}
		}
	}
	if err := s.finish(nil); err != nil {
		return nil, err
	}
	return &reply{
		result: map[string]any{"removed": removed, "skipped": skipped, "dry_run": dry},
		next:   []action{{"secrets leases", "List the leases still active"}},
	}, nil
}

// dropEnvFile forgets the record of a managed file that is gone.
func (s *session) dropEnvFile(path string) {
	kept := s.state.EnvFiles[:0]
	for _, r := range s.state.EnvFiles {
		if r.Path != path {
			kept = append(kept, r)
		}
	}
	s.state.EnvFiles = kept
}
