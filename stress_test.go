//go:build stress

// The reliability matrix of issue 6, run by `make stress` (go test -tags stress). Each
// case runs the built binary against a fresh temporary store.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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
	st, err := store.Open(context.Background(), store.Options{Dir: dir, LockTimeout: 5 * time.Second})
	if err != nil {
		return "unreadable: " + err.Error()
	}
	defer st.Close()
	sec, err := st.LoadSecrets()
	if err != nil {
		return "unreadable: " + err.Error()
	}
	state, err := st.LoadState()
	if err != nil {
		return "unreadable: " + err.Error()
	}
	var parts []string
	for _, n := range sec.Names() {
		parts = append(parts, "secret "+n+"="+string(sec.Secrets[n].Value))
	}
	parts = append(parts, fileSep)
	var ls []string
	for _, l := range state.Leases {
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

func temps(dirs ...string) []string {
	var found []string
	for _, d := range dirs {
		m, _ := filepath.Glob(filepath.Join(d, ".*tmp-*"))
		found = append(found, m...)
	}
	return found
}

var crashPoints = []string{
	"audit.write", "audit.torn", "audit.written", "audit.synced",
	"stage.created:leases.age", "stage.written:leases.age", "stage.synced:leases.age",
	"stage.created:secrets.age", "stage.written:secrets.age", "stage.synced:secrets.age",
	"stage.created:identity.age", "stage.synced:config.json",
	"publish.rename:leases.age", "publish.rename:secrets.age", "publish.dirsync", "publish.done",
	"envfile.rename",
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
		{name: "killswitch", setup: [][]string{{"", "init"}, add("k", "FAKE-1"), {"", "lease", "k"}}, args: []string{"killswitch"}, next: [][]string{{"killswitch"}, {"status"}}},
	}
	runs := stressRuns()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			base := filepath.Join(t.TempDir(), "base")
			os.Mkdir(base, 0o700)
			storeOf := func(root string) string { return filepath.Join(root, "store") }
			for _, s := range sc.setup {
				if r := runIn(bin, storeOf(base), base, s[0], nil, s[1:]...); r.code != 0 {
					t.Fatalf("setup %v: %s", s[1:], r.out)
				}
			}
			old := abstract(storeOf(base))
			ref := filepath.Join(t.TempDir(), "ref")
			copyTree(t, base, ref)
			if r := runIn(bin, storeOf(ref), ref, sc.stdin, nil, sc.args...); r.code != 0 {
				t.Fatalf("reference run: %s", r.out)
			}
			want := abstract(storeOf(ref))
			if want == old && sc.name != "killswitch" {
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
