package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/envfile"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/store"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdLease() *cli.Command {
	return &cli.Command{
		Name:      "lease",
		Usage:     "Get a secret's value under a time-bounded lease (raw value by default)",
		UsageText: "secrets lease <name> [--ttl 1h] [--client-id AGENT] [--json]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "ttl", Usage: "lease duration, e.g. 30m, 1h30m, 2d (default: default_lease_ttl)"},
			clientIDFlag(),
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
	s, err := a.open(ctx, c, modeWrite|withSecrets)
	if err != nil {
		return nil, err
	}
	var l lease.Lease
	var value []byte
	var canaries []string
	canaryAction := s.st.Config().CanaryAction
	err = s.finish(func() error {
		denied := audit.Entry{Event: "lease_denied", Secret: name}
		if err := s.refuseInLockdown(denied); err != nil {
			return err
		}
		if err := store.CheckName(name); err != nil {
			denied.Secret = ""
			return s.deny(denied, err)
		}
		sec, err := s.loadSecrets()
		if err != nil {
			return err
		}
		secret, err := sec.Get(name)
		if err != nil {
			return s.deny(denied, err)
		}
		l, err = s.mgr.Grant(&s.state.Leases, lease.Request{Secret: name, ClientID: s.client, TTL: c.String("ttl"), Kind: lease.KindLease})
		if err != nil {
			return s.deny(denied, err)
		}
		value = secret.Value
		canaries = s.canaries([]lease.Lease{l})
		s.record(audit.Entry{Event: "lease_grant", Secret: name, LeaseID: l.ID, OK: true, Detail: "ttl " + l.TTL})
		return nil
	}())
	if err != nil {
		return nil, err
	}
	a.tripCanaries(ctx, c, canaries, s.client, canaryAction)
	if !c.Bool("json") {
		return &reply{raw: value}, nil
	}
	result := leaseInfo(l)
	if utf8.Valid(value) {
		result["value"] = string(value)
	} else {
		result["value"] = base64.StdEncoding.EncodeToString(value)
		result["value_encoding"] = "base64"
	}
	return &reply{result: result, next: []action{
		{fmt.Sprintf("export %s=$(secrets lease %s --ttl %s --client-id %s)", envfile.EnvName(name), name, l.TTL, shellWord(l.ClientID)), "Export the raw value to the environment"},
		{"secrets renew " + l.ID, "Extend this lease"},
		{"secrets revoke " + l.ID, "Revoke this lease when done"},
	}}, nil
}

// leaseInfo is a lease as commands report it, in the earlier tool's key names.
func leaseInfo(l lease.Lease) map[string]any {
	m := map[string]any{
		"lease_id":    l.ID,
		"secret_name": l.Secret,
		"client_id":   l.ClientID,
		"kind":        l.Kind,
		"created_at":  l.CreatedAt.UTC().Format(time.RFC3339),
		"expires_at":  l.ExpiresAt.UTC().Format(time.RFC3339),
		"ttl":         l.TTL,
	}
	if l.Path != "" {
		m["path"] = l.Path
	}
	return m
}

// shellWord quotes s for a POSIX shell when it holds anything but safe characters.
func shellWord(s string) string {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '/' || c == ':' || c == '@') {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}
