package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agent-secrets/secrets/internal/duration"
	"github.com/agent-secrets/secrets/mcp"
	"github.com/agent-secrets/secrets/policy"
	"github.com/agent-secrets/secrets/vault"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdMCP() *cli.Command {
	return &cli.Command{
		Name:      "mcp",
		Usage:     "Serve the Model Context Protocol on stdio; no tool returns a value unless --allow reveal",
		UsageText: "secrets mcp [--allow reveal,add,killswitch] [--exec 'ARGV' …]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "allow", Usage: "also offer secrets_lease (reveal: returns values), secrets_add (add), secrets_killswitch (killswitch)"},
			&cli.StringSliceFlag{Name: "exec", Usage: "a command secrets_exec may run with any secret, e.g. 'npm test' (a final * lets the agent choose the rest, options included; besides what each secret's policy allows); repeat for more"},
		},
		Action: a.act(a.mcp),
	}
}

func (a *app) mcp(ctx context.Context, c *cli.Command) (*reply, error) {
	if err := noArgs(c); err != nil {
		return nil, err
	}
	allow := c.StringSlice("allow")
	for _, x := range allow {
		if !slices.Contains([]string{"reveal", "add", "killswitch"}, x) {
			return nil, vault.Usagef("--allow takes reveal, add or killswitch, not %q", x)
		}
	}
	gate := &vault.ToolGate{Name: "mcp"}
	for _, x := range c.StringSlice("exec") {
		argv, err := policy.SplitCommand(x)
		if err != nil {
			return nil, vault.Usagef("--exec: %v", err)
		}
		gate.Registered = append(gate.Registered, argv)
	}
	base, err := a.vaultOptions(c)
	if err != nil {
		return nil, err
	}
	srv := &mcp.Server{
		Name: "secrets", Version: version,
		Instructions: "Credential management: run the commands a person allowed with secrets in their environment (secrets_exec; output redacted), " +
			"inspect status, leases and the audit log, revoke leases. Values are never returned unless the server was started with --allow reveal.",
		Tools: mcpTools(base, allow, gate),
	}
	// SIGTERM (how a client ends a stdio server that does not leave on EOF), SIGINT and
	// SIGHUP stop the calls still running, and what they started, and end the server
	// with status 0.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	// A client that closed our stdout makes a write fail (EPIPE), which stops the calls
	// still running, rather than kill us (SIGPIPE) and leave what they started.
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	defer signal.Stop(pipe)
	if err := srv.Serve(ctx, a.stdin, a.stdout); err != nil {
		return nil, err
	}
	return &reply{quiet: true}, nil // stdout was the protocol's
}

// toolVault is the vault one tool call runs against, as the MCP client: the client's name
// is the client id (unless the request names another) and actor.agent is "mcp". Each
// call is audited as the CLI command it stands for, because it is the same use case.
//
// A command secrets_exec runs (and a rotation hook) sees the same in its environment, so
// a secrets call it makes is recorded as the same client and agent.
func toolVault(base vault.Options, client, tool string) *vault.Vault {
	if client == "" {
		client = "mcp-client"
	}
	base.ClientID, base.Agent = client, "mcp"
	base.Command = vault.EscapeCommand([]string{"mcp", client, tool})
	base.Environ = append(slices.Clone(base.Environ), "AI_AGENT=mcp", "SECRETS_CLIENT_ID="+client)
	return vault.New(base)
}

// toolFailure is a tool error as the model sees it: the stable code and the fix.
type toolFailure struct {
	Error envError `json:"error"`
	Fix   string   `json:"fix"`
}

func failed(err error) (any, bool) {
	p := classify(err)
	return toolFailure{Error: envError{Message: err.Error(), Code: p.code}, Fix: p.fix}, true
}

// answer is a tool's result: the use case's own result, or its error as a tool error.
func answer(result any, err error) (any, bool) {
	if err != nil {
		return failed(err)
	}
	return result, false
}

// decodeArgs reads tool arguments strictly: unknown keys and wrong types are refused.
func decodeArgs(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return vault.Usagef("invalid arguments: %v", err)
	}
	return nil
}

