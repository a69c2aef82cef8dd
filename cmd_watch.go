package main

import (
	"context"
	"os/signal"
	"syscall"
	"time"

	"github.com/agent-secrets/secrets/internal/duration"
	"github.com/agent-secrets/secrets/vault"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdWatch() *cli.Command {
	return &cli.Command{
		Name:      "watch",
		Usage:     "Check the heartbeat endpoint every interval (firing its fail action after failures_before_action misses), and remove ended .env files",
		UsageText: "secrets watch [--once] [--prune-every 1m]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "once", Usage: "check once and exit (for cron); the failure count is kept in leases.age"},
			&cli.StringFlag{Name: "prune-every", Usage: "end expired leases and remove their .env files this often, also without a heartbeat URL"},
			clientIDFlag(),
		},
		Action: a.act(a.watch),
	}
}

func (a *app) watch(ctx context.Context, c *cli.Command) (*reply, error) {
	if err := noArgs(c); err != nil {
		return nil, err
	}
	every, err := durationFlag(c, "prune-every", duration.Positive)
	if err != nil {
		return nil, err
	}
	var v *vault.Vault
	if a.guarded == nil {
		if v, err = a.vault(c); err != nil {
			return nil, err
		}
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if a.guarded != nil {
		return a.watchGuarded(ctx, c, every)
	}
	out, err := v.Watch(ctx, vault.WatchInput{Once: c.Bool("once"), PruneEvery: every, ClientID: c.String("client-id")})
	if err != nil {
		return nil, err
	}
	return &reply{result: out, next: []action{{"secrets status", "See the heartbeat and any lockdown"}}}, nil
}

// watchGuarded is an agent user's watch in a guarded store: it removes the caller's own
// .env files once their leases end, every --prune-every (1m if not given), or once. The
// heartbeat is the admin's: root's watch runs as the store's user.
func (a *app) watchGuarded(ctx context.Context, c *cli.Command, every time.Duration) (*reply, error) {
	if every == 0 {
		every = time.Minute
	}
	out := &vault.WatchResult{Healthy: true, Detail: "removes this user's ended .env files; the heartbeat is the admin's watch"}
	for {
		res, err := a.cleanupGuarded(ctx, a.guarded, vault.CleanupInput{ClientID: c.String("client-id")})
		if err != nil {
			return nil, err
		}
		out.Prunes++
		out.Removed += len(res.Removed)
		if c.Bool("once") {
			break
		}
		select {
		case <-ctx.Done():
			return &reply{result: out}, nil
		case <-time.After(every):
		}
	}
	return &reply{result: out, next: []action{{"secrets status", "See the leases and any lockdown"}}}, nil
}
