//go:build linux

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/policy"
	"github.com/agent-secrets/secrets/vault"
)

// The policy of DESIGN.md section 11 and every path that reveals a value under it (issue
// 11), tried against the built binary as an agent running as the same user would.

// wantCode runs secrets and checks that it fails with code and exit status, leaking no
// value of the store.
func (s *attackStore) wantCode(code string, exit int, stdin string, args ...string) string {
	s.t.Helper()
	got, out, errs := s.run(stdin, nil, args...)
	// lease and exec print no envelope (stdout is the value's, or the command's): their
	// message starts with the code's words.
	if got != exit || !strings.Contains(out+errs, code) && !strings.Contains(errs, "error: "+strings.ReplaceAll(code, "_", " ")) {
		s.t.Fatalf("secrets %v: exit %d, want %d with %s\n%s%s", args, got, exit, code, out, errs)
	}
	if strings.Contains(out+errs, "FAKE-attack") {
		s.t.Fatalf("secrets %v refused but showed a value:\n%s%s", args, out, errs)
	}
	return out + errs
}

func TestPolicySingleUse(t *testing.T) {
	s := newAttackStore(t)
	s.must("", "policy", "set", "k", "--max-uses", "1")
	if out := s.must("", "lease", "k"); out != "FAKE-attack-v1" {
		t.Fatalf("the one use: %q", out)
	}
	s.wantCode("uses_exhausted", exitPolicy, "", "lease", "k")
	s.wantCode("uses_exhausted", exitPolicy, "", "exec", "--secret", "k", "--", "true")
	// A new value starts the count again; so does an admin's reset.
	s.must("FAKE-attack-v2", "set", "k")
	if out := s.must("", "lease", "k"); out != "FAKE-attack-v2" {
		t.Fatalf("the new value's use: %q", out)
	}
	s.wantCode("uses_exhausted", exitPolicy, "", "lease", "k")
	s.must("", "policy", "reset-uses", "k")
	s.must("", "lease", "k")
	// The counter is in the local state: the log replays it, and a second use is refused
	// whatever the snapshot says.
	s.wantCode("uses_exhausted", exitPolicy, "", "lease", "k")
	if out := s.must("", "audit", "--event", "policy_set"); !strings.Contains(out, `new {\"max_uses\":1}`) {
		t.Fatalf("a policy change is audited with the old and new rule: %s", out)
	}
}

func TestPolicyDeliveries(t *testing.T) {
	s := newAttackStore(t)
	env := filepath.Join(t.TempDir(), "x.env")
	raw := []string{"lease", "k"}
	asEnv := []string{"env", "--secret", "k", "--output", env, "--force"}
	asExec := []string{"exec", "--secret", "k", "--", "true"}
	for _, tc := range []struct {
		deliver string
		allowed [][]string
		refused [][]string
	}{
		{"raw", [][]string{raw}, [][]string{asEnv, asExec}},
		{"env", [][]string{asEnv}, [][]string{raw, asExec}},
		{"exec", [][]string{asExec}, [][]string{raw, asEnv}},
		{"inject", nil, [][]string{raw, asEnv, asExec}},
		{"raw,env,exec", [][]string{raw, asEnv, asExec}, nil},
	} {
		s.must("", "policy", "set", "k", "--deliver", tc.deliver)
		for _, args := range tc.allowed {
			s.must("", args...)
		}
		for _, args := range tc.refused {
			exit := exitPolicy
			s.wantCode("delivery_not_allowed", exit, "", args...)
		}
	}
	// The default rule covers every secret without one of its own.
	s.must("", "policy", "set", "--default", "--deliver", "exec")
	s.wantCode("delivery_not_allowed", exitPolicy, "", "lease", "x")
	s.must("", "exec", "--secret", "x", "--", "true")
	// Callers and clients.
	s.must("", "policy", "set", "x", "--deliver", "raw", "--clients", "ci-*")
	s.wantCode("caller_not_allowed", exitPolicy, "", "lease", "x", "--client-id", "agent-1")
	s.must("", "lease", "x", "--client-id", "ci-42")
	s.must("", "policy", "set", "x", "--callers", "nobody-at-all")
	s.wantCode("caller_not_allowed", exitPolicy, "", "lease", "x", "--client-id", "ci-42")
	// max_ttl: asked above it is refused; a default above it is lowered to it.
	s.must("", "policy", "set", "x", "--callers", "*", "--max-ttl", "5m")
	s.wantCode("ttl_exceeds_max", exitUsage, "", "lease", "x", "--ttl", "10m", "--client-id", "ci-1")
	if out := s.must("", "lease", "x", "--json", "--client-id", "ci-1"); !strings.Contains(out, `"ttl": "5m"`) {
		t.Fatalf("a default TTL above max_ttl: %s", out)
	}
	// A rule that cannot hold is refused, naming the field, and nothing changes.
	s.wantCode("invalid_policy", exitUsage, "", "policy", "set", "x", "--deliver", "carrier-pigeon")
	s.wantCode("invalid_policy", exitUsage, "", "policy", "set", "x", "--approve", "sometimes")
}

