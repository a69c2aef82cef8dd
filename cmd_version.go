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
			return &reply{result: struct {
				Version  string `json:"version"`
				Go       string `json:"go"`
				Platform string `json:"platform"`
			}{version, runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH}}, nil
		}),
	}
}
