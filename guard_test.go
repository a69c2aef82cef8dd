//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/guard"
	"github.com/agent-secrets/secrets/vault"
	"github.com/gofrs/flock"
)

// The guarded store (issue 13), the real thing: real users, real sudo, a real sudoers
// drop-in, as root. Elsewhere these tests skip and say why.

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP: the guarded store tests create users and a sudoers rule, so they run as root only (CI runs them)")
	}
	for _, tool := range []string{"sudo", "visudo", "useradd", "userdel", "runuser"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: %s is not installed (CI installs it)", tool)
		}
	}
	if _, err := os.Stat(guard.ConfigPath); err == nil {
		t.Skipf("SKIP: %s exists: a guarded store is set up on this machine, and the test would replace it", guard.ConfigPath)
	}
}

// sys runs a command as root and fails the test if it fails.
func sys(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// addUser creates a user for the test and removes it afterwards.
func addUser(t *testing.T, name string, extra ...string) {
	t.Helper()
	exec.Command("userdel", "-r", name).Run()
	sys(t, "useradd", append([]string{"--create-home", "--shell", "/bin/sh"}, append(extra, name)...)...)
	t.Cleanup(func() { exec.Command("userdel", "-r", name).Run() })
}

type result struct {
	code           int
	stdout, stderr string
}

// as runs argv as user, with a clean login-like environment.
func as(t *testing.T, user, stdin string, argv ...string) result {
	t.Helper()
	cmd := exec.Command("runuser", append([]string{"-u", user, "--"}, argv...)...)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/" + user, "LANG=C.UTF-8"}
	cmd.Dir = "/"
	return runCmd(t, cmd, stdin)
}

// root runs the test binary as secrets, as root, with no store named: the guarded one.
func root(t *testing.T, bin, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=" + t.TempDir(), "LANG=C.UTF-8"}
	return runCmd(t, cmd, stdin)
}

// started is a command started in the background: its stderr, and its end.
type started struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan error
}

// startAs starts argv as user in a process group of its own, which the test's end kills.
func startAs(t *testing.T, user string, argv ...string) *started {
	t.Helper()
	cmd := exec.Command("runuser", append([]string{"-u", user, "--"}, argv...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/home/" + user}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s := &started{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
		}
	})
	return s
}

// exited waits up to d for s to end, and reports its exit status, or -1 if it did not.
func (s *started) exited(d time.Duration) int {
	select {
	case err := <-s.done:
		s.done <- err
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		return 0
	case <-time.After(d):
		return -1
	}
}

