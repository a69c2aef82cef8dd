//go:build stress

// The reliability matrix of issue 6, run by `make stress` (go test -tags stress). Each
// case runs the built binary against a fresh temporary store.
package main

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/store"
)

// stressRuns is how many times each crash point is hit ($STRESS_RUNS, default 10).
func stressRuns() int {
	if n, err := strconv.Atoi(os.Getenv("STRESS_RUNS")); err == nil && n > 0 {
		return n
	}
	return 10
}

// buildTagged builds the binary with extra build tags.
func buildTagged(t testing.TB, tags string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "secrets")
	cmd := exec.Command("go", "build", "-tags", tags, "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build -tags %s: %v\n%s", tags, err, out)
	}
	return bin
}

type runResult struct {
	code   int
	killed bool
	out    string
}

// runIn runs the binary against store dir with cwd, stdin and extra environment.
func runIn(bin, dir, cwd, stdin string, extra []string, args ...string) runResult {
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"SECRETS_DIR=" + dir, "HOME=" + cwd, "PATH=" + os.Getenv("PATH"), "SECRETS_CLIENT_ID=stress"}, extra...)
	cmd.Dir, cmd.Stdin = cwd, strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	r := runResult{out: string(out)}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
				r.killed = true
			}
		} else {
			r.code = -1
		}
	}
	return r
}

// abstract describes a store's decrypted state without what differs between runs (lease
// ids, times): secret values, leases by secret and kind, managed files, lockdown. A store
// that cannot be opened is "unreadable: …"; one that was never made is "absent".
func abstract(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, store.SecretsFile)); os.IsNotExist(err) {
		return "absent"
	}
	sec, leases, state, err := inspect(dir)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	var parts []string
	for _, n := range sec.Names() {
		parts = append(parts, "secret "+n+"="+string(sec.Secrets[n].Value)+" policy "+string(sec.Secrets[n].Policy))
	}
	parts = append(parts, "default policy "+string(sec.Policy), fileSep)
	var ls []string
	for _, l := range leases {
		ls = append(ls, fmt.Sprintf("lease %s/%s/%s", l.Secret, l.Kind, filepath.Base(l.Path)))
	}
	slices.Sort(ls)
	parts = append(parts, ls...)
	for _, f := range state.EnvFiles {
		parts = append(parts, "envfile "+filepath.Base(f.Path))
	}
	if state.Lockdown != nil {
		parts = append(parts, "lockdown")
	}
	for _, n := range slices.Sorted(maps.Keys(state.Uses)) {
		parts = append(parts, fmt.Sprintf("uses %s=%d", n, state.Uses[n].Count))
	}
	return strings.Join(parts, "\n")
}

// fileSep separates what secrets.age holds from what leases.age holds in an abstract.
const fileSep = "--- leases.age"

// perFile reports whether got is, file by file, the old or the new state: two files cannot
// change in one atomic step, so each must be one or the other.
func perFile(got, old, want string) bool {
	g, o, w := strings.SplitN(got, fileSep, 2), strings.SplitN(old, fileSep, 2), strings.SplitN(want, fileSep, 2)
	if len(g) != 2 || len(o) != 2 || len(w) != 2 {
		return got == old || got == want
	}
	for i := range g {
		if g[i] != o[i] && g[i] != w[i] {
			return false
		}
	}
	return true
}

// copyTree copies a store (or a project holding one), modes included.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
}

// storeOf is where a stress case keeps the store inside its project directory root.
func storeOf(root string) string { return filepath.Join(root, "store") }

// seed makes a project directory whose store has had steps run on it (each: stdin, args…)
// and returns the directory, for cases to copy.
func seed(t *testing.T, bin string, steps [][]string) string {
	t.Helper()
	base := filepath.Join(t.TempDir(), "base")
	if err := os.Mkdir(base, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		if r := runIn(bin, storeOf(base), base, s[0], nil, s[1:]...); r.code != 0 {
			t.Fatalf("setup %v: %s", s[1:], r.out)
		}
	}
	return base
}

func temps(dirs ...string) []string {
	var found []string
	for _, d := range dirs {
		m, _ := filepath.Glob(filepath.Join(d, ".*tmp-*"))
		found = append(found, m...)
	}
	return found
}

