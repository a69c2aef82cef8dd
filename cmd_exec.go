package main

import (
	"context"
	"fmt"

	"github.com/agent-secrets/secrets/internal/duration"
	"github.com/agent-secrets/secrets/policy"
	"github.com/agent-secrets/secrets/vault"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdExec() *cli.Command {
	return &cli.Command{
		Name:      "exec",
		Usage:     "Run a command with the project's secrets in its environment, never on disk, its output redacted",
		UsageText: "secrets exec [--file .secrets.json | --secret NAME[=ENV_VAR] … | --inject NAME[=ENV_VAR]@HOST[,HOST…] …] [--strict-egress] [--on-revoke stop|deny] [--ttl D] [--pristine] [--keep VAR,…] [--no-redact] [--grace 10s] -- CMD [ARGS…]",
		Flags: append(mappingFlags(),
			&cli.StringSliceFlag{Name: "inject", Usage: "NAME[=ENV_VAR]@HOST[,HOST…], repeatable: the variable holds a placeholder and the value goes into the command's requests to those hosts (Authorization header)"},
			&cli.BoolFlag{Name: "strict-egress", Usage: "with injection, refuse (403) the command's requests to every other host instead of passing them through"},
			&cli.StringFlag{Name: "on-revoke", Value: vault.OnRevokeStop, Usage: "when a lease ends: stop the command, or (deny) only stop injecting, for a command whose secrets are all injected"},
			&cli.BoolFlag{Name: "pristine", Usage: "give the command only the secrets plus PATH, HOME, USER, LANG, TERM and --keep"},
			&cli.StringSliceFlag{Name: "keep", Usage: "with --pristine, also pass these variables"},
			&cli.BoolFlag{Name: "no-redact", Usage: "connect the command straight to our stdio (terminal programs keep their tty)"},
			&cli.StringFlag{Name: "grace", Value: "10s", Usage: "after a lease ends, how long the command has between SIGTERM and SIGKILL"},
			// For an agent host's plugin (OpenClaw's secrets_exec): run as that tool would,
			// only commands the policy or the plugin's configuration allows.
			&cli.StringFlag{Name: "tool", Hidden: true},
			&cli.StringSliceFlag{Name: "tool-exec", Hidden: true},
		),
		Action: a.act(a.exec),
	}
}

// exec fails before the command runs with the codes of the table (on stderr only, since
// stdout is the command's); once it has run, the exit code is the command's own, 128+N
// when signal N ended it, and 127 when it could not be started.
func (a *app) exec(ctx context.Context, c *cli.Command) (*reply, error) {
	argv := c.Args().Slice()
	if len(argv) == 0 {
		return nil, vault.Usagef("give the command to run after --: secrets exec -- CMD [ARGS…]")
	}
	grace, err := durationFlag(c, "grace", duration.Parse)
	if err != nil {
		return nil, err
	}
	if grace < 0 {
		return nil, vault.Usagef("--grace: %q is negative; give how long the command has to stop, such as 10s", c.String("grace"))
	}
	wait, err := durationFlag(c, "wait", duration.Positive)
	if err != nil {
		return nil, err
	}
	var gate *vault.ToolGate
	if c.IsSet("tool") || c.IsSet("tool-exec") {
		gate = &vault.ToolGate{Name: c.String("tool")}
		if gate.Name == "" {
			gate.Name = "tool"
		}
		for _, x := range c.StringSlice("tool-exec") {
			argv, err := policy.SplitCommand(x)
			if err != nil {
				return nil, vault.Usagef("--tool-exec: %v", err)
			}
			gate.Registered = append(gate.Registered, argv)
		}
	}
	// For a tool, the command's two streams are one, on stdout, as they are for MCP's
	// secrets_exec: both go to the model, so a value split between them must meet one
	// redactor. Our own messages stay on stderr.
	stderr := a.stderr
	if gate != nil {
		if c.Bool("no-redact") {
			return nil, vault.Usagef("--no-redact is not for a tool: what the command prints goes to a model")
		}
		stderr = a.stdout
	}
	onRevoke := c.String("on-revoke")
	if onRevoke != vault.OnRevokeStop && onRevoke != vault.OnRevokeDeny {
		return nil, vault.Usagef("--on-revoke: %q is not stop or deny", onRevoke)
	}
	p := project(c)
	p.Inject = c.StringSlice("inject")
	in := vault.ExecInput{Wait: wait, Tool: gate, StrictEgress: c.Bool("strict-egress"), OnRevoke: onRevoke,
		Project: p, TTL: c.String("ttl"), ClientID: c.String("client-id"), Argv: argv,
		Pristine: c.Bool("pristine"), Keep: c.StringSlice("keep"), NoRedact: c.Bool("no-redact"), Grace: grace,
		Stdin: a.stdin, Stdout: a.stdout, Stderr: stderr,
	}
	if a.guarded != nil {
		return a.execGuarded(ctx, a.guarded, in)
	}
	v, err := a.vault(c)
	if err != nil {
		return nil, err
	}
	res, err := v.Exec(ctx, in)
	if err != nil {
		return nil, err
	}
	if gate != nil && res.Unhidden != "" {
		a.warn("the store could be seen by the command: " + res.Unhidden)
	}
	if res.StartErr != nil {
		fmt.Fprintf(a.stderr, "secrets: error: %v\nsecrets: hint: check the command's name and that it is on PATH\n", res.StartErr)
	}
	return &reply{quiet: true, exit: res.ExitCode}, nil
}