func runCmd(t *testing.T, cmd *exec.Cmd, stdin string) result {
	t.Helper()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// wantCode checks the exit status and the code: in the envelope, or, where stdout is not
// ours (a raw lease, exec), in the error line's words.
func wantCode(t *testing.T, what string, r result, exit int, code string) {
	t.Helper()
	if r.code != exit || !strings.Contains(r.stdout, `"code": "`+code+`"`) && !strings.Contains(r.stderr, "secrets: error: "+strings.ReplaceAll(code, "_", " ")) {
		t.Fatalf("%s: exit %d, want %d (%s)\nstdout: %s\nstderr: %s", what, r.code, exit, code, r.stdout, r.stderr)
	}
}

func TestGuardedStore(t *testing.T) {
	requireRoot(t)
	bin := secretsBinary(t)
	const agent, other, admin, owner = "secrets-t-agent", "secrets-t-other", "secrets-t-admin", "_secrets_t"
	dir := "/var/lib/secrets-t"
	addUser(t, agent)
	addUser(t, other)
	addUser(t, admin, "--groups", "sudo")
	t.Cleanup(func() {
		root(t, bin, "", "guard", "--remove", "--delete-store", "--yes")
		exec.Command("userdel", owner).Run()
		os.RemoveAll(dir)
	})

	// guard refuses an admin, root, and a store or binary another user could change.
	wantCode(t, "guard --allow root", root(t, bin, "", "guard", "--allow", "root", "--user", owner, "--dir", dir), exitGuard, "not_permitted")
	wantCode(t, "guard --allow an admin", root(t, bin, "", "guard", "--allow", admin, "--user", owner, "--dir", dir), exitGuard, "not_permitted")
	wantCode(t, "guard --allow %sudo", root(t, bin, "", "guard", "--allow", "%sudo", "--user", owner, "--dir", dir), exitGuard, "not_permitted")
	// An admin by a sudoers rule rather than a group (the review's ragent3).
	ruled := "/etc/sudoers.d/zz-secrets-t-admin"
	os.WriteFile(ruled, []byte(agent+" ALL=(ALL:ALL) NOPASSWD: ALL\n"), 0o440)
	r0 := root(t, bin, "", "guard", "--allow", agent, "--user", owner, "--dir", dir)
	os.Remove(ruled)
	if r0.code != exitGuard || !strings.Contains(r0.stdout, "sudoers lets it run") {
		t.Fatalf("guard --allow a user sudoers makes an admin: %+v", r0)
	}
	shared := filepath.Join(t.TempDir(), "open")
	os.Mkdir(shared, 0o777)
	os.Chmod(shared, 0o777)
	wantCode(t, "guard in a world-writable directory", root(t, bin, "", "guard", "--allow", agent, "--user", owner, "--dir", filepath.Join(shared, "store")), exitGuard, "not_permitted")
	if _, err := os.Stat(guard.SudoersPath); err == nil {
		t.Fatal("a refused guard left a sudoers rule")
	}
	// A binary another user could replace: guard does not install it there.
	if libexec := filepath.Dir(guard.BinaryPath); !exists(libexec) {
		os.MkdirAll(libexec, 0o755)
		uid, _ := strconv.Atoi(strings.TrimSpace(sys(t, "id", "-u", agent)))
		os.Chown(libexec, uid, -1)
		r := root(t, bin, "", "guard", "--allow", agent, "--user", owner, "--dir", dir)
		os.RemoveAll(libexec)
		wantCode(t, "guard with a binary directory the agent owns", r, exitGuard, "not_permitted")
		if exists(guard.SudoersPath) || exists(guard.BinaryPath) {
			t.Fatal("a refused guard left its rule or binary")
		}
	}

	// A broken sudoers configuration elsewhere: guard does not add its rule to it.
	broken := "/etc/sudoers.d/zz-secrets-t-broken"
	os.WriteFile(broken, []byte("this is not sudoers\n"), 0o440)
	r := root(t, bin, "", "guard", "--allow", agent, "--user", owner, "--dir", dir)
	os.Remove(broken)
	if r.code == 0 || !strings.Contains(r.stderr, "visudo") {
		t.Fatalf("guard with a broken sudoers configuration: %+v", r)
	}
	if _, err := os.Stat(guard.SudoersPath); err == nil {
		t.Fatal("guard left its rule in a configuration visudo rejects")
	}

	// Set up, twice (idempotent), and the status is clean.
	for range 2 {
		if r := root(t, bin, "", "guard", "--allow", agent, "--allow", other, "--user", owner, "--dir", dir); r.code != 0 {
			t.Fatalf("guard: %+v", r)
		}
	}
	if r := root(t, bin, "", "guard", "--status"); r.code != 0 {
		t.Fatalf("guard --status: %+v", r)
	}
	sys(t, "visudo", "-c")
	for path, want := range map[string]string{guard.ConfigPath: "root 644", guard.SudoersPath: "root 440", guard.BinaryPath: "root 755", dir: owner + " 700"} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		name := "root"
		if st.Uid != 0 {
			name = owner
		}
		if got := fmt.Sprintf("%s %o", name, fi.Mode().Perm()); got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}

	// The admin adds secrets; root's commands run as the owner, so the files stay its.
	const value = "FAKE-guarded-value-5b1e"
	if r := root(t, bin, value, "add", "gh_token"); r.code != 0 {
		t.Fatalf("add as root: %+v", r)
	}
	if r := root(t, bin, "FAKE-canary-value-77", "add", "canary_key", "--canary"); r.code != 0 {
		t.Fatalf("add as root: %+v", r)
	}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Sys().(*syscall.Stat_t).Uid == 0 {
			t.Errorf("%s belongs to root", p)
		}
		return nil
	})

	// A hook that looks in a home directory is warned about: it runs as the owner.
	if r := root(t, bin, "", "set", "gh_token", "--rotate-via", "sh /home/"+agent+"/rotate.sh"); r.code != 0 {
		t.Fatalf("set --rotate-via as root: %+v", r)
	}
	if r := root(t, bin, "", "guard", "--status"); r.code != 0 || !strings.Contains(r.stdout, "the hook of gh_token refers to a home directory") {
		t.Fatalf("guard --status and a hook in a home: %+v", r)
	}

	// The agent user leases through the owner side.
	secrets := guard.BinaryPath
	if r := as(t, agent, "", secrets, "lease", "gh_token"); r.code != 0 || r.stdout != value {
		t.Fatalf("lease as the agent: %+v", r)
	}
	// The caller's umask is not the owner side's; resource limits too low to finish what
	// it starts (sudo passes them on) stop it before it starts anything.
	if r := as(t, agent, "", "sh", "-c", "umask 0777; exec "+secrets+" lease gh_token --ttl 1m"); r.code != 0 || r.stdout != value {
		t.Fatalf("lease under the caller's umask 0777: %+v", r)
	}
	wantCode(t, "a lease under ulimit -f, with --json", as(t, agent, "", "sh", "-c", "ulimit -f 1000; exec "+secrets+" lease gh_token --json"), exitGuard, "guard_unavailable")
	for _, limit := range []string{"ulimit -f 1000", "ulimit -t 5", "ulimit -v 3000000"} {
		if r := as(t, agent, "", "sh", "-c", limit+"; exec "+secrets+" lease gh_token --ttl 1m"); r.code != exitGuard || !strings.Contains(r.stderr, "limit is") || r.stdout != "" {
			t.Fatalf("a lease under %s: %+v", limit, r)
		}
	}
	if r := root(t, bin, "", "audit", "--verify"); r.code != 0 {
		t.Fatalf("the log after the limited callers: %+v", r)
	}
	as(t, agent, "", secrets, "revoke", "--all")
	if r := as(t, agent, "", secrets, "lease", "gh_token"); r.code != 0 || r.stdout != value {
		t.Fatalf("lease as the agent: %+v", r)
	}
	if r := as(t, agent, "", secrets, "leases"); r.code != 0 || !strings.Contains(r.stdout, `"count": 1`) {
		t.Fatalf("leases as the agent: %+v", r)
	}
	if r := as(t, agent, "", secrets, "status"); r.code != 0 {
		t.Fatalf("status as the agent: %+v", r)
	}
	log := root(t, bin, "", "audit", "--event", "lease_grant")
	if !strings.Contains(log.stdout, fmt.Sprintf(`"uid": %s`, strings.TrimSpace(sys(t, "id", "-u", agent)))) {
		t.Fatalf("the lease is not recorded as the agent user's:\n%s", log.stdout)
	}

	// The policy is the admin's, and binds the agent user: a single-use secret leases once.
	if r := root(t, bin, "FAKE-single-use-31", "add", "once"); r.code != 0 {
		t.Fatalf("add: %+v", r)
	}
	if r := root(t, bin, "", "policy", "set", "once", "--max-uses", "1"); r.code != 0 {
		t.Fatalf("policy set as root: %+v", r)
	}
	if r := as(t, other, "", secrets, "lease", "once"); r.code != 0 || r.stdout != "FAKE-single-use-31" {
		t.Fatalf("the single use: %+v", r)
	}
	wantCode(t, "a second use", as(t, other, "", secrets, "lease", "once", "--json"), exitPolicy, "uses_exhausted")

	// ^Z at the agent's terminal reaches the owner side too (sudo without a pty leaves it in
	// the terminal's foreground group): it must not stop while it may hold the lock. A
	// lease that waits for an approval keeps one alive to look at.
	if r := root(t, bin, "FAKE-approved-value-8", "add", "approved"); r.code != 0 {
		t.Fatalf("add: %+v", r)
	}
	if r := root(t, bin, "", "policy", "set", "approved", "--approve", "always"); r.code != 0 {
		t.Fatalf("policy set: %+v", r)
	}
	waiting := exec.Command("runuser", "-u", other, "--", secrets, "lease", "approved", "--wait", "20s")
	waiting.Env = []string{"PATH=/usr/bin:/bin", "HOME=/home/" + other}
	if err := waiting.Start(); err != nil {
		t.Fatal(err)
	}
	var ownerPID int
	waitFor(10*time.Second, func() bool {
		for _, p := range procsWith(guard.BinaryPath + " " + guard.OwnerArg) {
			if pid, _, ok := strings.Cut(p, ":"); ok {
				if n, err := strconv.Atoi(pid); err == nil && !strings.HasPrefix(p, pid+": sudo") {
					ownerPID = n
				}
			}
		}
		return ownerPID != 0
	})
	if ownerPID == 0 {
		t.Fatal("no owner-side process waiting")
	}
	t.Cleanup(func() { syscall.Kill(ownerPID, syscall.SIGKILL); waiting.Process.Kill(); waiting.Wait() }) // before the store goes
	syscall.Kill(ownerPID, syscall.SIGTSTP)
	time.Sleep(200 * time.Millisecond)
	if stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", ownerPID)); bytes.Contains(stat, []byte(") T ")) {
		t.Fatal("SIGTSTP stopped the owner side")
	}
	syscall.Kill(ownerPID, syscall.SIGKILL)

	// An approval round trip: the agent's lease waits (--wait) until root, at a terminal,
	// approves the request it made; the owner side takes the approval in and hands the value.
	ask := []string{secrets, "lease", "approved", "--client-id", "agent-7", "--ttl", "10m"}
	refused := as(t, other, "", ask...) // the same words as the waiting one: what is approved
	wantCode(t, "a lease that needs approval", refused, exitApproval, "approval_required")
	id := requestID(t, refused.stderr)
	patient := exec.Command("runuser", append([]string{"-u", other, "--"}, append(ask, "--wait", "30s")...)...)
	patient.Env = []string{"PATH=/usr/bin:/bin", "HOME=/home/" + other}
	var got strings.Builder
	patient.Stdout = &got
	if err := patient.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if code := rootApprover(t, bin, id); code != 0 {
		t.Fatalf("root's approve at a terminal: exit %d", code)
	}
	if err := patient.Wait(); err != nil || got.String() != "FAKE-approved-value-8" {
		t.Fatalf("the waiting lease after the approval: %v %q", err, got.String())
	}

	// A pending secret: an agent user's add creates nothing until root approves it, and
	// its value waits only encrypted.
	const asked = "FAKE-pending-value-61"
	pending := as(t, other, asked, secrets, "add", "requested")
	wantCode(t, "an agent user's add", pending, exitApproval, "approval_required")
	if r := as(t, other, "", secrets, "lease", "requested"); r.code == 0 {
		t.Fatalf("a pending secret leased before its approval: %+v", r)
	}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if b, _ := os.ReadFile(p); err == nil && !fi.IsDir() && bytes.Contains(b, []byte(asked)) {
			t.Errorf("%s holds the pending value in the clear", p)
		}
		return nil
	})
	if code := rootApprover(t, bin, requestID(t, pending.stderr)); code != 0 {
		t.Fatalf("root's approve of a pending secret: exit %d", code)
	}
	if r := as(t, other, "", secrets, "lease", "requested"); r.code != 0 || r.stdout != asked {
		t.Fatalf("the approved secret: %+v", r)
	}
	denied := as(t, other, "FAKE-denied-value-62", secrets, "add", "refused")
	if code := rootDecides(t, bin, "deny", requestID(t, denied.stderr)); code != 0 {
		t.Fatalf("root's deny of a pending secret: exit %d", code)
	}
	if r := root(t, bin, "", "list"); strings.Contains(r.stdout, `"refused"`) {
		t.Fatalf("a denied pending secret was added: %s", r.stdout)
	}
	wantCode(t, "an agent user's add of a stored name", as(t, other, "x", secrets, "add", "gh_token"), exitConflict, "secret_exists")
	// Another agent user neither sees nor changes that lease.
	var lid string
	if r := as(t, agent, "", secrets, "leases"); r.code == 0 {
		var env struct {
			Result struct {
				Leases []struct {
					LeaseID string `json:"lease_id"`
				} `json:"leases"`
			} `json:"result"`
		}
		json.Unmarshal([]byte(r.stdout), &env)
		if len(env.Result.Leases) == 1 {
			lid = env.Result.Leases[0].LeaseID
		}
	}
	if lid == "" {
		t.Fatal("no lease id")
	}
	if r := as(t, other, "", secrets, "leases"); r.code != 0 || strings.Contains(r.stdout, lid) || !strings.Contains(r.stdout, `"count": 3`) {
		t.Fatalf("leases as another agent user (its own three only): %+v", r)
	}
	// helper-11's F4: list counts an agent user's own leases only.
	var listed struct {
		Result struct {
			Secrets []struct {
				Name         string `json:"name"`
				ActiveLeases int    `json:"active_leases"`
			} `json:"secrets"`
		} `json:"result"`
	}
	json.Unmarshal([]byte(as(t, agent, "", secrets, "list").stdout), &listed)
	for _, x := range listed.Result.Secrets {
		if x.Name == "once" && x.ActiveLeases != 0 {
			t.Fatalf("an agent user's list counts another's leases: %+v", x)
		}
	}
	wantCode(t, "revoke another's lease", as(t, other, "", secrets, "revoke", lid), exitNotFound, "lease_not_found")
	wantCode(t, "renew another's lease", as(t, other, "", secrets, "renew", lid), exitNotFound, "lease_not_found")
	// An agent user reads its own entries: those it made, less any that name another's
	// lease. Its revoke --all ends the other user's lease too; that entry is not shown.
	if r := as(t, other, "", secrets, "revoke", "--all"); r.code != 0 {
		t.Fatalf("revoke --all as an agent: %+v", r)
	}
	own := as(t, other, "", secrets, "audit", "--tail", "1000")
	mine := strings.TrimSpace(sys(t, "id", "-u", other))
	if own.code != 0 || strings.Contains(own.stdout, lid) || !strings.Contains(own.stdout, `"event": "revoke_all"`) || !strings.Contains(own.stdout, `"event": "lease_grant"`) {
		t.Fatalf("audit as an agent user: %+v", own)
	}
	var view struct {
		Result struct {
			Entries []struct {
				Actor struct {
					UID int `json:"uid"`
				} `json:"actor"`
			} `json:"entries"`
		} `json:"result"`
	}
	json.Unmarshal([]byte(own.stdout), &view)
	for _, e := range view.Result.Entries {
		if strconv.Itoa(e.Actor.UID) != mine {
			t.Fatalf("an agent user reads another's entry: %+v", e)
		}
	}
	if !strings.Contains(root(t, bin, "", "audit", "--tail", "1000").stdout, lid) {
		t.Fatal("root's log lacks the revoke of the other user's lease")
	}
	// helper-10's: what one caller may leave in the state is bounded, and another's
	// revoke --all neither drops its pending secret nor shows it its name or id.
	wantCode(t, "a pending value of 65 KiB", as(t, other, strings.Repeat("v", 65<<10), secrets, "add", "big"), exitUsage, "usage")
	kept := as(t, other, "FAKE-kept-pending-63", secrets, "add", "kept")
	keptID := requestID(t, kept.stderr)
	as(t, agent, "", secrets, "revoke", "--all")
	if r := root(t, bin, "", "approve"); !strings.Contains(r.stdout, keptID) {
		t.Fatalf("an agent's revoke --all dropped another's pending secret: %s", r.stdout)
	}
	if r := as(t, agent, "", secrets, "audit", "--tail", "1000"); strings.Contains(r.stdout, keptID) || strings.Contains(r.stdout, `"kept"`) {
		t.Fatalf("an agent's log shows another's pending secret: %s", r.stdout)
	}
	for i := range vault.MaxCallerRequests {
		as(t, other, "FAKE-flood", secrets, "add", fmt.Sprintf("flood_%d", i))
	}
	wantCode(t, "one pending request too many", as(t, other, "FAKE-flood", secrets, "add", "flood_last"), exitUsage, "usage")
	rootDecides(t, bin, "deny", keptID)
	// helper-11's F3: a new value for a waiting name is a new request, so an approval
	// cannot take in a value swapped in while root read the old one.
	first := requestID(t, as(t, agent, "FAKE-swap-a", secrets, "add", "swapped").stderr)
	second := requestID(t, as(t, agent, "FAKE-swap-b", secrets, "add", "swapped").stderr)
	if first == second || strings.Contains(root(t, bin, "", "approve").stdout, first) {
		t.Fatalf("a replaced pending value kept its request: %s %s", first, second)
	}
	if r := root(t, bin, "", "approve", first); r.code == 0 || !strings.Contains(r.stderr, "no pending request") {
		t.Fatalf("root's approve of a request whose value was replaced: %+v", r)
	}
	rootDecides(t, bin, "deny", second)

	// What the agent user cannot do: read the store, decrypt it, change anything.
	for _, argv := range [][]string{{"cat", dir + "/identity.age"}, {"ls", dir}, {"cp", "/dev/null", dir + "/secrets.age"}} {
		if r := as(t, agent, "", argv...); r.code == 0 {
			t.Errorf("%v as the agent succeeded: %+v", argv, r)
		}
	}
	if _, err := exec.LookPath("age"); err == nil {
		if r := as(t, agent, "", "age", "-d", "-i", dir+"/identity.age", dir+"/secrets.age"); r.code == 0 {
			t.Errorf("age -d as the agent succeeded")
		}
	}
	for _, argv := range [][]string{
		{"add", "x", "--canary"}, {"set", "gh_token", "--rotate-via", "echo FAKE"}, {"rotate", "gh_token"}, {"unlock"}, {"approve"},
		{"policy", "set", "gh_token", "--max-uses", "9"}, {"list", "--show-canaries"}, {"audit", "--reset", "--yes"}, {"rm", "gh_token"},
		{"killswitch", "--wipe", "--yes"},
	} {
		wantCode(t, fmt.Sprint(argv), as(t, agent, "x", append([]string{secrets}, argv...)...), exitGuard, "not_permitted")
	}
	// An admin's flag hidden behind a "--" that is a flag's value, through the CLI.
	for _, argv := range [][]string{{"killswitch", "--reason", "--", "--wipe", "--yes"}, {"killswitch", "--reason", "--", "--rotate-all"}, {"list", "--output", "--", "--show-canaries"}} {
		if r := as(t, agent, "", append([]string{secrets}, argv...)...); r.code == 0 || strings.Contains(r.stdout, "canary_key") {
			t.Fatalf("%v as the agent: %+v", argv, r)
		}
	}
	if !exists(dir + "/identity.age") {
		t.Fatal("an agent's killswitch wiped the store")
	}
	// Naming the store as a plain one opens nothing: its files are the owner's.
	if r := as(t, agent, "", secrets, "--dir", dir, "lease", "gh_token"); r.code == 0 || strings.Contains(r.stdout, value) {
		t.Fatalf("--dir to the guarded store as the agent: %+v", r)
	}
	// Around the caller side: sudo allows the owner side only, which checks again.
	if r := as(t, agent, "", "sudo", "-n", "-u", owner, guard.BinaryPath, "lease", "gh_token"); r.code == 0 || strings.Contains(r.stdout, value) {
		t.Fatalf("sudo with other arguments: %+v", r)
	}
	raw := func(req ownerRequest) ownerResponse {
		b, _ := json.Marshal(req)
		r := as(t, agent, string(b), "sudo", "-n", "-u", owner, guard.BinaryPath, guard.OwnerArg)
		var resp ownerResponse
		if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil {
			t.Fatalf("owner side: %+v", r)
		}
		return resp
	}
	// The caller side's own commands never run on the owner side: exec there would run
	// the caller's command as the store's user.
	for _, argv := range [][]string{{"add", "x"}, {"--dir", "/tmp/x", "lease", "gh_token"}, {"lease", "gh_token", "--dir", "/tmp/x"}, {"rm", "gh_token"},
		{"exec", "--secret", "gh_token", "--", "cat", dir + "/identity.age"}, {"env", "--secret", "gh_token", "--output", "/tmp/x.env"}, {"cleanup"}, {"watch", "--once"},
		// helper-9's: an admin's flag after a "--" taken as a flag's value.
		{"killswitch", "--reason", "--", "--wipe", "--yes"}, {"list", "--output", "--", "--show-canaries"}, {"lease", "--ttl", "--", "--dir=/tmp", "gh_token"},
		// helper-8's F1: a global flag with one dash, which urfave/cli takes as well.
		{"-lock-timeout", "5s", "exec", "--secret", "gh_token", "--", "cat", dir + "/identity.age"}, {"-lock-timeout=5s", "env", "--secret", "gh_token", "--output", "/tmp/x.env"}} {
		if resp := raw(ownerRequest{Release: version, Argv: argv}); resp.Exit != exitGuard || bytes.Contains(resp.Stdout, []byte(value)) || bytes.Contains(resp.Stdout, []byte("AGE-SECRET-KEY")) {
			t.Errorf("owner side, %v: %+v", argv, resp)
		}
	}
	// helper-8's F2: an env request without the mapping's content names a file for the
	// owner side to read; it reads none.
	if resp := raw(ownerRequest{Release: version, Env: &envRequest{File: dir + "/config.json", Output: "/tmp/x.env"}}); resp.Error == nil || strings.Contains(resp.Error.Message, "audit_rotate_size") || strings.Contains(resp.Error.Message, "config.json") {
		t.Errorf("an env request naming an owner's file: %+v", resp.Error)
	}
	if exists("/tmp/x.env") {
		t.Error("the owner side wrote the caller's .env file")
	}
	if resp := raw(ownerRequest{Release: "0.0.1-other", Argv: []string{"status"}}); resp.Exit != exitGuard || resp.Error == nil || !strings.Contains(resp.Error.Message, "0.0.1-other") || !strings.Contains(resp.Error.Message, version) {
		t.Errorf("a caller side of another release: %+v", resp)
	}

	guardedExec(t, bin, agent, dir, value)
	guardedEnv(t, bin, agent, dir, value)
	guardedInject(t, bin, agent, dir, value)

	// A canary locks the store down when it is used; the agents are not told which it was.
	// The lockdown stops a guarded exec's command, through the owner side's helper.
	watched := startAs(t, agent, secrets, "exec", "--secret", "gh_token", "--", "sleep", "64")
	if !waitFor(10*time.Second, func() bool { return running("sleep 64") }) {
		t.Fatalf("exec did not start: %s", watched.stderr.String())
	}
	as(t, agent, "", secrets, "lease", "canary_key")
	if code := watched.exited(15 * time.Second); code != 128+int(syscall.SIGTERM) || !strings.Contains(watched.stderr.String(), "was stopped") {
		t.Fatalf("a guarded exec after the canary's trip: exit %d\n%s", code, watched.stderr.String())
	}
	for _, r := range []result{as(t, other, "", secrets, "status"), as(t, other, "", secrets, "lease", "gh_token")} {
		if strings.Contains(r.stdout+r.stderr, "canary_key") {
			t.Fatalf("an agent is told which secret is the canary: %+v", r)
		}
	}
	wantCode(t, "a control character in --reason", as(t, agent, "", secrets, "killswitch", "--reason", "x\x1b[2J"), exitUsage, "usage")

	// The killswitch: any agent pulls it, only root's side lifts it. An owner-side process
	// that holds the lock and is stopped (^Z, which sudo relays) does not stop it: access is
	// cut through killswitch.intent at once, and the lockdown holds once the lock is free.
	held := flock.New(filepath.Join(dir, ".lock"))
	if err := held.Lock(); err != nil {
		t.Fatal(err)
	}
	r = as(t, agent, "", secrets, "--lock-timeout", "500ms", "killswitch", "--reason", "test")
	held.Unlock()
	if !strings.Contains(r.stdout, "access is cut") {
		t.Fatalf("killswitch as the agent, the lock held: %+v", r)
	}
	wantCode(t, "lease in lockdown", as(t, agent, "", secrets, "lease", "gh_token"), exitLockdown, "lockdown")
	if r := as(t, agent, "", secrets, "killswitch", "--reason", "again"); r.code != 0 {
		t.Fatalf("killswitch as the agent: %+v", r)
	}
	wantCode(t, "unlock as the agent", as(t, agent, "", secrets, "unlock"), exitGuard, "not_permitted")
	// Root lifts it, at a terminal, typing the fingerprint status shows.
	var st struct {
		Result struct {
			Lockdown struct {
				Fingerprint string `json:"fingerprint"`
			} `json:"lockdown"`
		} `json:"result"`
	}
	json.Unmarshal([]byte(root(t, bin, "", "status").stdout), &st)
	if st.Result.Lockdown.Fingerprint == "" {
		t.Fatal("status shows root no fingerprint to lift the lockdown with")
	}
	if code := rootAnswers(t, bin, st.Result.Lockdown.Fingerprint, "unlock"); code != 0 {
		t.Fatalf("root's unlock at a terminal: exit %d", code)
	}
	if r := as(t, agent, "", secrets, "lease", "gh_token"); r.code != 0 || r.stdout != value {
		t.Fatalf("a lease after root lifted the lockdown: %+v", r)
	}

	// A user guard.json does not name is refused before sudo is asked.
	wantCode(t, "an unlisted user", as(t, admin, "", secrets, "status"), exitGuard, "not_permitted")

	// Remove keeps the store unless asked.
	if r := root(t, bin, "", "guard", "--remove"); r.code != 0 {
		t.Fatalf("guard --remove: %+v", r)
	}
	for _, p := range []string{guard.SudoersPath, guard.ConfigPath, guard.BinaryPath} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s is still there after --remove", p)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "secrets.age")); err != nil {
		t.Errorf("--remove took the store: %v", err)
	}
}

