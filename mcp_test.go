package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

const mcpValue = "FAKE-mcp-secret-7f3a9c0d21"

// mcpServer runs secrets mcp in-process on a fresh store and connects the official Go
// SDK client to it over pipes.
func mcpServer(t *testing.T, allow ...string) (*sdk.ClientSession, string) {
	t.Helper()
	var args []string
	if len(allow) > 0 {
		args = append(args, "--allow", strings.Join(allow, ","))
	}
	// The commands the tests run through secrets_exec, as a person registers them.
	for _, x := range []string{"sh -c *", "sleep *", "true"} {
		args = append(args, "--exec", x)
	}
	return mcpServerArgs(t, args...)
}

// mcpServerArgs serves secrets mcp with args on a fresh store holding github_token.
func mcpServerArgs(t *testing.T, extra ...string) (*sdk.ClientSession, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	mustCall(t, dir, "", "init")
	mustCall(t, dir, mcpValue, "add", "github_token")
	cr, sw := io.Pipe()
	sr, cw := io.Pipe()
	env := []string{"SECRETS_DIR=" + dir, "HOME=" + t.TempDir(), "PATH=/usr/bin:/bin"}
	args := append([]string{"secrets", "mcp"}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- newApp(sr, sw, io.Discard, env, time.Now).runContext(ctx, args)
		sw.Close()
	}()
	client := sdk.NewClient(&sdk.Implementation{Name: "test-agent", Version: "1.0"}, nil)
	cs, err := client.Connect(ctx, &sdk.IOTransport{Reader: cr, Writer: cw}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cs.Close()
		cw.Close()
		cancel()
		<-done
	})
	return cs, dir
}

func callTool(t *testing.T, cs *sdk.ClientSession, name string, args map[string]any) (*sdk.CallToolResult, map[string]any) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var structured map[string]any
	b, _ := json.Marshal(res.StructuredContent)
	json.Unmarshal(b, &structured)
	return res, structured
}

// leaked reports whether a result carries the value in raw, base64 or hex form.
func leaked(res *sdk.CallToolResult) bool {
	b, _ := json.Marshal(res)
	s := string(b)
	for _, f := range []string{mcpValue, base64.StdEncoding.EncodeToString([]byte(mcpValue)), hex.EncodeToString([]byte(mcpValue))} {
		if strings.Contains(s, f) {
			return true
		}
	}
	return false
}

func toolNames(t *testing.T, cs *sdk.ClientSession) []string {
	t.Helper()
	list, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
		if tool.InputSchema == nil {
			t.Errorf("%s has no input schema", tool.Name)
		}
	}
	slices.Sort(names)
	return names
}

func TestMCPDefaultToolsNeverRevealValues(t *testing.T) {
	cs, _ := mcpServer(t)
	if err := cs.Ping(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if got := toolNames(t, cs); !slices.Equal(got, []string{"secrets_audit", "secrets_exec", "secrets_leases", "secrets_list", "secrets_revoke", "secrets_status"}) {
		t.Fatalf("tools %v", got)
	}
	var results []*sdk.CallToolResult
	res, out := callTool(t, cs, "secrets_list", nil)
	results = append(results, res)
	if out["count"] != 1.0 || res.IsError {
		t.Fatalf("list: %+v", out)
	}
	res, out = callTool(t, cs, "secrets_exec", map[string]any{
		"command": []string{"sh", "-c", `echo "$GITHUB_TOKEN"; printf %s "$GITHUB_TOKEN" | base64; echo "$GITHUB_TOKEN" >&2; exit 4`},
		"secrets": []map[string]any{{"name": "github_token"}},
	})
	results = append(results, res)
	if out["exit_code"] != 4.0 || strings.Count(out["stdout"].(string), "[REDACTED:GITHUB_TOKEN]") != 3 || strings.Contains(out["stderr"].(string), "REDACTED") {
		t.Fatalf("exec: %+v", out)
	}
	res, out = callTool(t, cs, "secrets_exec", map[string]any{"command": []string{"sleep", "30"}, "secrets": []map[string]any{{"name": "github_token"}}, "timeout": "300ms"})
	results = append(results, res)
	if out["timed_out"] != true || out["exit_code"] != 143.0 {
		t.Fatalf("exec timeout: %+v", out)
	}
	res, out = callTool(t, cs, "secrets_exec", map[string]any{"command": []string{"sh", "-c", `echo "agent=$AI_AGENT"; env | grep ^SECRETS_; true`}, "secrets": []map[string]any{{"name": "github_token"}}})
	results = append(results, res)
	if res.IsError || out["stdout"] != "agent=mcp\n" {
		t.Fatalf("the command must know it runs for an agent, and get no SECRETS_ variable: %+v", out)
	}
	res, out = callTool(t, cs, "secrets_exec", map[string]any{"command": []string{"true"}, "secrets": []map[string]any{{"name": "github_token"}}, "timeout": "5x"})
	results = append(results, res)
	if !res.IsError || out["error"].(map[string]any)["message"] != `timeout: invalid duration "5x": use a form like 30m, 1h30m or 2d` || out["fix"] == "" {
		t.Fatalf("exec with a bad timeout: %+v", out)
	}
	res, out = callTool(t, cs, "secrets_exec", map[string]any{"command": []string{"true"}, "secrets": []map[string]any{{"name": "nope"}}})
	results = append(results, res)
	if !res.IsError || out["error"].(map[string]any)["code"] != "invalid_project_file" {
		t.Fatalf("exec with an unknown secret: %+v", out)
	}
	for _, tool := range []string{"secrets_status", "secrets_leases", "secrets_audit"} {
		res, out = callTool(t, cs, tool, nil)
		results = append(results, res)
		if res.IsError {
			t.Fatalf("%s: %+v", tool, out)
		}
	}
	res, out = callTool(t, cs, "secrets_audit", map[string]any{"event": "lease_grant", "tail": 5})
	results = append(results, res)
	entries := out["entries"].([]any)
	if len(entries) != 3 { // the three secrets_exec calls that reached a grant
		t.Fatalf("audit: %+v", out)
	}
	e := entries[0].(map[string]any)
	if e["client_id"] != "test-agent" || e["actor"].(map[string]any)["agent"] != "mcp" {
		t.Fatalf("audit entry: %+v", e)
	}
	res, out = callTool(t, cs, "secrets_revoke", map[string]any{"lease_id": "--all"})
	results = append(results, res)
	if !res.IsError || out["error"].(map[string]any)["code"] != "lease_not_found" {
		t.Fatalf("a lease id that looks like a flag must stay an id: %+v", out)
	}
	res, out = callTool(t, cs, "secrets_revoke", map[string]any{"all": true})
	results = append(results, res)
	if res.IsError {
		t.Fatalf("revoke all: %+v", out)
	}
	res, out = callTool(t, cs, "secrets_list", map[string]any{"bogus": 1})
	results = append(results, res)
	if !res.IsError || !strings.Contains(out["error"].(map[string]any)["message"].(string), "unknown field") {
		t.Fatalf("unknown argument: %+v", out)
	}
	for _, r := range results {
		if leaked(r) {
			b, _ := json.Marshal(r)
			t.Fatalf("a value reached a tool result: %s", b)
		}
	}
	if _, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "secrets_lease", Arguments: map[string]any{"name": "github_token"}}); err == nil {
		t.Fatal("secrets_lease answered without --allow reveal")
	}
}

