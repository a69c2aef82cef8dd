//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/agent-secrets/secrets/internal/sandbox"
)

// The reveal paths of issue 11 other than the policy's own: MCP secrets_exec, rotation
// hooks, canaries and config.json. Each test is the attack, run against the built binary
// (or the MCP server as a client drives it), and each failed on the release before.

// auditEntries reads the log's entries of event.
func auditEntries(t *testing.T, dir, event string) []map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		if e["event"] == event {
			out = append(out, e)
		}
	}
	return out
}

func TestAttackMCPExecRunsOnlyAllowedCommands(t *testing.T) {
	cs, dir := mcpServerArgs(t) // registered with no command
	identity := filepath.Join(dir, "identity.age")
	for _, argv := range [][]string{
		{"secrets", "lease", "github_token"},
		{"/proc/self/exe", "lease", "github_token"},
		{"cat", identity},
		{"age", "-d", "-i", identity, filepath.Join(dir, "secrets.age")},
		{"sh", "-c", `printf %s "$GITHUB_TOKEN" | rev`},
		{"base32"},
	} {
		res, out := callTool(t, cs, "secrets_exec", map[string]any{"command": argv, "secrets": []map[string]any{{"name": "github_token"}}})
		if code, _ := out["error"].(map[string]any); !res.IsError || code["code"] != "command_not_allowed" || leaked(res) {
			t.Fatalf("secrets_exec %v: %+v", argv, out)
		}
	}
	if n := len(auditEntries(t, dir, "exec_denied")); n != 6 {
		t.Fatalf("%d refusals recorded, want 6", n)
	}
}

func TestAttackMCPExecPolicyCommands(t *testing.T) {
	cs, dir := mcpServerArgs(t)
	mustCall(t, dir, "", "policy", "set", "github_token", "--exec", "sh -c *", "--exec", "cat *")
	// What the person allowed runs; its child gets no SECRETS_ variable.
	res, out := callTool(t, cs, "secrets_exec", map[string]any{"command": []string{"sh", "-c", `env | grep -c ^SECRETS_; echo "$GITHUB_TOKEN"`}, "secrets": []map[string]any{{"name": "github_token"}}})
	if res.IsError || out["stdout"] != "0\n[REDACTED:GITHUB_TOKEN]\n" || leaked(res) {
		t.Fatalf("an allowed command: %+v", out)
	}
	// Even an allowed cat does not reach the key where the kernel lets us hide the store.
	_, out = callTool(t, cs, "secrets_exec", map[string]any{"command": []string{"cat", filepath.Join(dir, "identity.age")}, "secrets": []map[string]any{{"name": "github_token"}}})
	if strings.Contains(out["stdout"].(string), "AGE-SECRET-KEY") != (out["store_hidden"] == false) {
		t.Fatalf("store_hidden must say whether the key could be read: %+v", out)
	}
	if why := sandbox.Available(); why != nil {
		t.Logf("the kernel allowed no sandbox here, and the result says so: %v (%v)", out["store_visible"], why)
	} else if out["store_hidden"] != true || strings.Contains(out["stdout"].(string), "AGE-SECRET-KEY") {
		t.Fatalf("the sandbox is available, yet the command saw the store: %+v", out)
	}
	// A command the rules do not name, or secrets itself, still does not run.
	for _, argv := range [][]string{{"rev"}, {"secrets", "list"}} {
		res, out = callTool(t, cs, "secrets_exec", map[string]any{"command": argv, "secrets": []map[string]any{{"name": "github_token"}}})
		if !res.IsError || out["error"].(map[string]any)["code"] != "command_not_allowed" {
			t.Fatalf("%v: %+v", argv, out)
		}
	}
}

