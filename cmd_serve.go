package main

import (
	"context"

	"github.com/urfave/cli/v3"
)

// cmdServe keeps `secrets serve &` in old scripts working: there is no daemon to start.
func (a *app) cmdServe() *cli.Command {
	return &cli.Command{
		Name:   "serve",
		Hidden: true,
		Usage:  "Deprecated: secrets needs no daemon",
		Action: a.act(func(ctx context.Context, c *cli.Command) (*reply, error) {
			a.warn("serve is deprecated: secrets needs no daemon, every command works on its own. Remove `secrets serve &` from your scripts")
			return &reply{result: struct {
				Daemon bool `json:"daemon"`
			}{false}}, nil
		}),
	}
}