func TestMCPAllowList(t *testing.T) {
	cs, _ := mcpServer(t, "reveal", "add", "killswitch")
	if got := toolNames(t, cs); len(got) != 9 || !slices.Contains(got, "secrets_lease") || !slices.Contains(got, "secrets_add") || !slices.Contains(got, "secrets_killswitch") {
		t.Fatalf("tools %v", got)
	}
	res, out := callTool(t, cs, "secrets_lease", map[string]any{"name": "github_token", "ttl": "5m"})
	if res.IsError || out["value"] != mcpValue || out["client_id"] != "test-agent" {
		t.Fatalf("lease: %+v", out)
	}
	res, out = callTool(t, cs, "secrets_add", map[string]any{"name": "new_key", "value": "FAKE-added-by-mcp\n"})
	if res.IsError || out["name"] != "new_key" || out["size"] != float64(len("FAKE-added-by-mcp")) {
		t.Fatalf("add: %+v", out)
	}
	res, out = callTool(t, cs, "secrets_killswitch", map[string]any{"reason": "test"})
	if res.IsError || out["lockdown"].(map[string]any)["trigger"] != "manual" {
		t.Fatalf("killswitch: %+v", out)
	}
	res, out = callTool(t, cs, "secrets_lease", map[string]any{"name": "github_token"})
	if !res.IsError || out["error"].(map[string]any)["code"] != "lockdown" {
		t.Fatalf("lease in lockdown: %+v", out)
	}
}

// TestMCPProtocolErrors speaks raw JSON-RPC: parse errors, unknown methods and tools,
// version negotiation, and no answer to notifications.
func TestMCPProtocolErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	mustCall(t, dir, "", "init")
	in := strings.Join([]string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"1999-01-01","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{not json`,
		`[{"jsonrpc":"2.0","id":2,"method":"ping"}]`,
		`{"jsonrpc":"2.0","id":3,"method":"resources/list"}`,
		`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"secrets_nope"}}`,
		`{"jsonrpc":"2.0","id":5,"method":"ping"}`,
	}, "\n") + "\n"
	var out strings.Builder
	env := []string{"SECRETS_DIR=" + dir, "HOME=" + t.TempDir()}
	newApp(strings.NewReader(in), &out, io.Discard, env, time.Now).run([]string{"secrets", "mcp"})
	var got []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %s", sc.Text())
		}
		got = append(got, m)
	}
	if len(got) != 6 {
		t.Fatalf("%d answers (notifications get none):\n%s", len(got), out.String())
	}
	// A tool call is answered from a goroutine of its own: the order of answers with an
	// id is not the order of the requests. Those without one (unparsable) come in order.
	byID, anon := map[float64]map[string]any{}, []map[string]any{}
	for _, m := range got {
		if id, ok := m["id"].(float64); ok {
			byID[id] = m
		} else {
			anon = append(anon, m)
		}
	}
	if v := byID[1]["result"].(map[string]any)["protocolVersion"]; v != "2025-11-25" {
		t.Errorf("an unknown version should get our newest, got %v", v)
	}
	code := func(m map[string]any) any {
		e, _ := m["error"].(map[string]any)
		return e["code"]
	}
	if len(anon) != 2 || code(anon[0]) != -32700.0 || code(anon[1]) != -32600.0 {
		t.Errorf("parse error and batch: %v", anon)
	}
	if code(byID[3]) != -32601.0 || code(byID[4]) != -32602.0 {
		t.Errorf("unknown method %v, unknown tool %v", byID[3], byID[4])
	}
	if byID[5]["result"] == nil {
		t.Errorf("ping: %v", byID[5])
	}
}
