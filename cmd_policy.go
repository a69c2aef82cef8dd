package main

import (
	"context"
	"encoding/pem"
	"fmt"
	"os"
	"strings"

	"github.com/agent-secrets/secrets/policy"
	"github.com/agent-secrets/secrets/vault"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdPolicy() *cli.Command {
	target := func() []cli.Flag {
		return []cli.Flag{&cli.BoolFlag{Name: "default", Usage: "the default rule, which every secret's own rule falls back to"}, clientIDFlag()}
	}
	return &cli.Command{
		Name:      "policy",
		Usage:     "Show or change who may lease what, for how long, how often, how delivered and with whose approval (admin)",
		UsageText: "secrets policy show | set NAME|--default [flags] | unset NAME|--default | reset-uses NAME",
		Action:    a.act(needSubcommand),
		Commands: []*cli.Command{
			{Name: "show", Usage: "Show the default rule, each secret's own rule, the effective rules and the uses counted here", Action: a.act(a.policyShow)},
			{
				Name: "set", Usage: "Change a rule: only the flags given change",
				UsageText: "secrets policy set NAME|--default [--callers U,%G] [--clients ID,PREFIX*] [--max-ttl D] [--max-uses N] [--deliver raw,env,exec,inject] [--approve never|once|always] [--exec 'ARGV' …] [--inject-host HOST … [--inject-header H] [--inject-format F | --inject-basic username|password | --inject-query P] [--inject-method M …] [--inject-path P …] [--inject-ca FILE …] [--inject-shared-suffix] | --no-inject]",
				Flags: append(target(),
					&cli.StringSliceFlag{Name: "callers", Usage: "OS users, or %group, who may lease it (* anyone)"},
					&cli.StringSliceFlag{Name: "clients", Usage: "client ids that may lease it, exact or PREFIX* (* any); a client id is a label, not an identity"},
					&cli.StringFlag{Name: "max-ttl", Usage: "longest lease, e.g. 15m"},
					&cli.IntFlag{Name: "max-uses", Usage: "leases a value may have on this machine; 1 is single use, 0 no limit"},
					&cli.StringSliceFlag{Name: "deliver", Usage: "how the value may leave: raw (lease), env (.env file), exec (a child's environment), inject"},
					&cli.StringFlag{Name: "approve", Usage: "never, once (an approval stands for the same request for 8h) or always (one approval per lease)"},
					&cli.StringSliceFlag{Name: "exec", Usage: "a command MCP and OpenClaw secrets_exec may run with it, e.g. 'npm test' or 'go test *' (a final * lets the agent choose the rest, options included; repeat for more; replaces the list)"},
					&cli.StringSliceFlag{Name: "inject-host", Usage: "inject it, never hand it over: into requests to these hosts (api.github.com, *.example.com, host:port; replaces the list)"},
					&cli.StringFlag{Name: "inject-header", Usage: "the header that carries it (default Authorization)"},
					&cli.StringFlag{Name: "inject-format", Usage: "the header's value, with {value}, e.g. 'Bearer {value}' (default: the placeholder replaced where the command put it)"},
					&cli.StringFlag{Name: "inject-basic", Usage: "carry it as the Basic auth username or password"},
					&cli.StringFlag{Name: "inject-query", Usage: "carry it in this URL query parameter"},
					&cli.StringSliceFlag{Name: "inject-method", Usage: "only for these methods (GET, POST, …)"},
					&cli.StringSliceFlag{Name: "inject-path", Usage: "only for paths with these prefixes (/repos/, …)"},
					&cli.StringSliceFlag{Name: "inject-ca", Usage: "a PEM certificate FILE to trust for these hosts besides the system's roots"},
					&cli.BoolFlag{Name: "inject-shared-suffix", Usage: "acknowledge a wildcard on a suffix anyone can have a host under (*.github.io)"},
					&cli.BoolFlag{Name: "no-inject", Usage: "remove the inject rule"},
				),
				Action: a.act(a.policySet),
			},
			{Name: "unset", Usage: "Remove a rule", UsageText: "secrets policy unset NAME|--default", Flags: target(), Action: a.act(a.policyUnset)},
			{Name: "reset-uses", Usage: "Count a secret's uses from zero again", UsageText: "secrets policy reset-uses NAME", Flags: []cli.Flag{clientIDFlag()}, Action: a.act(a.policyResetUses)},
		},
	}
}

func (a *app) policyShow(ctx context.Context, c *cli.Command) (*reply, error) {
	if err := noArgs(c); err != nil {
		return nil, err
	}
	v, err := a.vault(c)
	if err != nil {
		return nil, err
	}
	out, err := v.PolicyShow(ctx)
	if err != nil {
		return nil, err
	}
	return &reply{result: out, next: []action{{"secrets policy set NAME --deliver exec --max-ttl 15m", "Narrow how a secret may be used"}}}, nil
}

// policyTarget is the rule a set or unset names: a secret, or --default ("").
func policyTarget(c *cli.Command) (string, error) {
	if c.Bool("default") {
		if c.NArg() > 0 {
			return "", vault.Usagef("give NAME or --default, not both")
		}
		return "", nil
	}
	name, err := oneArg(c, "name")
	if err != nil {
		return "", err
	}
	return name, vault.CheckName(name)
}

func (a *app) policySet(ctx context.Context, c *cli.Command) (*reply, error) {
	name, err := policyTarget(c)
	if err != nil {
		return nil, err
	}
	var execs [][]string
	for _, s := range c.StringSlice("exec") {
		argv, err := policy.SplitCommand(s)
		if err != nil {
			return nil, vault.Usagef("--exec: %v", err)
		}
		execs = append(execs, argv)
	}
	var roots []string
	for _, f := range c.StringSlice("inject-ca") {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, vault.Usagef("--inject-ca: %v", err)
		}
		for rest := data; ; {
			var block *pem.Block
			if block, rest = pem.Decode(rest); block == nil {
				break
			}
			roots = append(roots, string(pem.EncodeToMemory(block)))
		}
		if len(roots) == 0 {
			return nil, vault.Usagef("--inject-ca: %s holds no PEM certificate", f)
		}
	}
	injectFlags := []string{"inject-host", "inject-header", "inject-format", "inject-basic", "inject-query", "inject-method", "inject-path", "inject-ca", "inject-shared-suffix"}
	injecting := false
	for _, f := range injectFlags {
		injecting = injecting || c.IsSet(f)
	}
	if injecting && c.Bool("no-inject") {
		return nil, vault.Usagef("--no-inject removes the rule; give it without the --inject-* flags")
	}
	changed := injecting || c.IsSet("no-inject")
	for _, f := range []string{"callers", "clients", "max-ttl", "max-uses", "deliver", "approve", "exec"} {
		changed = changed || c.IsSet(f)
	}
	if !changed {
		return nil, vault.Usagef("nothing to change; usage: %s", c.UsageText)
	}
	change := func(r *policy.Rule) {
		if c.IsSet("callers") {
			r.Callers = c.StringSlice("callers")
		}
		if c.IsSet("clients") {
			r.Clients = c.StringSlice("clients")
		}
		if c.IsSet("max-ttl") {
			r.MaxTTL = ptr(c.String("max-ttl"))
		}
		if c.IsSet("max-uses") {
			r.MaxUses = ptr(int(c.Int("max-uses")))
		}
		if c.IsSet("deliver") {
			r.Deliver = []policy.Delivery{}
			for _, d := range c.StringSlice("deliver") {
				r.Deliver = append(r.Deliver, policy.Delivery(strings.TrimSpace(d)))
			}
		}
		if c.IsSet("approve") {
			r.Approve = ptr(c.String("approve"))
		}
		if c.IsSet("exec") {
			r.Exec = execs
		}
		if c.Bool("no-inject") {
			r.Inject = nil
		}
		if injecting {
			in := &policy.InjectRule{}
			if r.Inject != nil {
				*in = *r.Inject
			}
			if c.IsSet("inject-host") {
				in.Hosts = c.StringSlice("inject-host")
			}
			switch {
			case c.IsSet("inject-basic"):
				in.Header, in.Format, in.Query, in.Basic = "", "", "", c.String("inject-basic")
			case c.IsSet("inject-query"):
				in.Header, in.Format, in.Basic, in.Query = "", "", "", c.String("inject-query")
			case c.IsSet("inject-header") || c.IsSet("inject-format"):
				in.Basic, in.Query = "", ""
				if c.IsSet("inject-header") {
					in.Header = c.String("inject-header")
				}
				if c.IsSet("inject-format") {
					in.Format = c.String("inject-format")
				}
			}
			if c.IsSet("inject-method") {
				in.Methods = c.StringSlice("inject-method")
			}
			if c.IsSet("inject-path") {
				in.Paths = c.StringSlice("inject-path")
			}
			if c.IsSet("inject-ca") {
				in.Roots = roots
			}
			if c.IsSet("inject-shared-suffix") {
				in.SharedSuffix = c.Bool("inject-shared-suffix")
			}
			r.Inject = in
		}
	}
	v, err := a.vault(c)
	if err != nil {
		return nil, err
	}
	out, err := v.PolicySet(ctx, vault.PolicyInput{Name: name, Change: change, ClientID: c.String("client-id")})
	if err != nil {
		return nil, err
	}
	return &reply{result: out, next: []action{{"secrets policy show", "See the effective rules"}}}, nil
}