// lastRelease is the last commit before the store key and the write-ahead log (issue 10):
// the format the conversion reads.
const lastRelease = "8a45cc2"

// buildCommit builds the binary at commit, from a git worktree.
func buildCommit(t *testing.T, commit string) string {
	t.Helper()
	tree := filepath.Join(t.TempDir(), "tree")
	if out, err := exec.Command("git", "worktree", "add", "--detach", tree, commit).CombinedOutput(); err != nil {
		t.Skipf("SKIP: no worktree of %s (a shallow clone?): %v %s", commit, err, out)
	}
	t.Cleanup(func() { exec.Command("git", "worktree", "remove", "--force", tree).Run() })
	bin := filepath.Join(t.TempDir(), "secrets-"+commit)
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = tree
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", commit, err, out)
	}
	return bin
}

var crashPoints = []string{
	"audit.write", "audit.torn", "audit.written", "audit.synced",
	"stage.created:leases.age", "stage.written:leases.age", "stage.synced:leases.age",
	"stage.created:secrets.age", "stage.written:secrets.age", "stage.synced:secrets.age",
	"stage.created:identity.age", "stage.synced:config.json", "storekey.written", "secrets.staged",
	"publish.rename:leases.age", "publish.rename:secrets.age", "publish.dirsync", "publish.done",
	"publish.rename:p.env", "audit.seal", "audit.sealed",
	"stage.synced:killswitch.intent", "publish.rename:killswitch.intent",
}

