package main

import (
	"context"
	"os/signal"
	"syscall"

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
	v, err := a.vault(c)
	if err != nil {
		return nil, err
	}
	every, err := durationFlag(c, "prune-every", duration.Positive)
	if err != nil {
		return nil, err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	out, err := v.Watch(ctx, vault.WatchInput{Once: c.Bool("once"), PruneEvery: every, ClientID: c.String("client-id")})
	if err != nil {
		return nil, err
	}
	return &reply{result: out, next: []action{{"secrets status", "See the heartbeat and any lockdown"}}}, nil
}