func (a *app) policyUnset(ctx context.Context, c *cli.Command) (*reply, error) {
	name, err := policyTarget(c)
	if err != nil {
		return nil, err
	}
	v, err := a.vault(c)
	if err != nil {
		return nil, err
	}
	out, err := v.PolicySet(ctx, vault.PolicyInput{Name: name, Unset: true, ClientID: c.String("client-id")})
	if err != nil {
		return nil, err
	}
	return &reply{result: out, next: []action{{"secrets policy show", "See the effective rules"}}}, nil
}

func (a *app) policyResetUses(ctx context.Context, c *cli.Command) (*reply, error) {
	name, err := oneArg(c, "name")
	if err != nil {
		return nil, err
	}
	v, err := a.vault(c)
	if err != nil {
		return nil, err
	}
	out, err := v.ResetUses(ctx, name, c.String("client-id"))
	if err != nil {
		return nil, err
	}
	return &reply{result: out, next: []action{{"secrets policy show", "See the uses counted"}}}, nil
}

func (a *app) cmdApprove() *cli.Command {
	return &cli.Command{
		Name:      "approve",
		Usage:     "List the requests waiting for a person's approval, or approve one at the terminal",
		UsageText: "secrets approve [REQ]",
		Flags:     []cli.Flag{clientIDFlag()},
		Action:    a.act(func(ctx context.Context, c *cli.Command) (*reply, error) { return a.decide(ctx, c, true) }),
	}
}