// TestStressCrash: kill -9 at every crash point of each command, stressRuns times each.
// Every store decrypts to the old or the new state (the new one if the command finished),
// no revoked lease comes back, the next commands succeed, the audit log verifies (a torn
// last line repaired and recorded), and no temp file is left.
func TestStressCrash(t *testing.T) {
	bin := buildTagged(t, "crashpoints")
	type scenario struct {
		name  string
		setup [][]string // each: stdin, args…
		args  []string
		stdin string
		next  [][]string
		// before: the store is set up by the release before the store key and the
		// write-ahead log, so the command is its first write: the conversion.
		before bool
	}
	add := func(name, value string, flags ...string) []string {
		return append([]string{value, "add", name}, flags...)
	}
	scenarios := []scenario{
		{name: "init", args: []string{"init"}, next: [][]string{{"init"}, {"status"}}},
		{name: "add", setup: [][]string{{"", "init"}, add("k", "FAKE-1")}, args: []string{"add", "k2"}, stdin: "FAKE-2", next: [][]string{{"lease", "k"}}},
		{name: "set", setup: [][]string{{"", "init"}, add("k", "FAKE-1")}, args: []string{"set", "k"}, stdin: "FAKE-new", next: [][]string{{"lease", "k"}}},
		{name: "rm", setup: [][]string{{"", "init"}, add("k", "FAKE-1"), add("k2", "FAKE-2"), {"", "lease", "k2"}}, args: []string{"rm", "k2"}, next: [][]string{{"lease", "k"}}},
		{name: "lease", setup: [][]string{{"", "init"}, add("k", "FAKE-1")}, args: []string{"lease", "k"}, next: [][]string{{"lease", "k"}}},
		{name: "revoke", setup: [][]string{{"", "init"}, add("k", "FAKE-1"), {"", "lease", "k"}, {"", "lease", "k"}}, args: []string{"revoke", "--all"}, next: [][]string{{"lease", "k"}}},
		{name: "env", setup: [][]string{{"", "init"}, add("k", "FAKE-1")}, args: []string{"env", "--secret", "k", "--output", "p.env"}, next: [][]string{{"cleanup"}, {"lease", "k"}}},
		{name: "rotate", setup: [][]string{{"", "init"}, add("k", "FAKE-1", "--rotate-via", "echo FAKE-rotated"), {"", "lease", "k"}}, args: []string{"rotate", "k"}, next: [][]string{{"lease", "k"}}},
		{name: "convert", before: true, setup: [][]string{{"", "init"}, add("k", "FAKE-1"), {"", "lease", "k"}}, args: []string{"lease", "k"}, next: [][]string{{"lease", "k"}, {"status"}}},
		{name: "audit-rotate", setup: [][]string{{"", "init"}, add("k", "FAKE-1"), {"", "lease", "k"}}, args: []string{"audit", "--rotate"}, next: [][]string{{"lease", "k"}, {"audit", "--tail", "20"}}},
		{name: "killswitch", setup: [][]string{{"", "init"}, add("k", "FAKE-1"), {"", "lease", "k"}}, args: []string{"killswitch"}, next: [][]string{{"killswitch"}, {"status"}}},
		{name: "policy-set", setup: [][]string{{"", "init"}, add("k", "FAKE-1")}, args: []string{"policy", "set", "k", "--max-uses", "1", "--deliver", "raw"}, next: [][]string{{"policy", "show"}, {"status"}}},
		// A single-use value: whatever the crash, it is either unused or used once with its
		// lease, never handed out twice.
		{name: "single-use", setup: [][]string{{"", "init"}, add("k", "FAKE-1"), {"", "policy", "set", "k", "--max-uses", "1"}}, args: []string{"lease", "k"}, next: [][]string{{"status"}, {"policy", "show"}}},
	}
	runs := stressRuns()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			setupBin := bin
			if sc.before {
				setupBin = buildCommit(t, lastRelease)
			}
			base := seed(t, setupBin, sc.setup)
			old := abstract(storeOf(base))
			ref := filepath.Join(t.TempDir(), "ref")
			copyTree(t, base, ref)
			if r := runIn(bin, storeOf(ref), ref, sc.stdin, nil, sc.args...); r.code != 0 {
				t.Fatalf("reference run: %s", r.out)
			}
			want := abstract(storeOf(ref))
			if want == old && sc.name != "killswitch" && sc.name != "audit-rotate" {
				t.Fatalf("the command changed nothing: %s", want)
			}
			killed := 0
			for _, point := range crashPoints {
				for run := 0; run < runs; run++ {
					w := filepath.Join(t.TempDir(), fmt.Sprintf("w-%s-%d", strings.ReplaceAll(point, ":", "-"), run))
					copyTree(t, base, w)
					r := runIn(bin, storeOf(w), w, sc.stdin, []string{"SECRETS_CRASH_AT=" + point}, sc.args...)
					if r.killed {
						killed++
					} else if r.code != 0 {
						t.Fatalf("%s: exited %d without a crash: %s", point, r.code, r.out)
					}
					got := abstract(storeOf(w))
					switch {
					case !r.killed && got != want:
						t.Fatalf("%s: the command finished but the state is not the new one:\n%s\nwant:\n%s", point, got, want)
					case !perFile(got, old, want):
						t.Fatalf("%s: a file is neither old nor new:\n%s\nold:\n%s\nnew:\n%s", point, got, old, want)
					}
					next := sc.next
					if sc.name == "init" && !r.killed {
						next = [][]string{{"status"}}
					}
					for _, next := range next {
						if r := runIn(bin, storeOf(w), w, "", nil, next...); r.code != 0 {
							t.Fatalf("%s: next command %v failed: %s", point, next, r.out)
						}
					}
					if r := runIn(bin, storeOf(w), w, "", nil, "audit", "--verify"); r.code != 0 {
						t.Fatalf("%s: audit --verify after the crash: %s", point, r.out)
					}
					if tmp := temps(storeOf(w), w); len(tmp) > 0 {
						t.Fatalf("%s: temp files left: %v", point, tmp)
					}
					if run == 0 && !r.killed {
						break // a point this command never reaches: once is enough
					}
				}
			}
			if killed == 0 {
				t.Fatal("no crash point was reached")
			}
			t.Logf("%d crashes, every one recovered", killed)
		})
	}
}

// loadReport is what the load checker found.
type loadReport struct {
	ops, failures int
	losses        []string
	p50, p99      time.Duration
}