// TestREADMEGuardedStore runs the README's Guarded store commands as they are written,
// with this binary installed as secrets on PATH.
func TestREADMEGuardedStore(t *testing.T) {
	requireRoot(t)
	for _, p := range []string{"/usr/local/bin/secrets", "/home/agent", "/var/lib/secrets"} {
		if _, err := os.Stat(p); err == nil {
			t.Skipf("SKIP: %s exists: the README's commands would change what is there", p)
		}
	}
	if exec.Command("id", "agent").Run() == nil || exec.Command("id", guard.DefaultUser).Run() == nil {
		t.Skip("SKIP: a user named agent or _secrets exists: the README's commands would change it")
	}
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(b), "\n## Guarded store\n")
	_, rest, _ = strings.Cut(rest, "```\n")
	block, _, _ := strings.Cut(rest, "```")
	self, _ := os.Executable()
	bin, _ := os.ReadFile(self)
	if err := os.WriteFile("/usr/local/bin/secrets", bin, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("/usr/local/bin/secrets", "guard", "--remove", "--delete-store", "--yes").Run()
		os.Remove("/usr/local/bin/secrets")
		exec.Command("userdel", "-r", "agent").Run()
		exec.Command("userdel", guard.DefaultUser).Run()
	})
	const token = "FAKE-readme-guarded-9d"
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", block)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=" + t.TempDir(), "TOKEN=" + token}
	cmd.Dir = t.TempDir()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the README's commands: %v\n%s", err, out)
	}
	if !strings.HasSuffix(string(out), token) {
		t.Fatalf("the agent's lease printed %q", out)
	}
}

