package main

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agent-secrets/secrets/mcp"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdMCP() *cli.Command {
	return &cli.Command{
		Name:      "mcp",
		Usage:     "Serve the Model Context Protocol on stdio; no tool returns a value unless --allow reveal",
		UsageText: "secrets mcp [--allow reveal,add,killswitch]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "allow", Usage: "also offer secrets_lease (reveal: returns values), secrets_add (add), secrets_killswitch (killswitch)"},
		},
		Action: a.act(a.mcp),
	}
}

func (a *app) mcp(ctx context.Context, c *cli.Command) (*reply, error) {
	if c.NArg() > 0 {
		return nil, usagef("mcp takes no arguments")
	}
	allow := c.StringSlice("allow")
	for _, x := range allow {
		if !slices.Contains([]string{"reveal", "add", "killswitch"}, x) {
			return nil, usagef("--allow takes reveal, add or killswitch, not %q", x)
		}
	}
	var global []string
	for _, f := range []string{"dir", "lock-timeout"} {
		if v := c.String(f); v != "" {
			global = append(global, "--"+f, v)
		}
	}
	srv := &mcp.Server{
		Name: "secrets", Version: version,
		Instructions: "Credential management: run commands with secrets in their environment (secrets_exec; output redacted), " +
			"inspect status, leases and the audit log, revoke leases. Values are never returned unless the server was started with --allow reveal.",
		Tools: a.mcpTools(global, allow),
	}
	if err := srv.Serve(ctx, a.stdin, a.stdout); err != nil {
		return nil, err
	}
	return &reply{quiet: true}, nil // stdout was the protocol's
}

// toolCall is a CLI invocation a tool runs.
type toolCall struct {
	args    []string
	stdin   string
	timeout time.Duration // for exec: stop the command after this long
	exec    bool          // stdout is the command's output, not an envelope
}

// MaxToolOutput caps what secrets_exec returns of each stream.
const MaxToolOutput = 1 << 20

// runTool runs one secrets command in-process, as the MCP client (client_id from its
// name, actor.agent "mcp"), and returns the envelope's result, or its error as a tool error.
func (a *app) runTool(ctx context.Context, client string, global []string, call toolCall) (map[string]any, bool) {
	if client == "" {
		client = "mcp-client"
	}
	env := append(slices.Clone(a.environ), "AI_AGENT=mcp", "SECRETS_CLIENT_ID="+client)
	out, errb := &capped{}, &capped{}
	sub := newApp(strings.NewReader(call.stdin), out, errb, env, a.now)
	if call.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, call.timeout)
		defer cancel()
	}
	code := sub.runContext(ctx, append(append([]string{"secrets"}, global...), call.args...))
	if call.exec {
		if !sub.execRan {
			return map[string]any{"error": map[string]any{"code": sub.failure.code, "message": strings.TrimSpace(strings.TrimPrefix(errb.String(), "secrets: error: "))}, "fix": sub.failure.fix}, true
		}
		return map[string]any{
			"exit_code": code, "timed_out": ctx.Err() == context.DeadlineExceeded,
			"stdout": out.String(), "stdout_truncated": out.over,
			"stderr": errb.String(), "stderr_truncated": errb.over,
		}, code != 0
	}
	var envl struct {
		OK     bool           `json:"ok"`
		Result map[string]any `json:"result"`
		Error  map[string]any `json:"error"`
		Fix    string         `json:"fix"`
	}
	if err := json.Unmarshal(out.buf.Bytes(), &envl); err != nil {
		return map[string]any{"error": map[string]any{"code": "generic_error", "message": strings.TrimSpace(errb.String())}, "exit_code": code}, true
	}
	if !envl.OK {
		return map[string]any{"error": envl.Error, "fix": envl.Fix}, true
	}
	return envl.Result, false
}