func TestAttackRotationHookHandsOutValue(t *testing.T) {
	s := newAttackStore(t)
	loot := filepath.Join(t.TempDir(), "loot")
	// A hook is recorded when it changes (old and new command) and each run is recorded as
	// an access, with the command, before it runs.
	s.must("", "set", "k", "--rotate-via", "cat > "+loot+"; echo FAKE-attack-v2")
	changes := auditEntries(t, s.dir, "secret_hooks")
	if len(changes) != 1 || !strings.Contains(changes[0]["detail"].(string), `rotate_via (none) -> "cat > `+loot) {
		t.Fatalf("hook change: %+v", changes)
	}
	if out := s.must("", "list"); !strings.Contains(out, `"hooks_changed_at"`) {
		t.Fatalf("list shows when the hooks changed: %s", out)
	}
	if out := s.must("", "status"); !strings.Contains(out, `"new_rotate_via": "cat > `) {
		t.Fatalf("status shows the latest hook changes: %s", out)
	}
	s.must("", "rotate", "k")
	runs := auditEntries(t, s.dir, "hook_run")
	if len(runs) != 1 || !strings.Contains(runs[0]["detail"].(string), "cat > "+loot) {
		t.Fatalf("a hook run is an access: %+v", runs)
	}
	// A canary's hook trips it.
	s.must("FAKE-attack-canary", "add", "c", "--canary", "--rotate-via", "cat >/dev/null; echo FAKE-attack-canary2")
	s.must("", "rotate", "c")
	if out := s.must("", "status"); !strings.Contains(out, `"trigger": "canary"`) {
		t.Fatalf("rotating a canary did not trip it: %s", out)
	}
	// In lockdown hooks keep running (a compromised credential can be replaced) but no
	// hook can change, so no new command can get a value.
	s.wantCode("lockdown", exitLockdown, "", "set", "k", "--rotate-via", "cat > "+loot+"2")
	s.wantCode("lockdown", exitLockdown, "FAKE-attack-new", "add", "n", "--rotate-via", "cat > "+loot+"3")
	s.must("", "rotate", "k")
	if _, err := os.Stat(loot + "2"); err == nil {
		t.Fatal("a hook set in lockdown ran")
	}
}

func TestAttackCanariesStayHidden(t *testing.T) {
	s := newAttackStore(t)
	plain := newAttackStore(t)
	s.must("FAKE-attack-canary", "add", "c", "--canary")
	plain.must("FAKE-attack-canary", "add", "c")
	// The two files differ only where their times do (a time drops its trailing zeros).
	stamp := regexp.MustCompile(`"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z"`)
	mac := regexp.MustCompile(`"hmac-sha256:[0-9a-f]+"`)
	shape := func(s *attackStore) string {
		return mac.ReplaceAllString(stamp.ReplaceAllString(string(decryptFile(t, s.path("identity.age"), s.path("secrets.age"))), `"T"`), `"M"`)
	}
	a, b := shape(s), shape(plain)
	if len(a) != len(b) || strings.Count(a, `"canary":true `) != 1 || strings.Count(b, `"canary":false`) != 3 {
		t.Fatalf("secrets.age tells the canary apart by its size:\n%s\n%s", a, b)
	}
	// The command tree and the help agents read do not mention canaries.
	for _, args := range [][]string{{}, {"add", "--help"}, {"list", "--help"}} {
		if _, out, errs := s.run("", nil, args...); strings.Contains(strings.ToLower(out+errs), "canar") {
			t.Fatalf("secrets %v mentions canaries:\n%s%s", args, out, errs)
		}
	}
	for _, args := range [][]string{{"list"}, {"status"}, {"leases"}} {
		if out := s.must("", args...); strings.Contains(out, "canary") {
			t.Fatalf("secrets %v tells a canary apart: %s", args, out)
		}
	}
	// Showing them is an admin act, and audited.
	if out := s.must("", "list", "--show-canaries"); !strings.Contains(out, `"canary": true`) {
		t.Fatalf("list --show-canaries: %s", out)
	}
	if len(auditEntries(t, s.dir, "canaries_shown")) != 1 {
		t.Fatal("list --show-canaries was not audited")
	}
}

func TestAttackCanaryTripInTheGrantsCommit(t *testing.T) {
	s := newAttackStore(t)
	s.must("FAKE-attack-canary", "add", "c", "--canary")
	s.must("", "lease", "k")
	if out := s.must("", "lease", "c"); out != "FAKE-attack-canary" {
		t.Fatalf("a canary hands out its value: %q", out)
	}
	// The trip is in the same commit as the grant: nothing that takes the lock after the
	// value left can hold it back.
	grants := auditEntries(t, s.dir, "lease_grant")
	trips := auditEntries(t, s.dir, "canary_tripped")
	kills := auditEntries(t, s.dir, "killswitch")
	if len(trips) != 1 || len(kills) != 1 || trips[0]["txn"] != grants[len(grants)-1]["txn"] || kills[0]["txn"] != trips[0]["txn"] {
		t.Fatalf("grant %v, trip %v, killswitch %v: not one commit", grants[len(grants)-1]["txn"], trips, kills)
	}
	s.wantCode("lockdown", exitLockdown, "", "lease", "x")
	if out := s.must("", "leases"); !strings.Contains(out, `"count": 0`) {
		t.Fatalf("canary_action revoke_all: %s", out)
	}
}