// runLoad runs workers processes of ops mixed operations each on one store and checks that
// nothing was lost: every operation that exited 0 has its effect in the store and its entry
// in the audit log, and the log verifies.
func runLoad(t *testing.T, bin string, workers, ops int) loadReport {
	dir := filepath.Join(t.TempDir(), "store")
	cwd := t.TempDir()
	if r := runIn(bin, dir, cwd, "", nil, "init"); r.code != 0 {
		t.Fatal(r.out)
	}
	type outcome struct {
		op, secret, leaseID, value string
		ok                         bool
		took                       time.Duration
	}
	results := make(chan outcome, workers*ops)
	done := make(chan struct{})
	for w := 0; w < workers; w++ {
		go func(w int) {
			defer func() { done <- struct{}{} }()
			name := fmt.Sprintf("w%02d", w)
			var leases []string
			for i := 0; i < ops; i++ {
				var args []string
				stdin, op := "", ""
				switch {
				case i == 0:
					op, args, stdin = "add", []string{"add", name}, fmt.Sprintf("FAKE-%s-0", name)
				case i%7 == 1:
					op, args, stdin = "set", []string{"set", name}, fmt.Sprintf("FAKE-%s-%d", name, i)
				case i%7 == 2 || i%7 == 5:
					op, args = "lease", []string{"lease", name, "--json"}
				case i%7 == 3 && len(leases) > 0:
					op, args = "renew", []string{"renew", leases[len(leases)-1], "--ttl", "2h"}
				case i%7 == 4 && len(leases) > 0:
					op, args = "revoke", []string{"revoke", leases[0]}
				case i%7 == 6:
					op, args = "list", []string{"list"}
				default:
					op, args = "status", []string{"status"}
				}
				start := time.Now()
				r := runIn(bin, dir, cwd, stdin, []string{"SECRETS_CLIENT_ID=" + name}, append([]string{"--lock-timeout", "60s"}, args...)...)
				o := outcome{op: op, secret: name, value: stdin, ok: r.code == 0, took: time.Since(start)}
				switch {
				case op == "lease" && o.ok:
					if i := strings.Index(r.out, `"lease_id": "`); i >= 0 {
						o.leaseID = r.out[i+13 : i+13+32]
						leases = append(leases, o.leaseID)
					}
				case op == "revoke" && o.ok:
					o.leaseID, leases = leases[0], leases[1:]
				case op == "renew":
					o.leaseID = leases[len(leases)-1]
				}
				results <- o
			}
		}(w)
	}
	for w := 0; w < workers; w++ {
		<-done
	}
	close(results)
	var rep loadReport
	var took []time.Duration
	lastValue := map[string]string{}
	active := map[string]bool{}
	okCount := map[string]int{}
	for o := range results {
		rep.ops++
		took = append(took, o.took)
		if !o.ok {
			rep.failures++
			continue
		}
		okCount[o.op]++
		switch o.op {
		case "add", "set":
			lastValue[o.secret] = o.value // one worker per secret: its writes are ordered
		case "lease":
			active[o.leaseID] = true
		case "revoke":
			delete(active, o.leaseID)
		}
	}
	slices.Sort(took)
	rep.p50, rep.p99 = took[len(took)/2], took[len(took)*99/100]

	sec, leases, _, err := inspect(dir)
	if err != nil {
		rep.losses = append(rep.losses, "store unreadable: "+err.Error())
		return rep
	}
	for name, v := range lastValue {
		if s, ok := sec.Secrets[name]; !ok || string(s.Value) != v {
			rep.losses = append(rep.losses, "lost write to "+name)
		}
	}
	have := map[string]bool{}
	for _, l := range leases {
		have[l.ID] = true
	}
	for id := range active {
		if !have[id] {
			rep.losses = append(rep.losses, "lost lease "+id)
		}
	}
	for id := range have {
		if !active[id] {
			rep.losses = append(rep.losses, "lease back from the dead "+id)
		}
	}
	r := runIn(bin, dir, cwd, "", nil, "audit", "--verify")
	if r.code != 0 {
		rep.losses = append(rep.losses, "audit --verify: "+r.out)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "audit.jsonl"))
	for op, event := range map[string]string{"add": "secret_add", "set": "secret_set", "lease": "lease_grant", "renew": "lease_renew"} {
		if n := strings.Count(string(log), `"event":"`+event+`"`); n != okCount[op] {
			rep.losses = append(rep.losses, fmt.Sprintf("%d successful %s, %d %s entries", okCount[op], op, n, event))
		}
	}
	return rep
}