func (a *app) cmdDeny() *cli.Command {
	return &cli.Command{
		Name:      "deny",
		Usage:     "Deny a request for approval, at the terminal",
		UsageText: "secrets deny REQ",
		Flags:     []cli.Flag{clientIDFlag()},
		Action:    a.act(func(ctx context.Context, c *cli.Command) (*reply, error) { return a.decide(ctx, c, false) }),
	}
}

// decide lists the pending requests (approve with no argument) or decides one. The
// person answers on /dev/tty, never stdin, as for unlock.
func (a *app) decide(ctx context.Context, c *cli.Command, approve bool) (*reply, error) {
	v, err := a.vault(c)
	if err != nil {
		return nil, err
	}
	if approve && c.NArg() == 0 {
		out, err := v.Approvals(ctx)
		if err != nil {
			return nil, err
		}
		next := []action{}
		for _, r := range out.Pending {
			next = append(next, action{"secrets approve " + r.ID, fmt.Sprintf("Approve %s as %s for %s", r.Secret, r.Delivery, r.Client)},
				action{"secrets deny " + r.ID, "Deny it"})
		}
		return &reply{result: out, next: next}, nil
	}
	id, err := oneArg(c, "request id")
	if err != nil {
		return nil, err
	}
	out, err := v.Decide(ctx, vault.DecideInput{ID: id, Approve: approve, Confirm: askTTY, ClientID: c.String("client-id")})
	if err != nil {
		return nil, err
	}
	return &reply{result: out, next: []action{{"secrets approve", "See the requests still waiting"}}}, nil
}

func (a *app) cmdConfig() *cli.Command {
	return &cli.Command{
		Name:      "config",
		Usage:     "Apply config.json changes that weaken a control (until then the applied values hold)",
		UsageText: "secrets config apply",
		Action:    a.act(needSubcommand),
		Commands: []*cli.Command{{
			Name: "apply", Usage: "Apply config.json as it is, confirmed at the terminal (admin)",
			Flags: []cli.Flag{clientIDFlag()},
			Action: a.act(func(ctx context.Context, c *cli.Command) (*reply, error) {
				if err := noArgs(c); err != nil {
					return nil, err
				}
				v, err := a.vault(c)
				if err != nil {
					return nil, err
				}
				out, err := v.ConfigApply(ctx, vault.ConfigApplyInput{Confirm: askTTY, ClientID: c.String("client-id")})
				if err != nil {
					return nil, err
				}
				return &reply{result: out, next: []action{{"secrets status", "Check the store"}}}, nil
			}),
		}},
	}
}

// needSubcommand is the action of a command that only groups others.
func needSubcommand(_ context.Context, c *cli.Command) (*reply, error) {
	names := make([]string, 0, len(c.Commands))
	for _, sub := range c.Commands {
		names = append(names, sub.Name)
	}
	if c.NArg() > 0 {
		return nil, vault.Usagef("unknown command %q; %s takes %s", c.Args().First(), c.Name, strings.Join(names, ", "))
	}
	return nil, vault.Usagef("%s takes a command: %s; usage: %s", c.Name, strings.Join(names, ", "), c.UsageText)
}