func TestAttackConfigEditWeakensNothing(t *testing.T) {
	s := newAttackStore(t)
	s.must("", "lease", "k") // pins config.json as it is
	edit := func(change func(map[string]any)) {
		t.Helper()
		var c map[string]any
		if err := json.Unmarshal(s.read("config.json"), &c); err != nil {
			t.Fatal(err)
		}
		change(c)
		b, _ := json.Marshal(c)
		s.write("config.json", b)
	}
	edit(func(c map[string]any) {
		c["max_lease_ttl"] = "1000h"
		c["canary_action"] = map[string]any{"revoke_all": false}
	})
	s.wantCode("ttl_exceeds_max", exitUsage, "", "lease", "k", "--ttl", "100h")
	if out := s.must("", "status"); !strings.Contains(out, `"max_lease_ttl"`) || !strings.Contains(out, `"canary_action"`) || !strings.Contains(out, `"held_back"`) {
		t.Fatalf("status does not say what is held back: %s", out)
	}
	s.must("FAKE-attack-canary", "add", "c", "--canary")
	s.must("", "lease", "c")
	if out := s.must("", "leases"); !strings.Contains(out, `"count": 0`) {
		t.Fatalf("an edited canary_action took effect: %s", out)
	}
	// Only a person at a terminal applies it.
	s.wantCode("usage", exitUsage, "apply\n", "config", "apply")
	// A change that tightens a control takes effect at once, and is recorded.
	edit(func(c map[string]any) {
		c["max_lease_ttl"], c["default_lease_ttl"] = "2h", "1h"
		c["canary_action"] = map[string]any{"revoke_all": true}
	})
	s.must("", "revoke", "--all") // any write applies it
	applied := auditEntries(t, s.dir, "config_apply")
	if len(applied) == 0 || !strings.Contains(applied[len(applied)-1]["detail"].(string), `"max_lease_ttl":"2h"`) {
		t.Fatalf("a tightening was not applied and recorded: %+v", applied)
	}
}