func schema(props map[string]any, required ...string) map[string]any {
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

var (
	strProp  = func(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }
	boolProp = func(desc string) map[string]any { return map[string]any{"type": "boolean", "description": desc} }
)

// tool makes a tool whose arguments decode into A and whose call is run.
func tool[A any](base vault.Options, name, desc string, in map[string]any, run func(ctx context.Context, v *vault.Vault, args A) (any, bool)) mcp.Tool {
	return mcp.Tool{Name: name, Description: desc, InputSchema: in,
		Call: func(ctx context.Context, client string, raw json.RawMessage) (any, bool) {
			var args A
			if err := decodeArgs(raw, &args); err != nil {
				return failed(err)
			}
			return run(ctx, toolVault(base, client, name), args)
		}}
}

// execArgs are secrets_exec's arguments.
type execArgs struct {
	Command []string `json:"command"`
	Secrets []struct {
		Name   string `json:"name"`
		EnvVar string `json:"env_var"`
	} `json:"secrets"`
	ProjectFile string `json:"project_file"`
	TTL         string `json:"ttl"`
	Timeout     string `json:"timeout"`
}

// execOutput is what secrets_exec returns: the exit code and the redacted, capped output.
// The command's stdout and stderr are one pipe (as 2>&1): both reach the model, and a
// value split between them must meet one redactor. Stderr is what secrets itself said.
type execOutput struct {
	ExitCode        int    `json:"exit_code"`
	TimedOut        bool   `json:"timed_out"`
	Stdout          string `json:"stdout"`
	StdoutTruncated bool   `json:"stdout_truncated"`
	Stderr          string `json:"stderr"`
	StderrTruncated bool   `json:"stderr_truncated"`
	// StoreHidden says whether the command ran where the store's directories could not
	// be seen; StoreVisible says why not when it did not.
	StoreHidden  bool   `json:"store_hidden"`
	StoreVisible string `json:"store_visible,omitempty"`
	// Injected are the secrets the command never held: it had placeholders, and the
	// values went only into its requests to these hosts.
	Injected []vault.Injected `json:"injected,omitempty"`
}

// MaxToolOutput caps what secrets_exec returns of each stream.
const MaxToolOutput = 1 << 20

func runExec(ctx context.Context, base vault.Options, gate *vault.ToolGate, client string, args execArgs) (any, bool) {
	if len(args.Command) == 0 {
		return failed(vault.Usagef("command is required"))
	}
	timeout := time.Minute
	if args.Timeout != "" {
		d, err := duration.Positive(args.Timeout)
		if err != nil {
			return failed(vault.Usagef("timeout: %v", err))
		}
		timeout = d
	}
	p := vault.Project{File: ".secrets.json"}
	if args.ProjectFile != "" {
		p.File = args.ProjectFile
	}
	for _, s := range args.Secrets {
		spec := s.Name
		if s.EnvVar != "" {
			spec += "=" + s.EnvVar
		}
		p.Secrets = append(p.Secrets, spec)
	}
	out, errb := &capped{}, &capped{}
	base.Warn = func(msg string) { fmt.Fprintf(errb, "secrets: warning: %s\n", msg) }
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v := toolVault(base, client, "secrets_exec "+vault.EscapeCommand(args.Command))
	res, err := v.Exec(ctx, vault.ExecInput{
		Project: p, TTL: args.TTL, Argv: args.Command, Grace: 2 * time.Second,
		Stdin: strings.NewReader(""), Stdout: out, Stderr: out, Tool: gate, InServer: true,
	})
	if err != nil {
		return failed(err)
	}
	if res.StartErr != nil {
		fmt.Fprintf(errb, "secrets: error: %v\n", res.StartErr)
	}
	return execOutput{
		ExitCode: res.ExitCode, TimedOut: ctx.Err() == context.DeadlineExceeded,
		Stdout: out.String(), StdoutTruncated: out.over, Stderr: errb.String(), StderrTruncated: errb.over,
		StoreHidden: res.Unhidden == "", StoreVisible: res.Unhidden, Injected: res.Injected,
	}, res.ExitCode != 0
}

func mcpTools(base vault.Options, allow []string, gate *vault.ToolGate) []mcp.Tool {
	type none struct{}
	tools := []mcp.Tool{
		tool(base, "secrets_list", "List stored secret names and metadata (never values).", schema(map[string]any{}),
			func(ctx context.Context, v *vault.Vault, _ none) (any, bool) { return answer(v.List(ctx, false)) }),
		tool(base, "secrets_status", "Show the store: secret and lease counts, audit log health, lockdown, heartbeat.", schema(map[string]any{}),
			func(ctx context.Context, v *vault.Vault, _ none) (any, bool) { return answer(v.Status(ctx)) }),
		tool(base, "secrets_leases", "List active leases (no values).", schema(map[string]any{
			"secret": strProp("only leases of this secret"), "client_id": strProp("only leases held by this client"),
		}), func(ctx context.Context, v *vault.Vault, args struct {
			Secret   string `json:"secret"`
			ClientID string `json:"client_id"`
		}) (any, bool) {
			return answer(v.Leases(ctx, args.Secret, args.ClientID))
		}),
		tool(base, "secrets_audit", "Read the newest audit log entries, optionally filtered.", schema(map[string]any{
			"tail":      map[string]any{"type": "integer", "minimum": 1, "maximum": 1000, "description": "how many entries (default 50)"},
			"secret":    strProp("only entries for this secret"),
			"client_id": strProp("only entries by this client"),
			"event":     strProp("only this event, e.g. lease_grant"),
			"since":     strProp("only entries newer than a duration ago (1h) or an RFC 3339 time"),
		}), func(ctx context.Context, v *vault.Vault, args struct {
			Tail     int    `json:"tail"`
			Secret   string `json:"secret"`
			ClientID string `json:"client_id"`
			Event    string `json:"event"`
			Since    string `json:"since"`
		}) (any, bool) {
			if args.Tail == 0 {
				args.Tail = 50
			}
			return answer(v.Audit(ctx, vault.AuditInput{Tail: args.Tail, Secret: args.Secret, ClientID: args.ClientID, Event: args.Event, Since: args.Since}))
		}),
		tool(base, "secrets_revoke", "Revoke one lease (lease_id) or every lease (all: true).", schema(map[string]any{
			"lease_id": strProp("the lease to revoke"), "all": boolProp("revoke every active lease"),
		}), func(ctx context.Context, v *vault.Vault, args struct {
			LeaseID string `json:"lease_id"`
			All     bool   `json:"all"`
		}) (any, bool) {
			if args.All {
				return answer(v.RevokeAll(ctx, ""))
			}
			return answer(v.Revoke(ctx, args.LeaseID, ""))
		}),
		{Name: "secrets_exec", Description: "Run a command with secrets in its environment and return its exit code and redacted, capped output " +
			"(stdout: the command's stdout and stderr in order, as 2>&1; stderr: what secrets itself reports). " +
			"Only the exact commands a person allowed for those secrets run (their policy's exec rules, or the commands this server was registered with); " +
			"never secrets itself. The command gets no SECRETS_* variables and, where the kernel allows, cannot see the store (store_hidden says whether it could). " +
			"Output is redacted, but an allowed command you can change (a test script, say) can still print or send what it holds. " +
			"A secret with an inject rule (its policy's, or the project file's) is injected instead: the command holds a placeholder and the value goes only into its HTTPS requests to the rule's hosts; injected lists them.", InputSchema: schema(map[string]any{
			"command": map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "minItems": 1, "description": "argv, e.g. [\"gh\", \"repo\", \"list\"]"},
			"secrets": map[string]any{"type": "array", "description": "secrets to place in variables", "items": schema(map[string]any{
				"name": strProp("secret name"), "env_var": strProp("variable (default: the name upper-cased)"),
			}, "name")},
			"project_file": strProp("a .secrets.json mapping file, instead of secrets"),
			"ttl":          strProp("lease TTL, e.g. 10m"),
			"timeout":      strProp("stop the command after this long (default 60s)"),
		}, "command"), Call: func(ctx context.Context, client string, raw json.RawMessage) (any, bool) {
			var args execArgs
			if err := decodeArgs(raw, &args); err != nil {
				return failed(err)
			}
			return runExec(ctx, base, gate, client, args)
		}},
	}
	if slices.Contains(allow, "reveal") {
		tools = append(tools, tool(base, "secrets_lease", "Lease a secret and return its VALUE (this server was started with --allow reveal). "+
			"Prefer secrets_exec, which never shows you the value.", schema(map[string]any{
			"name": strProp("secret name"), "ttl": strProp("lease TTL, e.g. 30m"),
		}, "name"), func(ctx context.Context, v *vault.Vault, args struct {
			Name string `json:"name"`
			TTL  string `json:"ttl"`
		}) (any, bool) {
			g, err := v.Lease(ctx, vault.LeaseInput{Name: args.Name, TTL: args.TTL})
			if err != nil {
				return failed(err)
			}
			return revealed(g), false
		}))
	}
	if slices.Contains(allow, "add") {
		tools = append(tools, tool(base, "secrets_add", "Store a new secret.", schema(map[string]any{
			"name": strProp("secret name"), "value": strProp("the value"), "rotate_via": strProp("rotation hook command"),
		}, "name", "value"), func(ctx context.Context, v *vault.Vault, args struct {
			Name      string `json:"name"`
			Value     string `json:"value"`
			RotateVia string `json:"rotate_via"`
		}) (any, bool) {
			// The value is read as the CLI reads stdin: one trailing newline is not part of it.
			value := bytes.TrimSuffix([]byte(args.Value), []byte("\n"))
			return answer(v.Add(ctx, vault.AddInput{Name: args.Name, Value: value, RotateVia: args.RotateVia}))
		}))
	}
	if slices.Contains(allow, "killswitch") {
		tools = append(tools, tool(base, "secrets_killswitch", "Revoke every lease and lock the store down; optionally rotate all and wipe.", schema(map[string]any{
			"rotate_all": boolProp("rotate every secret with a hook"), "wipe": boolProp("crypto-shred the store"), "reason": strProp("why"),
		}), func(ctx context.Context, v *vault.Vault, args struct {
			RotateAll bool   `json:"rotate_all"`
			Wipe      bool   `json:"wipe"`
			Reason    string `json:"reason"`
		}) (any, bool) {
			return answer(v.Killswitch(ctx, vault.KillswitchInput{RotateAll: args.RotateAll, Wipe: args.Wipe, Reason: args.Reason}))
		}))
	}
	return tools
}

// capped keeps the first MaxToolOutput bytes written to it, with a marker when cut. The
// command's stream and our warnings write to it from different goroutines.
type capped struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := MaxToolOutput - c.buf.Len(); len(p) > room {
		c.buf.Write(p[:max(room, 0)])
		c.over = true
		return len(p), nil
	}
	return c.buf.Write(p)
}

func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.over {
		return c.buf.String() + "\n[truncated at 1 MiB]"
	}
	return c.buf.String()
}