// rootApprover answers root's secrets approve ID on a pseudo-terminal, as a person: in a
// guarded store it runs as the owner, with root's terminal.
func rootApprover(t *testing.T, bin, id string) int { return rootDecides(t, bin, "approve", id) }

// rootDecides answers root's secrets approve|deny ID as rootApprover does.
func rootDecides(t *testing.T, bin, verb, id string) int {
	t.Helper()
	return rootAnswers(t, bin, verb, verb, id)
}

// rootAnswers runs root's secrets ARGS… on a pseudo-terminal and types answer at its
// prompt, as a person would.
func rootAnswers(t *testing.T, bin, answer string, args ...string) int {
	t.Helper()
	ptmx, tty := openPTY(t)
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "HOME=" + t.TempDir()}
	cmd.Stdin = strings.NewReader("")
	cmd.ExtraFiles = []*os.File{tty}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 3}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	readUntil(t, ptmx, "it: ")
	ptmx.Write([]byte(answer + "\n"))
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return 0
}

// guardedExec checks exec in a guarded store: the command runs as the agent user with
// the value and without the store; the owner side holds the lease, so root's revoke
// --all stops the command; and the caller side's end, even a SIGKILL, ends the lease.
func guardedExec(t *testing.T, bin, agent, dir, value string) {
	t.Helper()
	secrets := guard.BinaryPath
	script := `id -un; [ "$GH_TOKEN" = ` + value + ` ] && echo has-the-value; cat ` + dir + `/identity.age >/dev/null 2>&1 || echo no-store; printf '%s\n' "$GH_TOKEN"`
	r := as(t, agent, "", secrets, "exec", "--secret", "gh_token", "--", "sh", "-c", script)
	if r.code != 0 || r.stdout != agent+"\nhas-the-value\nno-store\n[REDACTED:GH_TOKEN]\n" {
		t.Fatalf("exec as the agent: %+v", r)
	}
	// With a global flag of one dash, exec still runs on the caller side, as the caller.
	if r := as(t, agent, "", secrets, "-lock-timeout", "5s", "exec", "--secret", "gh_token", "--", "id", "-un"); r.code != 0 || r.stdout != agent+"\n" {
		t.Fatalf("exec after -lock-timeout: %+v", r)
	}
	// Root's exec runs its command as root, not as the store's user.
	if r := root(t, bin, "", "exec", "--secret", "gh_token", "--", "sh", "-c", `id -un; [ "$GH_TOKEN" = `+value+` ] && echo has-the-value`); r.code != 0 || r.stdout != "root\nhas-the-value\n" {
		t.Fatalf("root's exec: %+v", r)
	}
	// A command line of the user's own that looks like our flags is the command's.
	if r := as(t, agent, "", secrets, "exec", "--secret", "gh_token", "--", "echo", "--dir", "x"); r.code != 0 || r.stdout != "--dir x\n" {
		t.Fatalf("exec of a command with --dir: %+v", r)
	}
	if r := as(t, agent, "", secrets, "exec", "--secret", "no_such", "--", "true"); r.code == 0 || !strings.Contains(r.stderr, `no secret named "no_such"`) {
		t.Fatalf("exec of an unknown secret: %+v", r)
	}
	execs := func() int {
		r := root(t, bin, "", "leases")
		return strings.Count(r.stdout, `"kind": "exec"`)
	}
	start := func(marker string) *started {
		s := startAs(t, agent, secrets, "exec", "--secret", "gh_token", "--", "sleep", marker)
		if !waitFor(10*time.Second, func() bool { return execs() == 1 && running("sleep "+marker) }) {
			t.Fatalf("no exec lease while the command runs: %s", s.stderr.String())
		}
		return s
	}

	// Revocation reaches the command through the owner side.
	s := start("61")
	if r := root(t, bin, "", "revoke", "--all"); r.code != 0 {
		t.Fatalf("revoke --all as root: %+v", r)
	}
	if code := s.exited(15 * time.Second); code != 128+int(syscall.SIGTERM) || !strings.Contains(s.stderr.String(), "was stopped") {
		t.Fatalf("the command after revoke --all: exit %d\n%s", code, s.stderr.String())
	}

	// The caller side killed outright: the pipe closes, the owner side ends the lease.
	start("62")
	for _, p := range procsWith(secrets + " exec --secret gh_token -- sleep 62") {
		pid, _, _ := strings.Cut(p, ":")
		if n, _ := strconv.Atoi(pid); n > 0 && !strings.Contains(p, "runuser") {
			syscall.Kill(n, syscall.SIGKILL)
		}
	}
	if !waitFor(10*time.Second, func() bool { return execs() == 0 && !running("sleep 62") }) {
		t.Fatalf("the caller side's SIGKILL left the lease or the command: %d leases", execs())
	}
	log := root(t, bin, "", "audit", "--event", "exec_exit")
	if !strings.Contains(log.stdout, "sleep") {
		t.Fatalf("the exec's end is not in the log:\n%s", log.stdout)
	}
	for _, leak := range []string{log.stdout, s.stderr.String()} {
		if strings.Contains(leak, value) {
			t.Fatalf("the value leaked: %s", leak)
		}
	}
}

