package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/agent-secrets/secrets/guard"
)

// agentRequest is the owner side's own check: it must hold whatever the caller side sent.
func TestAgentRequest(t *testing.T) {
	for _, argv := range [][]string{
		{"lease", "gh"}, {"--json", "lease", "gh", "--ttl", "5m"}, {"--lock-timeout", "2s", "status"}, {"--lock-timeout=2s", "leases"},
		{"list"}, {"revoke", "--all"}, {"renew", "lease_x"}, {"killswitch", "--reason", "x"},
		{"exec", "--secret", "gh", "--", "true"}, {"exec", "--", "ls", "--dir", "/x", "--show-canaries"},
		{"add", "x"}, {"env", "--secret", "gh"}, {"cleanup", "--all"}, {"watch", "--once"}, {"audit", "--tail", "5", "--event", "lease_grant"},
	} {
		if err := agentRequest(argv); err != nil {
			t.Errorf("%v refused: %v", argv, err)
		}
	}
	for _, argv := range [][]string{
		{}, {"--json"}, {"add", "x", "--rotate-via", "y"}, {"add", "x", "--canary"}, {"--dir", "/tmp", "lease", "gh"}, {"--dir=/tmp", "lease", "gh"}, {"lease", "gh", "--dir", "/x"},
		{"lease", "gh", "-dir=/x"}, {"killswitch", "--wipe"}, {"killswitch", "--rotate-all=true"}, {"list", "--show-canaries"},
		{"exec", "--dir", "/x", "--", "true"}, {"env", "--dir", "/x"}, {"mcp"}, {"audit", "--reset", "--yes"}, {"audit", "--rotate"}, {"audit", "--verify"}, {"unlock"}, {"approve", "req"}, {"policy", "set"}, {"guard"},
		{"--identity", "x", "lease", "gh"},
	} {
		if err := agentRequest(argv); !errors.Is(err, guard.ErrNotPermitted) {
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
