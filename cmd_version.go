package main

import (
	"context"
	"runtime"

	"github.com/urfave/cli/v3"
)

func (a *app) cmdVersion() *cli.Command {
	return &cli.Command{
		Name:      "version",
		Usage:     "Print the version",
		UsageText: "secrets version",
		Action: a.act(func(ctx context.Context, c *cli.Command) (*reply, error) {
			return &reply{result: map[string]any{"version": version, "go": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH}}, nil
		}),
	}
}
