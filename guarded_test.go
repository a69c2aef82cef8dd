package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/guard"
	"github.com/agent-secrets/secrets/vault"
)

// agentRequest is the owner side's own check: it must hold whatever the caller side sent.
func TestAgentRequest(t *testing.T) {
	for _, argv := range [][]string{
		{"lease", "gh"}, {"--json", "lease", "gh", "--ttl", "5m"}, {"--lock-timeout", "2s", "status"}, {"--lock-timeout=2s", "leases"},
		{"list"}, {"revoke", "--all"}, {"renew", "lease_x"}, {"killswitch", "--reason", "x"},
		{"exec", "--secret", "gh", "--", "true"}, {"exec", "--", "ls", "--dir", "/x", "--show-canaries"},
		{"add", "x"}, {"env", "--secret", "gh"}, {"cleanup", "--all"}, {"watch", "--once"}, {"audit", "--tail", "5", "--event", "lease_grant"},
	} {
		if _, err := agentRequest(argv); err != nil {
			t.Errorf("%v refused: %v", argv, err)
		}
	}
	for _, argv := range [][]string{
		{}, {"--json"}, {"add", "x", "--rotate-via", "y"}, {"add", "x", "--canary"}, {"--dir", "/tmp", "lease", "gh"}, {"--dir=/tmp", "lease", "gh"}, {"lease", "gh", "--dir", "/x"},
		{"lease", "gh", "-dir=/x"}, {"killswitch", "--wipe"}, {"killswitch", "--rotate-all=true"}, {"list", "--show-canaries"},
		{"exec", "--dir", "/x", "--", "true"}, {"env", "--dir", "/x"}, {"mcp"}, {"audit", "--reset", "--yes"}, {"audit", "--rotate"}, {"audit", "--verify"}, {"unlock"}, {"approve", "req"}, {"policy", "set"}, {"guard"},
		{"--identity", "x", "lease", "gh"},
	} {
		if _, err := agentRequest(argv); !errors.Is(err, guard.ErrNotPermitted) {
			t.Errorf("%v allowed (%v)", argv, err)
		}
	}
}

// A refused raw lease prints nothing on stdout, which a script takes for the value.
func TestFailGuardKeepsRawStdout(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		envelope bool
	}{{[]string{"secrets", "lease", "k"}, false}, {[]string{"secrets", "lease", "k", "--json"}, true}, {[]string{"secrets", "--lock-timeout", "1s", "status"}, true}} {
		var out, errb strings.Builder
		a := newApp(strings.NewReader(""), &out, &errb, nil, nil)
		a.args = tc.args
		if code := a.failGuard(guard.ErrNotPermitted); code != exitGuard || (out.Len() > 0) != tc.envelope || !strings.Contains(errb.String(), "secrets: hint:") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tc.args, code, out.String(), errb.String())
		}
	}
}

// Both sides route by the command agentRequest finds, which reads global flags as
// urfave/cli does: one dash or two, the value after the flag or after =. A reading of
// their own let `-lock-timeout 5s exec` run exec on the owner side (helper-8's F1).
func TestAgentRequestCommand(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"-lock-timeout", "5s", "exec", "--", "id"}, "exec"},
		{[]string{"--lock-timeout", "5s", "env"}, "env"},
		{[]string{"--lock-timeout=5s", "lease", "x"}, "lease"},
		{[]string{"-lock-timeout=5s", "-json", "status"}, "status"},
		{[]string{"--json", "add", "x"}, "add"},
	} {
		if got, err := agentRequest(tc.argv); err != nil || got != tc.want {
			t.Errorf("%v: %q, %v; want %q", tc.argv, got, err, tc.want)
		}
		if got := commandWord(append([]string{"secrets"}, tc.argv...)); got != tc.want {
			t.Errorf("commandWord %v: %q; want %q", tc.argv, got, tc.want)
		}
	}
}

// The owner side's command tree holds the agent-level requests and nothing else: exec,
// env, add, the admin commands and the admin's flags (killswitch --wipe, --dir, …) are
// not in it, whatever a request's words say.
func TestOwnerTree(t *testing.T) {
	for _, argv := range [][]string{
		{"secrets", "-lock-timeout", "5s", "exec", "--secret", "x", "--", "true"},
		{"secrets", "env", "--secret", "x"}, {"secrets", "add", "x"}, {"secrets", "unlock"}, {"secrets", "policy", "show"},
		// helper-9's: an admin's flag after a "--" that urfave/cli takes for a value.
		{"secrets", "killswitch", "--reason", "--", "--wipe", "--yes"}, {"secrets", "killswitch", "--rotate-all"},
		{"secrets", "list", "--output", "--", "--show-canaries"}, {"secrets", "audit", "--event", "--", "--rotate"},
		{"secrets", "audit", "--verify"}, {"secrets", "audit", "--reset", "--yes"},
		{"secrets", "lease", "--ttl", "--", "--dir=/tmp", "k"}, {"secrets", "--dir", "/tmp", "status"}, {"secrets", "status", "--dir=/tmp"},
	} {
		var out, errb strings.Builder
		a := newApp(strings.NewReader(""), &out, &errb, []string{"SECRETS_DIR=" + t.TempDir()}, time.Now)
		a.caller = &vault.Caller{UID: 12345, User: "agent"}
		if code := a.run(argv); code != exitUsage {
			t.Errorf("%v on the owner side: exit %d\n%s", argv, code, errb.String())
		}
	}
}