// decryptFile decrypts an age file with the identity file, as age -d would.
func decryptFile(t *testing.T, identity, file string) []byte {
	t.Helper()
	idf, err := os.Open(identity)
	if err != nil {
		t.Fatal(err)
	}
	defer idf.Close()
	ids, err := age.ParseIdentities(idf)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := age.Decrypt(f, ids...)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The attacks an independent review found after the first cut of issue 11, each a test.

func TestAttackBrokenConfigKeepsKillswitchOff(t *testing.T) {
	s := newAttackStore(t)
	bin, env := s.bin, s.env
	_, done, _ := startExec(t, bin, env, "--", "sleep", "30")
	s.write("config.json", []byte(`{"max_lease_ttl":"x"}`))
	os.Chmod(s.path("identity.age"), 0o644)
	os.Chmod(s.dir, 0o755)
	if _, out, errs := s.run("", nil, "killswitch", "--yes"); !strings.Contains(out, `"leases_revoked": 1`) {
		t.Fatalf("a broken config.json and loose modes kept the killswitch from cutting access:\n%s%s", out, errs)
	}
	if code, _ := waitExit(t, done, time.Now(), 5*time.Second); code != 143 {
		t.Fatalf("the exec command was not stopped: exit %d", code)
	}
	os.Chmod(s.dir, 0o700)
	os.Chmod(s.path("identity.age"), 0o600)
	s.write("config.json", []byte(`{}`))
	if out := s.must("", "status"); !strings.Contains(out, `"trigger": "manual"`) {
		t.Fatalf("the lockdown was not recorded: %s", out)
	}
}

func TestAttackHookEnvironment(t *testing.T) {
	s := newAttackStore(t)
	evil, loot := t.TempDir(), filepath.Join(t.TempDir(), "loot")
	if err := os.WriteFile(filepath.Join(evil, "cat"), []byte("#!/bin/sh\n/bin/cat > "+loot+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s.must("", "set", "k", "--rotate-via", "cat >/dev/null")
	s.must("", "killswitch", "--yes")
	// The agent cannot change the hook in lockdown; it cannot change what the hook runs
	// either: hooks get a fixed PATH and none of the caller's loader variables.
	code, out, errs := s.run("", []string{"PATH=" + evil + ":" + os.Getenv("PATH"), "LD_PRELOAD=" + filepath.Join(evil, "x.so")}, "rotate", "k")
	if code != 0 {
		t.Fatalf("rotate: %d %s%s", code, out, errs)
	}
	if b, err := os.ReadFile(loot); err == nil {
		t.Fatalf("the caller's PATH ran its own cat with the value: %q", b)
	}
}

func TestAttackMCPExecVariablesAndClient(t *testing.T) {
	cs, dir := mcpServerArgs(t, "--exec", "true")
	mustCall(t, dir, "", "policy", "set", "github_token", "--clients", "test-agent")
	for _, v := range []string{"LD_PRELOAD", "BASH_ENV", "NODE_OPTIONS", "PATH", "PYTHONSTARTUP", "GIT_SSH_COMMAND", "SECRETS_DIR"} {
		res, out := callTool(t, cs, "secrets_exec", map[string]any{"command": []string{"true"}, "secrets": []map[string]any{{"name": "github_token", "env_var": v}}})
		if e, _ := out["error"].(map[string]any); !res.IsError || e["code"] != "command_not_allowed" {
			t.Fatalf("secrets_exec put a secret in %s: %+v", v, out)
		}
	}
	// A mapping file the agent wrote does not say who asks.
	project := filepath.Join(t.TempDir(), "p.json")
	os.WriteFile(project, []byte(`{"secrets":[{"name":"github_token","env_var":"GITHUB_TOKEN"}],"client_id":"deploy-bot"}`), 0o600)
	mustCall(t, dir, "", "policy", "set", "github_token", "--clients", "deploy-bot")
	res, out := callTool(t, cs, "secrets_exec", map[string]any{"command": []string{"true"}, "project_file": project})
	if e, _ := out["error"].(map[string]any); !res.IsError || e["code"] != "caller_not_allowed" {
		t.Fatalf("a project file's client_id spoke for the MCP client: %+v", out)
	}
}

func TestAttackConfigTighteningIsPinned(t *testing.T) {
	s := newAttackStore(t)
	s.must("", "lease", "k")
	set := func(c string) { s.write("config.json", []byte(c)) }
	set(`{"canary_action":{"revoke_all":false}}`) // a weakening, held back
	s.must("", "lease", "k")
	set(`{"canary_action":{"revoke_all":false},"max_lease_ttl":"2h"}`) // the admin tightens
	s.must("", "lease", "k")
	set(`{"canary_action":{"revoke_all":false},"max_lease_ttl":"24h"}`) // the agent undoes it
	s.wantCode("ttl_exceeds_max", exitUsage, "", "lease", "k", "--ttl", "3h")
	set(`{"rotation_timeout":"1ns"}`)
	if out := s.must("", "status"); !strings.Contains(out, `"rotation_timeout"`) {
		t.Fatalf("a rotation_timeout that would fail every hook is not held back: %s", out)
	}
}

func TestAttackPolicyRenewAndRepeatedMapping(t *testing.T) {
	s := newAttackStore(t)
	s.must("", "policy", "set", "k", "--max-ttl", "5m", "--max-uses", "2")
	id := leaseIDOf(t, s.must("", "lease", "k", "--json"))
	s.wantCode("ttl_exceeds_max", exitUsage, "", "renew", id, "--ttl", "24h")
	s.must("", "renew", id, "--ttl", "5m")
	// Three mappings of a secret that has one use left are three uses, not one.
	s.wantCode("uses_exhausted", exitPolicy, "", "exec", "--secret", "k=A", "--secret", "k=B", "--", "true")
	s.must("", "exec", "--secret", "k=A", "--", "true")
}