// decodeArgs reads tool arguments strictly: unknown keys and wrong types are refused.
func decodeArgs(raw json.RawMessage, v any) map[string]any {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return map[string]any{"error": map[string]any{"code": "usage", "message": "invalid arguments: " + err.Error()}}
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

func (a *app) mcpTools(global []string, allow []string) []mcp.Tool {
	tool := func(name, desc string, in map[string]any, build func(json.RawMessage) (toolCall, map[string]any)) mcp.Tool {
		return mcp.Tool{Name: name, Description: desc, InputSchema: in,
			Call: func(ctx context.Context, client string, raw json.RawMessage) (any, bool) {
				call, bad := build(raw)
				if bad != nil {
					return bad, true
				}
				return a.runTool(ctx, client, global, call)
			}}
	}
	none := func(args ...string) func(json.RawMessage) (toolCall, map[string]any) {
		return func(raw json.RawMessage) (toolCall, map[string]any) {
			var v struct{}
			return toolCall{args: args}, decodeArgs(raw, &v)
		}
	}
	tools := []mcp.Tool{
		tool("secrets_list", "List stored secret names and metadata (never values).", schema(map[string]any{}), none("list")),
		tool("secrets_status", "Show the store: secret and lease counts, audit log health, lockdown, heartbeat.", schema(map[string]any{}), none("status")),
		tool("secrets_leases", "List active leases (no values).", schema(map[string]any{
			"secret": strProp("only leases of this secret"), "client_id": strProp("only leases held by this client"),
		}), func(raw json.RawMessage) (toolCall, map[string]any) {
			var v struct {
				Secret   string `json:"secret"`
				ClientID string `json:"client_id"`
			}
			if bad := decodeArgs(raw, &v); bad != nil {
				return toolCall{}, bad
			}
			return toolCall{args: withFlags([]string{"leases"}, "--secret", v.Secret, "--client-id", v.ClientID)}, nil
		}),
		tool("secrets_audit", "Read the newest audit log entries, optionally filtered.", schema(map[string]any{
			"tail":      map[string]any{"type": "integer", "minimum": 1, "maximum": 1000, "description": "how many entries (default 50)"},
			"secret":    strProp("only entries for this secret"),
			"client_id": strProp("only entries by this client"),
			"event":     strProp("only this event, e.g. lease_grant"),
			"since":     strProp("only entries newer than a duration ago (1h) or an RFC 3339 time"),
		}), func(raw json.RawMessage) (toolCall, map[string]any) {
			var v struct {
				Tail     int    `json:"tail"`
				Secret   string `json:"secret"`
				ClientID string `json:"client_id"`
				Event    string `json:"event"`
				Since    string `json:"since"`
			}
			if bad := decodeArgs(raw, &v); bad != nil {
				return toolCall{}, bad
			}
			args := []string{"audit"}
			if v.Tail != 0 {
				args = append(args, "--tail", strconv.Itoa(v.Tail))
			}
			return toolCall{args: withFlags(args, "--secret", v.Secret, "--client-id", v.ClientID, "--event", v.Event, "--since", v.Since)}, nil
		}),
		tool("secrets_revoke", "Revoke one lease (lease_id) or every lease (all: true).", schema(map[string]any{
			"lease_id": strProp("the lease to revoke"), "all": boolProp("revoke every active lease"),
		}), func(raw json.RawMessage) (toolCall, map[string]any) {
			var v struct {
				LeaseID string `json:"lease_id"`
				All     bool   `json:"all"`
			}
			if bad := decodeArgs(raw, &v); bad != nil {
				return toolCall{}, bad
			}
			if v.All {
				return toolCall{args: []string{"revoke", "--all"}}, nil
			}
			return toolCall{args: []string{"revoke", "--", v.LeaseID}}, nil
		}),
		tool("secrets_exec", "Run a command with secrets in its environment and return its exit code and redacted, capped output. "+
			"The values never reach you.", schema(map[string]any{
			"command": map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "minItems": 1, "description": "argv, e.g. [\"gh\", \"repo\", \"list\"]"},
			"secrets": map[string]any{"type": "array", "description": "secrets to place in variables", "items": schema(map[string]any{
				"name": strProp("secret name"), "env_var": strProp("variable (default: the name upper-cased)"),
			}, "name")},
			"project_file": strProp("a .secrets.json mapping file, instead of secrets"),
			"ttl":          strProp("lease TTL, e.g. 10m"),
			"timeout":      strProp("stop the command after this long (default 60s)"),
		}, "command"), func(raw json.RawMessage) (toolCall, map[string]any) {
			var v struct {
				Command []string `json:"command"`
				Secrets []struct {
					Name   string `json:"name"`
					EnvVar string `json:"env_var"`
				} `json:"secrets"`
				ProjectFile string `json:"project_file"`
				TTL         string `json:"ttl"`
				Timeout     string `json:"timeout"`
			}
			if bad := decodeArgs(raw, &v); bad != nil {
				return toolCall{}, bad
			}
			if len(v.Command) == 0 {
				return toolCall{}, map[string]any{"error": map[string]any{"code": "usage", "message": "command is required"}}
			}
			timeout := time.Minute
			if v.Timeout != "" {
				d, err := time.ParseDuration(v.Timeout)
				if err != nil || d <= 0 {
					return toolCall{}, map[string]any{"error": map[string]any{"code": "usage", "message": "timeout: want a duration such as 30s"}}
				}
				timeout = d
			}
			args := []string{"exec", "--grace", "2s"}
			for _, s := range v.Secrets {
				spec := s.Name
				if s.EnvVar != "" {
					spec += "=" + s.EnvVar
				}
				args = append(args, "--secret", spec)
			}
			args = withFlags(args, "--file", v.ProjectFile, "--ttl", v.TTL)
			return toolCall{args: append(append(args, "--"), v.Command...), timeout: timeout, exec: true}, nil
		}),
	}
	if slices.Contains(allow, "reveal") {
		tools = append(tools, tool("secrets_lease", "Lease a secret and return its VALUE (this server was started with --allow reveal). "+
			"Prefer secrets_exec, which never shows you the value.", schema(map[string]any{
			"name": strProp("secret name"), "ttl": strProp("lease TTL, e.g. 30m"),
		}, "name"), func(raw json.RawMessage) (toolCall, map[string]any) {
			var v struct {
				Name string `json:"name"`
				TTL  string `json:"ttl"`
			}
			if bad := decodeArgs(raw, &v); bad != nil {
				return toolCall{}, bad
			}
			args := withFlags([]string{"lease", "--json"}, "--ttl", v.TTL)
			return toolCall{args: append(args, "--", v.Name)}, nil
		}))
	}
	if slices.Contains(allow, "add") {
		tools = append(tools, tool("secrets_add", "Store a new secret.", schema(map[string]any{
			"name": strProp("secret name"), "value": strProp("the value"), "rotate_via": strProp("rotation hook command"),
		}, "name", "value"), func(raw json.RawMessage) (toolCall, map[string]any) {
			var v struct {
				Name      string `json:"name"`
				Value     string `json:"value"`
				RotateVia string `json:"rotate_via"`
			}
			if bad := decodeArgs(raw, &v); bad != nil {
				return toolCall{}, bad
			}
			args := withFlags([]string{"add"}, "--rotate-via", v.RotateVia)
			return toolCall{args: append(args, "--", v.Name), stdin: v.Value}, nil
		}))
	}
	if slices.Contains(allow, "killswitch") {
		tools = append(tools, tool("secrets_killswitch", "Revoke every lease and lock the store down; optionally rotate all and wipe.", schema(map[string]any{
			"rotate_all": boolProp("rotate every secret with a hook"), "wipe": boolProp("crypto-shred the store"), "reason": strProp("why"),
		}), func(raw json.RawMessage) (toolCall, map[string]any) {
			var v struct {
				RotateAll bool   `json:"rotate_all"`
				Wipe      bool   `json:"wipe"`
				Reason    string `json:"reason"`
			}
			if bad := decodeArgs(raw, &v); bad != nil {
				return toolCall{}, bad
			}
			args := []string{"killswitch", "--yes"}
			if v.RotateAll {
				args = append(args, "--rotate-all")
			}
			if v.Wipe {
				args = append(args, "--wipe")
			}
			return toolCall{args: withFlags(args, "--reason", v.Reason)}, nil
		}))
	}
	return tools
}

// withFlags appends each flag whose value is set, as the two words flag and value.
// pairs alternate flag and value.
func withFlags(args []string, pairs ...string) []string {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			args = append(args, pairs[i], pairs[i+1])
		}
	}
	return args
}

// capped keeps the first MaxToolOutput bytes written to it, with a marker when cut.
type capped struct {
	buf  bytes.Buffer
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := MaxToolOutput - c.buf.Len(); len(p) > room {
		c.buf.Write(p[:max(room, 0)])
		c.over = true
		return len(p), nil
	}
	return c.buf.Write(p)
}

func (c *capped) String() string {
	if c.over {
		return c.buf.String() + "\n[truncated at 1 MiB]"
	}
	return c.buf.String()
}