// TestExecRevokeAsUser is revocation of a plain store's exec as a user who is not root:
// every secrets process is non-dumpable, so the revoking one may not read the
// supervisor's /proc/PID/exe, and must still find it (the bug was that only root could).
func TestExecRevokeAsUser(t *testing.T) {
	requireRoot(t)
	const user = "secrets-t-plain"
	addUser(t, user)
	dir, err := os.MkdirTemp("/tmp", "secrets-t-bin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	self, _ := os.Executable()
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "secrets")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	store := "/home/" + user + "/store"
	run := func(stdin string, args ...string) result {
		return as(t, user, stdin, append([]string{"env", "SECRETS_DIR=" + store, bin}, args...)...)
	}
	if r := run("", "init"); r.code != 0 {
		t.Fatalf("init: %+v", r)
	}
	if r := run("FAKE-plain-user-value-4", "add", "tok"); r.code != 0 {
		t.Fatalf("add: %+v", r)
	}
	s := startAs(t, user, "env", "SECRETS_DIR="+store, bin, "exec", "--secret", "tok", "--", "sleep", "63")
	if !waitFor(10*time.Second, func() bool { return running("sleep 63") }) {
		t.Fatalf("the command did not start: %s", s.stderr.String())
	}
	if r := run("", "revoke", "--all"); r.code != 0 {
		t.Fatalf("revoke --all: %+v", r)
	}
	if code := s.exited(10 * time.Second); code != 128+int(syscall.SIGTERM) {
		log := run("", "audit", "--event", "exec_gone")
		t.Fatalf("revoke --all as a user did not stop its exec: exit %d\n%s\n%s", code, s.stderr.String(), log.stdout)
	}
}