// TestStressLoad: 64 processes x 50 mixed operations lose nothing, with p99 latency (an
// upper bound on the lock wait) under 2 s.
func TestStressLoad(t *testing.T) {
	rep := runLoad(t, buildTagged(t, "stress_plain"), 64, 50)
	t.Logf("%d operations, %d failed, p50 %v, p99 %v", rep.ops, rep.failures, rep.p50, rep.p99)
	if rep.failures > 0 || len(rep.losses) > 0 {
		t.Fatalf("%d failures; lost: %v", rep.failures, rep.losses)
	}
	if rep.p99 > 2*time.Second {
		t.Fatalf("p99 %v, want under 2s", rep.p99)
	}
}

// TestStressLoadNegativeControl: without the lock (a test-only build) the same checker
// must find losses, or it could not be trusted to find them with the lock.
func TestStressLoadNegativeControl(t *testing.T) {
	rep := runLoad(t, buildTagged(t, "nolock"), 16, 25)
	t.Logf("without the lock: %d operations, %d failed, %d losses found, e.g. %v", rep.ops, rep.failures, len(rep.losses), rep.losses[:min(3, len(rep.losses))])
	if len(rep.losses) == 0 {
		t.Fatalf("the checker reported no loss with locking disabled (%d commands failed, which is not the same)", rep.failures)
	}
}

// TestStressFullDisk: with the file size limited (prlimit --fsize) at cut points across
// the size of every write, a command either finishes or fails cleanly (write_failed or
// audit_failed, one line on stderr) with the old state intact, and the store still works.
func TestStressFullDisk(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("prlimit is not installed")
	}
	bin := buildTagged(t, "stress_plain")
	big := strings.Repeat("FAKE-big-value-", 200)
	base := seed(t, bin, [][]string{{"", "init"}, {"FAKE-1", "add", "k"}, {"", "lease", "k"}})
	old := abstract(storeOf(base))
	cases := []struct {
		stdin string
		args  []string
	}{
		{big, []string{"add", "big"}}, {big, []string{"set", "k"}}, {"", []string{"lease", "k"}},
		{"", []string{"env", "--secret", "k", "--output", "p.env"}}, {"", []string{"revoke", "--all"}},
	}
	cuts := []int{0, 1, 64, 200, 400, 600, 800, 1000, 1300, 1600, 2000, 2500, 3000, 4000, 5000, 8000}
	failed := 0
	for _, c := range cases {
		for _, n := range cuts {
			w := filepath.Join(t.TempDir(), "w")
			copyTree(t, base, w)
			cmd := exec.Command("prlimit", append([]string{fmt.Sprintf("--fsize=%d", n), "--", bin}, c.args...)...)
			cmd.Env = []string{"SECRETS_DIR=" + storeOf(w), "HOME=" + w, "PATH=" + os.Getenv("PATH")}
			cmd.Dir, cmd.Stdin = w, strings.NewReader(c.stdin)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			if err != nil {
				failed++
				code := cmd.ProcessState.ExitCode()
				lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
				if (code != exitWriteFail && code != exitAudit) || len(lines) != 2 || !strings.HasPrefix(lines[0], "secrets: error: ") || !strings.HasPrefix(lines[1], "secrets: hint: ") {
					t.Fatalf("%v at fsize %d: exit %d, stderr %q", c.args, n, code, stderr.String())
				}
				if got := abstract(storeOf(w)); got != old {
					t.Fatalf("%v at fsize %d: the old state changed:\n%s\nwant:\n%s", c.args, n, got, old)
				}
			}
			for _, next := range [][]string{{"lease", "k"}, {"audit", "--verify"}, {"cleanup"}} {
				if r := runIn(bin, storeOf(w), w, "", nil, next...); r.code != 0 {
					t.Fatalf("%v at fsize %d: then %v: %s", c.args, n, next, r.out)
				}
			}
			if tmp := temps(storeOf(w), w); len(tmp) > 0 {
				t.Fatalf("%v at fsize %d: temp files left: %v", c.args, n, tmp)
			}
		}
	}
	if failed == 0 {
		t.Fatal("no cut point made a write fail")
	}
	t.Logf("%d of %d limited runs failed, each cleanly", failed, len(cases)*len(cuts))
}

