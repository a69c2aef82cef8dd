package main

import (
	"bufio"
	"context"
	"fmt"
	"strings"

	"github.com/agent-secrets/secrets/vault"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdKillswitch() *cli.Command {
	return &cli.Command{
		Name:      "killswitch",
		Usage:     "Revoke every lease and lock the store down; optionally rotate every secret and wipe the store",
		UsageText: "secrets killswitch [--rotate-all] [--wipe] [--yes] [--reason TEXT]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "rotate-all", Usage: "then rotate every secret that has a hook"},
			&cli.BoolFlag{Name: "wipe", Usage: "then crypto-shred identity.age, secrets.age and leases.age (the audit log stays)"},
			&cli.BoolFlag{Name: "yes", Usage: "confirm --wipe without a terminal prompt"},
			&cli.StringFlag{Name: "reason", Usage: "why, for the audit log and status"},
			clientIDFlag(),
		},
		Action: a.act(a.killswitch),
	}
}

func (a *app) killswitch(ctx context.Context, c *cli.Command) (*reply, error) {
	if err := noArgs(c); err != nil {
		return nil, err
	}
	if c.Bool("wipe") && !c.Bool("yes") {
		if !isTerminal(a.stdin) {
			return nil, vault.Usagef("--wipe destroys the store's keys and secrets; confirm with --yes")
		}
		fmt.Fprint(a.stderr, "This destroys identity.age, secrets.age and leases.age for good. Type WIPE to go on: ")
		line, _ := bufio.NewReader(a.stdin).ReadString('\n')
		if strings.TrimSpace(line) != "WIPE" {
			return nil, vault.Usagef("not confirmed; nothing was changed")
		}
	}
	v, err := a.vault(c)
	if err != nil {
		return nil, err
	}
	out, err := v.Killswitch(ctx, vault.KillswitchInput{RotateAll: c.Bool("rotate-all"), Wipe: c.Bool("wipe"), Reason: c.String("reason"), ClientID: c.String("client-id")})
	if err != nil {
		return nil, err
	}
	next := []action{{"secrets status", "See the lockdown"}, {"secrets unlock", "Lift the lockdown (on a terminal, typing the store fingerprint)"}}
	if c.Bool("wipe") {
		next = []action{{"secrets audit --tail 20", "Read what happened; the audit log survives the wipe"}}
	}
	return &reply{result: out, next: next}, nil
}

func (a *app) cmdUnlock() *cli.Command {
	return &cli.Command{
		Name:      "unlock",
		Usage:     "Lift a lockdown: type the store fingerprint on the controlling terminal",
		UsageText: "secrets unlock",
		Flags:     []cli.Flag{clientIDFlag()},
		Action:    a.act(a.unlock),
	}
}

// unlock asks for the store fingerprint on /dev/tty, never stdin: an agent that was told
// to run secrets unlock cannot answer for a person. It guards against instructions being
// followed, not against a process that controls a terminal.
func (a *app) unlock(ctx context.Context, c *cli.Command) (*reply, error) {
	if err := noArgs(c); err != nil {
		return nil, err
	}
	v, err := a.vault(c)
	if err != nil {
		return nil, err
	}
	out, err := v.Unlock(ctx, vault.UnlockInput{Confirm: askTTY, ClientID: c.String("client-id")})
	if err != nil {
		return nil, err
	}
	return &reply{result: out, next: []action{{"secrets status", "Check the store"}}}, nil
}