// guardedEnv checks .env files in a guarded store: the agent user's own, written and
// removed by its caller side; the owner side never opens a path the caller named.
func guardedEnv(t *testing.T, bin, agent, dir, value string) {
	t.Helper()
	secrets := guard.BinaryPath
	home := "/home/" + agent
	envPath := home + "/project/.env"
	if r := as(t, agent, "", "mkdir", "-p", home+"/project"); r.code != 0 {
		t.Fatal(r)
	}
	r := as(t, agent, "", secrets, "env", "--secret", "gh_token", "--output", envPath)
	if r.code != 0 || strings.Contains(r.stdout+r.stderr, value) {
		t.Fatalf("env as the agent: %+v", r)
	}
	fi, err := os.Stat(envPath)
	if err != nil || fi.Mode().Perm() != 0o600 || strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Uid)) != strings.TrimSpace(sys(t, "id", "-u", agent)) {
		t.Fatalf("the .env file: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(envPath); !strings.Contains(string(b), "GH_TOKEN='"+value+"'") {
		t.Fatalf("the .env file holds %q", b)
	}
	// Its lease ends; the owner side cannot remove it, and does not try.
	if r := root(t, bin, "", "revoke", "--all"); r.code != 0 {
		t.Fatalf("revoke --all: %+v", r)
	}
	if _, err := os.Stat(envPath); err != nil {
		t.Fatalf("the owner side reached the caller's file: %v", err)
	}
	// A dry run says so and changes nothing; cleanup removes it.
	if r := as(t, agent, "", secrets, "cleanup", "--dry-run"); r.code != 0 || !strings.Contains(r.stdout, envPath) || !strings.Contains(r.stdout, "would be removed") {
		t.Fatalf("cleanup --dry-run as the agent: %+v", r)
	}
	if _, err := os.Stat(envPath); err != nil {
		t.Fatal("a dry run removed the file")
	}
	if r := as(t, agent, "", secrets, "cleanup"); r.code != 0 || !strings.Contains(r.stdout, envPath) {
		t.Fatalf("cleanup as the agent: %+v", r)
	}
	if _, err := os.Stat(envPath); err == nil {
		t.Fatal("cleanup left the ended .env file")
	}
	// The next call removes a due file too: here, status.
	as(t, agent, "", secrets, "env", "--secret", "gh_token", "--output", envPath)
	root(t, bin, "", "revoke", "--all")
	as(t, agent, "", secrets, "status")
	if _, err := os.Stat(envPath); err == nil {
		t.Fatal("the caller side's next call left the ended .env file")
	}

	// A hostile path: the agent names a store file as its .env. Its caller side refuses,
	// and a request sent around it records the path as a name only: ending the lease,
	// root's cleanup and a killswitch never open it, so the store is intact.
	wantCode(t, "env into the store", as(t, agent, "", secrets, "env", "--secret", "gh_token", "--output", dir+"/secrets.age", "--force"), exitWriteFail, "write_failed")
	req, _ := json.Marshal(ownerRequest{Release: version, Env: &envRequest{Secrets: []string{"gh_token"}, Output: dir + "/secrets.age", Force: true}})
	if r := as(t, agent, string(req), "sudo", "-n", "-u", "_secrets_t", guard.BinaryPath, guard.OwnerArg); r.code != 0 || !strings.Contains(r.stdout, `"content"`) {
		t.Fatalf("the raw env request: %+v", r)
	}
	long, _ := json.Marshal(ownerRequest{Release: version, Env: &envRequest{Secrets: []string{"gh_token"}, Output: "/tmp/" + strings.Repeat("x", 5000)}})
	if r := as(t, agent, string(long), "sudo", "-n", "-u", "_secrets_t", guard.BinaryPath, guard.OwnerArg); !strings.Contains(r.stdout, `"code":"usage"`) {
		t.Fatalf("an env request with a 5000-byte path: %+v", r)
	}
	// helper-11's F1: a command word that would make an audit line over 1 MiB.
	huge, _ := json.Marshal(ownerRequest{Release: version, Hold: &holdRequest{Secrets: []string{"gh_token"}, Command: []string{strings.Repeat("x", 1100000)}}})
	if r := as(t, agent, string(huge), "sudo", "-n", "-u", "_secrets_t", guard.BinaryPath, guard.OwnerArg); !strings.Contains(r.stdout, `"refused":true`) {
		t.Fatalf("a hold with a 1.1 MB command word: %+v", r)
	}
	if r := root(t, bin, "", "audit", "--verify"); r.code != 0 {
		t.Fatalf("the log after a huge hold request: %+v", r)
	}
	// helper-11's F2: another user's .env record at the same path is never touched.
	if r := root(t, bin, "", "env", "--secret", "gh_token", "--output", "/tmp/secrets-t-root.env"); r.code != 0 {
		t.Fatalf("root's env: %+v", r)
	}
	t.Cleanup(func() { os.Remove("/tmp/secrets-t-root.env") })
	onRoots, _ := json.Marshal(ownerRequest{Release: version, Env: &envRequest{Secrets: []string{"gh_token"}, Output: "/tmp/secrets-t-root.env"}})
	as(t, agent, string(onRoots), "sudo", "-n", "-u", "_secrets_t", guard.BinaryPath, guard.OwnerArg)
	as(t, agent, "", secrets, "revoke", "--all")
	as(t, agent, `{"release":"`+version+`","forget":["/tmp/secrets-t-root.env"]}`, "sudo", "-n", "-u", "_secrets_t", guard.BinaryPath, guard.OwnerArg)
	if r := root(t, bin, "", "revoke", "--all"); r.code != 0 || exists("/tmp/secrets-t-root.env") {
		t.Fatalf("root's .env file after an agent's record at its path: %+v (still there: %v)", r, exists("/tmp/secrets-t-root.env"))
	}
	// helper-12's F4: the leases one caller holds at once are bounded.
	as(t, agent, "", secrets, "revoke", "--all")
	var specs []string
	for i := range vault.MaxMappings {
		specs = append(specs, fmt.Sprintf("gh_token=V%d", i))
	}
	var last result
	for i := range vault.MaxCallerLeases/vault.MaxMappings + 1 {
		req, _ := json.Marshal(ownerRequest{Release: version, Env: &envRequest{Secrets: specs, Output: fmt.Sprintf("%s/project/many%d.env", home, i)}})
		last = as(t, agent, string(req), "sudo", "-n", "-u", "_secrets_t", guard.BinaryPath, guard.OwnerArg)
	}
	if !strings.Contains(last.stdout, "leases of yours are active") {
		t.Fatalf("a caller past %d leases: %+v", vault.MaxCallerLeases, last)
	}
	as(t, agent, "", secrets, "revoke", "--all")
	// helper-12's F2: a path that would put control characters on root's terminal.
	ctl, _ := json.Marshal(ownerRequest{Release: version, Env: &envRequest{Secrets: []string{"gh_token"}, Output: "/tmp/a\u009b2J\u202eenv"}})
	if r := as(t, agent, string(ctl), "sudo", "-n", "-u", "_secrets_t", guard.BinaryPath, guard.OwnerArg); !strings.Contains(r.stdout, "control character") {
		t.Fatalf("an env path with C1 and bidi characters: %+v", r)
	}
	before, _ := os.ReadFile(dir + "/secrets.age")
	root(t, bin, "", "revoke", "--all")
	if r := root(t, bin, "", "cleanup", "--all"); r.code != 0 {
		t.Fatalf("root's cleanup: %+v", r)
	}
	if after, _ := os.ReadFile(dir + "/secrets.age"); !bytes.Equal(before, after) {
		t.Fatal("the owner side touched a path the caller named")
	}
	if r := as(t, agent, "", secrets, "lease", "gh_token"); r.code != 0 || r.stdout != value {
		t.Fatalf("the store after the hostile path: %+v", r)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// running reports whether a process runs the command line cmd itself (not one that
// names it, as secrets exec … -- cmd does).
func running(cmd string) bool {
	for _, p := range procsWith(cmd) {
		if _, line, _ := strings.Cut(p, ": "); strings.HasPrefix(line, cmd) {
			return true
		}
	}
	return false
}