// fanOut runs cases 0..n-1 on one worker a core, each worker in its own copy of the tree
// at base, and fails the test with the first case that fails.
func fanOut(t *testing.T, base string, n int, do func(w string, i int) error) {
	t.Helper()
	workers := runtime.NumCPU()
	var next atomic.Int64
	var failed atomic.Bool
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for k := range workers {
		w := filepath.Join(t.TempDir(), fmt.Sprintf("w%d", k))
		copyTree(t, base, w)
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := do(w, i); err != nil {
					failed.Store(true)
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// snapshot is every file in dir with its mode and bytes, for "no file modified".
func snapshot(dir string) map[string]string {
	m := map[string]string{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		fi, _ := e.Info()
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		m[e.Name()] = fi.Mode().String() + " " + string(b)
	}
	return m
}

// TestStressBitFlips: every single-bit flip, every truncation and an appended byte of
// secrets.age and leases.age make `secrets lease` (the built binary) refuse with
// decrypt_failed or store_corrupt, with no file modified and no plaintext in its output.
func TestStressBitFlips(t *testing.T) {
	bin := buildTagged(t, "stress_plain")
	base := seed(t, bin, [][]string{{"", "init"}, {"FAKE-flip-value-0001", "add", "k"}, {"", "lease", "k"}})
	type damage struct {
		file, what string
		bad        func() []byte
	}
	var cases []damage
	good := map[string][]byte{}
	for _, name := range []string{store.SecretsFile, store.LeasesFile} {
		b, err := os.ReadFile(filepath.Join(storeOf(base), name))
		if err != nil {
			t.Fatal(err)
		}
		good[name] = b
		for bit := range len(b) * 8 {
			cases = append(cases, damage{name, fmt.Sprintf("bit %d flipped", bit), func() []byte {
				bad := slices.Clone(b)
				bad[bit/8] ^= 1 << (bit % 8)
				return bad
			}})
		}
		for n := range len(b) {
			cases = append(cases, damage{name, fmt.Sprintf("cut to %d bytes", n), func() []byte { return b[:n] }})
		}
		cases = append(cases, damage{name, "with a byte appended", func() []byte { return append(slices.Clone(b), 'x') }})
	}
	leak := regexp.MustCompile(`FAKE-flip|lease_01`)
	fanOut(t, base, len(cases), func(w string, i int) error {
		c := cases[i]
		for name, b := range good {
			if name == c.file {
				b = c.bad()
			}
			if err := os.WriteFile(filepath.Join(storeOf(w), name), b, 0o600); err != nil {
				return err
			}
		}
		before := snapshot(storeOf(w))
		r := runIn(bin, storeOf(w), w, "", nil, "lease", "k", "--json")
		switch {
		case r.code != exitStore || !(strings.Contains(r.out, `"code": "decrypt_failed"`) || strings.Contains(r.out, `"code": "store_corrupt"`)):
			return fmt.Errorf("%s %s: exit %d\n%s", c.file, c.what, r.code, r.out)
		case leak.MatchString(r.out):
			return fmt.Errorf("%s %s: plaintext in the output:\n%s", c.file, c.what, r.out)
		case !maps.Equal(before, snapshot(storeOf(w))):
			return fmt.Errorf("%s %s: a file changed", c.file, c.what)
		}
		return nil
	})
	if r := runIn(bin, storeOf(base), base, "", nil, "lease", "k"); r.code != 0 {
		t.Fatal(r.out)
	}
	t.Logf("%d damaged files refused by the binary", len(cases))
}

// TestStressAuditTamper: on a 1,000-line log, an edited byte in each line, each line
// deleted, each adjacent pair swapped, 1 to 50 tail lines cut, a forged appended line and a
// full re-chain without the key are each detected by `secrets audit --verify` (the built
// binary) at the first bad seq, and make `secrets lease` refuse with audit_tampered,
// releasing nothing and changing no file.
func TestStressAuditTamper(t *testing.T) {
	bin := buildTagged(t, "stress_plain")
	base := seed(t, bin, [][]string{{"", "init"}, {"FAKE-tamper-value-0001", "add", "k"}})
	dir := storeOf(base)
	if err := growLog(dir, 1000, audit.Entry{Event: "lease_grant", Secret: "k", ClientID: "stress", OK: true, Detail: "filler"}); err != nil {
		t.Fatal(err)
	}
	goodLog, _ := os.ReadFile(filepath.Join(dir, store.AuditFile))
	goodLeases, _ := os.ReadFile(filepath.Join(dir, store.LeasesFile))
	lines := strings.SplitAfter(strings.TrimSuffix(string(goodLog), "\n"), "\n")
	lines[len(lines)-1] += "\n"
	if len(lines) != 1000 {
		t.Fatalf("%d lines", len(lines))
	}
	type tamper struct {
		what  string
		lines func() []string
		seq   int
	}
	var cases []tamper
	for i := range lines {
		cases = append(cases, tamper{fmt.Sprintf("line %d edited", i+1), func() []string {
			ls := slices.Clone(lines)
			b := []byte(ls[i])
			b[len(b)/2] ^= 0x01
			ls[i] = string(b)
			return ls
		}, i + 1})
		cases = append(cases, tamper{fmt.Sprintf("line %d deleted", i+1), func() []string { return slices.Delete(slices.Clone(lines), i, i+1) }, i + 1})
		if i+1 < len(lines) {
			cases = append(cases, tamper{fmt.Sprintf("lines %d,%d swapped", i+1, i+2), func() []string {
				ls := slices.Clone(lines)
				ls[i], ls[i+1] = ls[i+1], ls[i]
				return ls
			}, i + 1})
		}
	}
	for n := 1; n <= 50; n++ {
		cases = append(cases, tamper{fmt.Sprintf("%d tail lines cut", n), func() []string { return lines[:len(lines)-n] }, len(lines) - n + 1})
	}
	forged := strings.Replace(lines[len(lines)-1], `"seq":1000`, `"seq":1001`, 1)
	cases = append(cases, tamper{"a forged line appended", func() []string { return append(slices.Clone(lines), forged) }, 1001})
	other := audit.New(filepath.Join(t.TempDir(), "x.jsonl"), audit.Keys{Current: bytes.Repeat([]byte{9}, 32)}, time.Now)
	var h audit.Head
	for range 1000 {
		var err error
		if h, err = other.Append(h, audit.Entry{Event: "lease_grant"}); err != nil {
			t.Fatal(err)
		}
	}
	rechained, _ := os.ReadFile(other.Path())
	cases = append(cases, tamper{"re-chained without the key", func() []string { return strings.SplitAfter(string(rechained), "\n") }, 1})
	fanOut(t, base, len(cases), func(w string, i int) error {
		c := cases[i]
		sd := storeOf(w)
		if err := os.WriteFile(filepath.Join(sd, store.AuditFile), []byte(strings.Join(c.lines(), "")), 0o600); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(sd, store.LeasesFile), goodLeases, 0o600); err != nil {
			return err
		}
		// lease first: audit --verify records what it finds, and lease must find it alone.
		before := snapshot(sd)
		r := runIn(bin, sd, w, "", nil, "lease", "k", "--json")
		switch {
		case r.code != exitAudit || !strings.Contains(r.out, `"code": "audit_tampered"`):
			return fmt.Errorf("%s: lease: exit %d, want audit_tampered:\n%s", c.what, r.code, r.out)
		case strings.Contains(r.out, "FAKE-tamper"):
			return fmt.Errorf("%s: lease released the value", c.what)
		case !maps.Equal(before, snapshot(sd)):
			return fmt.Errorf("%s: lease changed a file", c.what)
		}
		r = runIn(bin, sd, w, "", nil, "audit", "--verify")
		if r.code != exitAudit || !strings.Contains(r.out, fmt.Sprintf("tampered at seq %d:", c.seq)) {
			return fmt.Errorf("%s: exit %d, want seq %d:\n%s", c.what, r.code, c.seq, r.out)
		}
		return nil
	})
	if r := runIn(bin, dir, base, "", nil, "audit", "--verify"); r.code != 0 {
		t.Fatalf("the untouched log: %s", r.out)
	}
	t.Logf("%d tampered logs detected by the binary, by audit --verify and by lease", len(cases))
}