// approver answers a secrets approve or deny prompt on a pseudo-terminal, as a person.
func approver(t *testing.T, s *attackStore, verb, id, typed string) int {
	t.Helper()
	ptmx, tty := openPTY(t)
	cmd := exec.Command(s.bin, verb, id)
	cmd.Env, cmd.Stdin = s.env, strings.NewReader(verb+"\n") // stdin is never read
	cmd.ExtraFiles = []*os.File{tty}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 3}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	prompt := readUntil(t, ptmx, "it: ")
	if !strings.Contains(prompt, id) || !strings.Contains(prompt, "secret:") {
		t.Fatalf("the prompt does not show what was asked: %q", prompt)
	}
	ptmx.Write([]byte(typed + "\n"))
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return 0
}

func requestID(t *testing.T, out string) string {
	t.Helper()
	i := strings.Index(out, "req_")
	if i < 0 {
		t.Fatalf("no request id in %s", out)
	}
	return strings.TrimRight(strings.Fields(out[i:])[0], ",;)")
}

func TestApprovalFailFastAndRoundTrip(t *testing.T) {
	s := newAttackStore(t)
	s.must("", "policy", "set", "k", "--approve", "always")
	ask := []string{"lease", "k", "--client-id", "agent-7", "--ttl", "10m"}
	id := requestID(t, s.wantCode("approval_required", exitApproval, "", ask...))
	// Asking again is the same request, not a new one.
	if again := requestID(t, s.wantCode("approval_required", exitApproval, "", ask...)); again != id {
		t.Fatalf("a second ask made %s, not %s", again, id)
	}
	if out := s.must("", "approve"); !strings.Contains(out, id) || !strings.Contains(out, `"client_id": "agent-7"`) || !strings.Contains(out, `"command": "secrets lease k --client-id agent-7 --ttl 10m"`) {
		t.Fatalf("approve lists what each request asked: %s", out)
	}
	// No terminal: no approval, whatever stdin says.
	s.wantCode("usage", exitUsage, "approve\n", "approve", id)
	// A waiting lease gets its value once a person approves at the terminal.
	cmd := exec.Command(s.bin, append(ask, "--wait", "20s")...)
	cmd.Env = s.env
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if code := approver(t, s, "approve", id, "nope"); code != exitUsage {
		t.Fatalf("a wrong answer: exit %d", code)
	}
	if code := approver(t, s, "approve", id, "approve"); code != 0 {
		t.Fatalf("approve: exit %d", code)
	}
	if err := cmd.Wait(); err != nil || out.String() != "FAKE-attack-v1" {
		t.Fatalf("the waiting lease: %v %q", err, out.String())
	}
	// approve always: the approval was used by that grant.
	next := requestID(t, s.wantCode("approval_required", exitApproval, "", ask...))
	if next == id {
		t.Fatal("an approve-always approval was used twice")
	}
	if code := approver(t, s, "deny", next, "deny"); code != 0 {
		t.Fatalf("deny: exit %d", code)
	}
	s.wantCode("approval_denied", exitPolicy, "", ask...)
}

func TestApprovalBoundToWhatWasAsked(t *testing.T) {
	s := newAttackStore(t)
	s.must("", "policy", "set", "k", "--approve", "once")
	ask := []string{"lease", "k", "--client-id", "agent-7", "--ttl", "10m"}
	id := requestID(t, s.wantCode("approval_required", exitApproval, "", ask...))
	if code := approver(t, s, "approve", id, "approve"); code != 0 {
		t.Fatalf("approve: exit %d", code)
	}
	s.must("", ask...)
	s.must("", ask...) // once: the approval stands for the same request
	for _, other := range [][]string{
		{"lease", "k", "--client-id", "agent-8", "--ttl", "10m"}, // another client
		{"lease", "k", "--client-id", "agent-7", "--ttl", "1h"},  // another TTL
		{"lease", "k", "--client-id", "agent-7", "--ttl", "10m", "--json"},
		{"exec", "--secret", "k", "--client-id", "agent-7", "--ttl", "10m", "--", "true"}, // another delivery
	} {
		if got := requestID(t, s.wantCode("approval_required", exitApproval, "", other...)); got == id {
			t.Fatalf("%v used the approval of %v", other, ask)
		}
	}
}

func TestApprovalRequestsExpire(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	v := vault.New(vault.Options{Dir: dir, LockTimeout: 10 * time.Second, ClientID: "agent-7", Now: func() time.Time { return now }, Command: "secrets lease k"})
	ctx := context.Background()
	if _, err := v.Init(ctx, vault.InitInput{}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Add(ctx, vault.AddInput{Name: "k", Value: []byte("FAKE-expiry")}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.PolicySet(ctx, vault.PolicyInput{Name: "k", Change: func(r *policy.Rule) { r.Approve = ptr("always") }}); err != nil {
		t.Fatal(err)
	}
	_, err := v.Lease(ctx, vault.LeaseInput{Name: "k"})
	first := vault.RequestIDs(err)
	if len(first) != 1 {
		t.Fatalf("lease: %v", err)
	}
	now = now.Add(16 * time.Minute)
	pending, err := v.Approvals(ctx)
	if err != nil || pending.Count != 0 {
		t.Fatalf("a request older than 15 minutes is still pending: %+v %v", pending, err)
	}
	if _, err := v.Decide(ctx, vault.DecideInput{ID: first[0], Approve: true, Confirm: func(string) (string, error) { return "approve", nil }}); err == nil {
		t.Fatal("an expired request was approved")
	}
	_, err = v.Lease(ctx, vault.LeaseInput{Name: "k"})
	if again := vault.RequestIDs(err); len(again) != 1 || again[0] == first[0] {
		t.Fatalf("after expiry a lease must make a new request: %v", err)
	}
}
