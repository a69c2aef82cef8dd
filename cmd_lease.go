package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"unicode/utf8"

	"github.com/agent-secrets/secrets/internal/duration"
	"github.com/agent-secrets/secrets/vault"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdLease() *cli.Command {
	return &cli.Command{
		Name:      "lease",
		Usage:     "Get a secret's value under a time-bounded lease (raw value by default)",
		UsageText: "secrets lease <name> [--ttl 1h] [--client-id AGENT] [--json]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "ttl", Usage: "lease duration, e.g. 30m, 1h30m, 2d (default: default_lease_ttl)"},
			clientIDFlag(), waitFlag(),
			&cli.BoolFlag{Name: "raw", Hidden: true},
		},
		Action: a.act(a.lease),
	}
}

func (a *app) lease(ctx context.Context, c *cli.Command) (*reply, error) {
	if c.Bool("raw") {
		a.warn("--raw is deprecated and has no effect; raw output is the default. Remove it before v0.6.0")
	}
	name, err := oneArg(c, "name")
	if err != nil {
		return nil, err
	}
	v, err := a.vault(c)
	if err != nil {
		return nil, err
	}
	wait, err := durationFlag(c, "wait", duration.Positive)
	if err != nil {
		return nil, err
	}
	g, err := v.Lease(ctx, vault.LeaseInput{Name: name, TTL: c.String("ttl"), ClientID: c.String("client-id"), Wait: wait})
	if err != nil {
		return nil, err
	}
	if !c.Bool("json") {
		return &reply{raw: g.Value}, nil
	}
	l := g.Lease
	return &reply{result: revealed(g), next: []action{
		{fmt.Sprintf("export %s=$(secrets lease %s --ttl %s --client-id %s)", vault.EnvName(name), name, l.TTL, shellWord(l.ClientID)), "Export the raw value to the environment"},
		{"secrets renew " + l.LeaseID, "Extend this lease"},
		{"secrets revoke " + l.LeaseID, "Revoke this lease when done"},
	}}, nil
}

// leaseValue is a lease with its value, as lease --json and MCP's secrets_lease show it:
// the value as text, or base64 when it is not valid UTF-8.
type leaseValue struct {
	vault.LeaseInfo
	Value         string `json:"value"`
	ValueEncoding string `json:"value_encoding,omitempty"`
}

func revealed(g *vault.Grant) leaseValue {
	if utf8.Valid(g.Value) {
		return leaseValue{LeaseInfo: g.Lease, Value: string(g.Value)}
	}
	return leaseValue{LeaseInfo: g.Lease, Value: base64.StdEncoding.EncodeToString(g.Value), ValueEncoding: "base64"}
}
