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
	"sync"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/store"
)

// Whole-process benchmarks: they exec a release build of the binary (static, as the
// Makefile builds it) and compare it with a baseline measured in the same loop, so the
// ratio holds on any machine. Run them with `make bench`; BENCHMARKS.md keeps the results.

var release struct {
	once sync.Once
	path string
	err  error
}

// releaseBinary builds ./secrets as `make build` does, once per test process.
func releaseBinary(b *testing.B) string {
	release.once.Do(func() {
		dir, err := os.MkdirTemp("", "secrets-bench-")
		if err != nil {
			release.err = err
			return
		}
		release.path = filepath.Join(dir, "secrets")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", release.path, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			release.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if release.err != nil {
		b.Fatal(release.err)
	}
	return release.path
}

// benchStore makes a store with one secret and n active leases.
func benchStore(b *testing.B, bin string, leases int) string {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "store")
	sh(b, bin, dir, "", "init")
	sh(b, bin, dir, "FAKE-bench-value-0000000000000000", "add", "k")
	for i := 0; i < leases; i++ {
		sh(b, bin, dir, "", "lease", "k", "--ttl", "24h")
	}
	return dir
}

func sh(b *testing.B, bin, dir, stdin string, args ...string) {
	b.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "SECRETS_DIR="+dir)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%v: %v\n%s", args, err, out)
	}
}

// timed runs a prepared command and returns its wall time.
func timed(b *testing.B, name string, args []string, env []string) time.Duration {
	cmd := exec.Command(name, args...)
	cmd.Env = env
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return time.Since(start)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// compare runs a and base alternately b.N times and reports both medians and a/base.
func compare(b *testing.B, a, base func() time.Duration) {
	var as, bs []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		as = append(as, a())
		bs = append(bs, base())
	}
	b.StopTimer()
	ma, mb := median(as), median(bs)
	b.ReportMetric(float64(ma.Microseconds())/1000, "ms/op")
	b.ReportMetric(float64(mb.Microseconds())/1000, "baseline-ms/op")
	b.ReportMetric(float64(ma)/float64(mb), "ratio")
}

// BenchmarkLeaseVsAge: `secrets lease k` against `age -d -i identity.age secrets.age`.
func BenchmarkLeaseVsAge(b *testing.B) {
	if _, err := exec.LookPath("age"); err != nil {
		b.Skip("the age CLI is not installed")
	}
	bin := releaseBinary(b)
	dir := benchStore(b, bin, 10)
	env := append(os.Environ(), "SECRETS_DIR="+dir)
	compare(b,
		func() time.Duration { return timed(b, bin, []string{"lease", "k", "--ttl", "1m"}, env) },
		func() time.Duration {
			return timed(b, "age", []string{"-d", "-i", filepath.Join(dir, "identity.age"), filepath.Join(dir, "secrets.age")}, env)
		})
}

// BenchmarkLeaseVsVersion: `secrets lease k` against `secrets version`, which starts the
// same binary and does nothing: what a lease's own work adds to start-up.
func BenchmarkLeaseVsVersion(b *testing.B) {
	bin := releaseBinary(b)
	dir := benchStore(b, bin, 10)
	env := append(os.Environ(), "SECRETS_DIR="+dir)
	compare(b,
		func() time.Duration { return timed(b, bin, []string{"lease", "k", "--ttl", "1m"}, env) },
		func() time.Duration { return timed(b, bin, []string{"version"}, env) })
}

// BenchmarkExecVsLease: `secrets exec --secret k -- true` against `secrets lease k`: what
// supervising a command (its start, the second transaction that ends its lease) adds.
func BenchmarkExecVsLease(b *testing.B) {
	bin, env, truePath := execBench(b)
	compare(b,
		func() time.Duration { return timed(b, bin, []string{"exec", "--secret", "k", "--", truePath}, env) },
		func() time.Duration { return timed(b, bin, []string{"lease", "k", "--ttl", "1m"}, env) })
}

// BenchmarkLeaseWithPolicy: a lease of a secret whose policy names clients, a max_ttl,
// the deliveries and a use count (the counter is one more entry in the lease's commit)
// against a lease of a secret with no rule, alternated: what the policy check costs.
func BenchmarkLeaseWithPolicy(b *testing.B) {
	bin := releaseBinary(b)
	plain, ruled := benchStore(b, bin, 10), benchStore(b, bin, 10)
	cmd := exec.Command(bin, "policy", "set", "k", "--clients", "bench-*", "--max-ttl", "1h", "--deliver", "raw,exec", "--max-uses", "100000000")
	cmd.Env = append(os.Environ(), "SECRETS_DIR="+ruled)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("policy set: %v\n%s", err, out)
	}
	lease := func(dir string) func() time.Duration {
		env := append(os.Environ(), "SECRETS_DIR="+dir)
		return func() time.Duration {
			return timed(b, bin, []string{"lease", "k", "--ttl", "1m", "--client-id", "bench-1"}, env)
		}
	}
	compare(b, lease(ruled), lease(plain))
}

// BenchmarkLeaseTail: 2,000 leases in a row on one store, their leases kept (so the
// snapshot grows to 2,000 leases and is compacted along the way): the worst single lease
// (p99, and the maximum) against the median.
func BenchmarkLeaseTail(b *testing.B) {
	bin := releaseBinary(b)
	for n := 0; n < b.N; n++ {
		dir := benchStore(b, bin, 10)
		env := append(os.Environ(), "SECRETS_DIR="+dir)
		var all []time.Duration
		for i := 0; i < 2000; i++ {
			all = append(all, timed(b, bin, []string{"lease", "k", "--ttl", "24h"}, env))
		}
		slices.Sort(all)
		med, p99 := all[len(all)/2], all[len(all)*99/100]
		b.ReportMetric(float64(med.Microseconds())/1000, "median-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(all[len(all)-1].Microseconds())/1000, "max-ms")
		b.ReportMetric(float64(p99)/float64(med), "p99/median")
	}
}

// BenchmarkLeaseWithActiveLeases: a lease with 1,000 (and 10,000) active leases against one with 10.
func BenchmarkLeaseWithActiveLeases(b *testing.B) {
	bin := releaseBinary(b)
	small := benchStore(b, bin, 10)
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			big := benchStore(b, bin, 0)
			if err := seedLeases(big, n); err != nil {
				b.Fatal(err)
			}
			compare(b,
				func() time.Duration {
					return timed(b, bin, []string{"lease", "k", "--ttl", "1m"}, append(os.Environ(), "SECRETS_DIR="+big))
				},
				func() time.Duration {
					return timed(b, bin, []string{"lease", "k", "--ttl", "1m"}, append(os.Environ(), "SECRETS_DIR="+small))
				})
		})
	}
}

var logStores struct {
	once       sync.Once
	small, big string
}

// auditStores returns two stores with a 100-line and a 1,000,000-line audit log, made once
// per run (a million lines take seconds to write) and shared by the benchmarks that only
// read them.
func auditStores(b *testing.B, bin string) (small, big string) {
	logStores.once.Do(func() {
		dir, err := os.MkdirTemp("", "secrets-bench-logs-")
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range []struct {
			dst   *string
			lines int
		}{{&logStores.small, 100}, {&logStores.big, 1_000_000}} {
			*s.dst = filepath.Join(dir, fmt.Sprint(s.lines))
			sh(b, bin, *s.dst, "", "init")
			sh(b, bin, *s.dst, "FAKE-bench-value-0000000000000000", "add", "k")
			if err := growLog(*s.dst, s.lines, audit.Entry{Event: "lease_grant", Secret: "k", LeaseID: "lease_01JBENCH0000000000000000000", ClientID: "bench", OK: true, Detail: "ttl 1h"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	return logStores.small, logStores.big
}

// BenchmarkAuditTail: `audit --tail 20` on a 1,000,000-line log against a 100-line log.
func BenchmarkAuditTail(b *testing.B) {
	bin := releaseBinary(b)
	small, big := auditStores(b, bin)
	compare(b,
		func() time.Duration {
			return timed(b, bin, []string{"audit", "--tail", "20"}, append(os.Environ(), "SECRETS_DIR="+big))
		},
		func() time.Duration {
			return timed(b, bin, []string{"audit", "--tail", "20"}, append(os.Environ(), "SECRETS_DIR="+small))
		})
}

// BenchmarkStartup: `secrets version` against an empty static Go program, so a start-up
// regression (package-level work, a heavy dependency) shows.
func BenchmarkStartup(b *testing.B) {
	bin := releaseBinary(b)
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\nfunc main() {}\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module empty\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	cmd := exec.Command("go", "build", "-o", empty, ".")
	cmd.Dir, cmd.Env = dir, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	env := os.Environ()
	compare(b,
		func() time.Duration { return timed(b, bin, []string{"version"}, env) },
		func() time.Duration { return timed(b, empty, nil, env) })
}

// BenchmarkExecVsTrue: `secrets exec --secret k -- true` against `true`: what leasing,
// supervising, redacting and revoking add to a command.
func BenchmarkExecVsTrue(b *testing.B) {
	bin, env, truePath := execBench(b)
	compare(b,
		func() time.Duration { return timed(b, bin, []string{"exec", "--secret", "k", "--", truePath}, env) },
		func() time.Duration { return timed(b, truePath, nil, env) })
}

// execBench is what the exec benchmarks share: the release binary, a store of one
// secret with 10 leases, its environment, and true(1).
func execBench(b *testing.B) (bin string, env []string, truePath string) {
	bin = releaseBinary(b)
	env = append(os.Environ(), "SECRETS_DIR="+benchStore(b, bin, 10))
	truePath, err := exec.LookPath("true")
	if err != nil {
		b.Skip("no true(1)")
	}
	return bin, env, truePath
}

// BenchmarkExecInjectVsSecret: `secrets exec --inject k=VAR@localhost -- true` against
// `secrets exec --secret k=VAR -- true`: what starting the proxy, its CA and the child's
// trust bundle adds to an exec.
func BenchmarkExecInjectVsSecret(b *testing.B) {
	bin, env, truePath := execBench(b)
	compare(b,
		func() time.Duration {
			return timed(b, bin, []string{"exec", "--inject", "k=VAR@localhost", "--", truePath}, env)
		},
		func() time.Duration { return timed(b, bin, []string{"exec", "--secret", "k=VAR", "--", truePath}, env) })
}

// preMCP is the last commit before secrets mcp, for BenchmarkStartupVsBeforeMCP.
const preMCP = "75ef6d1"

// preInject is the last commit before injection, for BenchmarkStartupVsBeforeInject.
const preInject = "d606080"

// BenchmarkStartupVsBeforeInject: `secrets version` at HEAD against the same command
// built from the commit before injection landed: the proxy must add no start-up work
// (DESIGN.md section 9).
func BenchmarkStartupVsBeforeInject(b *testing.B) {
	startupVs(b, preInject)
}

// BenchmarkStartupVsBeforeMCP: `secrets version` at HEAD against the same command built
// from the commit before the MCP server landed, showing what the MCP code costs every
// other command at start-up.
func BenchmarkStartupVsBeforeMCP(b *testing.B) {
	startupVs(b, preMCP)
}

// startupVs compares `secrets version` at HEAD with the same command built at commit.
func startupVs(b *testing.B, commit string) {
	bin := releaseBinary(b)
	tree := filepath.Join(b.TempDir(), "tree")
	add := exec.Command("git", "worktree", "add", "--detach", tree, commit)
	if out, err := add.CombinedOutput(); err != nil {
		b.Skipf("no worktree of %s (a shallow clone?): %v %s", commit, err, out)
	}
	defer exec.Command("git", "worktree", "remove", "--force", tree).Run()
	old := filepath.Join(b.TempDir(), "secrets-"+commit)
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", old, ".")
	build.Dir, build.Env = tree, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build %s: %v\n%s", commit, err, out)
	}
	env := os.Environ()
	compare(b,
		func() time.Duration { return timed(b, bin, []string{"version"}, env) },
		func() time.Duration { return timed(b, old, []string{"version"}, env) })
}

// The benchmarks below measure once per run (make bench gives them -benchtime 1x): each
// is a whole experiment that reports its own figures.

// BenchmarkConcurrentLeases: 8 clients x 100 leases each on one store; aggregate leases
// per second and the p50 and p99 of one lease, against one client alone.
func BenchmarkConcurrentLeases(b *testing.B) {
	bin := releaseBinary(b)
	dir := benchStore(b, bin, 0)
	env := append(os.Environ(), "SECRETS_DIR="+dir)
	var alone []time.Duration
	for i := 0; i < 100; i++ {
		alone = append(alone, timed(b, bin, []string{"lease", "k", "--ttl", "1m"}, env))
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		var mu sync.Mutex
		var all []time.Duration
		var wg sync.WaitGroup
		start := time.Now()
		for c := 0; c < 8; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 100; i++ {
					d := timed(b, bin, []string{"lease", "k", "--ttl", "1m"}, env)
					mu.Lock()
					all = append(all, d)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		total := time.Since(start)
		slices.Sort(all)
		b.ReportMetric(800/total.Seconds(), "leases/s")
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(median(alone).Microseconds())/1000, "alone-ms")
		b.ReportMetric((800/total.Seconds())*median(alone).Seconds(), "vs-1")
	}
}

// BenchmarkLeaseManySecrets: a lease from a store of 10,000 secrets against one of 10.
func BenchmarkLeaseManySecrets(b *testing.B) {
	bin := releaseBinary(b)
	mk := func(n int) string {
		dir := benchStore(b, bin, 0)
		s, err := store.Open(context.Background(), store.Options{Dir: dir, LockTimeout: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		sec, _ := s.LoadSecrets()
		for i := 1; i < n; i++ {
			sec.Add(fmt.Sprintf("secret_%05d", i), []byte(fmt.Sprintf("FAKE-bench-%05d-0123456789abcdef", i)), "", time.Now())
		}
		if err := s.Save(store.Commit{Secrets: sec}, nil); err != nil {
			b.Fatal(err)
		}
		s.Close()
		return dir
	}
	big, small := mk(10000), mk(10)
	compare(b,
		func() time.Duration {
			return timed(b, bin, []string{"lease", "k", "--ttl", "1m"}, append(os.Environ(), "SECRETS_DIR="+big))
		},
		func() time.Duration {
			return timed(b, bin, []string{"lease", "k", "--ttl", "1m"}, append(os.Environ(), "SECRETS_DIR="+small))
		})
}

// BenchmarkVerifyAndMemory: audit --verify on 1,000,000 lines against 100 lines, and the
// peak memory (max RSS) of that verify and of a lease.
func BenchmarkVerifyAndMemory(b *testing.B) {
	bin := releaseBinary(b)
	small, big := auditStores(b, bin)
	// A child's ru_maxrss starts at its parent's size at fork (this test binary's), so
	// peak memory is read through GNU time, a small parent, when it is installed.
	gnuTime, _ := exec.LookPath("time")
	if _, err := os.Stat("/usr/bin/time"); err == nil {
		gnuTime = "/usr/bin/time"
	}
	rss := func(dir string, args ...string) (time.Duration, int64) {
		cmd := exec.Command(bin, args...)
		if gnuTime != "" {
			cmd = exec.Command(gnuTime, append([]string{"-f", "%M", bin}, args...)...)
		}
		cmd.Env = append(os.Environ(), "SECRETS_DIR="+dir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("%v: %v\n%s", args, err, stderr.String())
		}
		took := time.Since(start)
		lines := strings.Fields(stderr.String())
		kib, err := strconv.ParseInt(lines[len(lines)-1], 10, 64)
		if gnuTime == "" || err != nil {
			kib = -1 // unknown: install GNU time (Debian package time) for this figure
		}
		return took, kib
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		var bigT, smallT []time.Duration
		var verifyRSS int64
		for i := 0; i < 5; i++ {
			d, r := rss(big, "audit", "--verify")
			bigT, verifyRSS = append(bigT, d), max(verifyRSS, r)
			d, _ = rss(small, "audit", "--verify")
			smallT = append(smallT, d)
		}
		_, leaseRSS := rss(small, "lease", "k")
		b.ReportMetric(float64(median(bigT).Microseconds())/1000, "verify-1M-ms")
		b.ReportMetric(float64(median(smallT).Microseconds())/1000, "verify-100-ms")
		b.ReportMetric(float64(median(bigT))/float64(median(smallT)), "ratio")
		b.ReportMetric(float64(verifyRSS)/1024, "verify-1M-maxrss-MiB")
		b.ReportMetric(float64(leaseRSS)/1024, "lease-maxrss-MiB")
	}
}

// BenchmarkAgainstBase compares this tree's release binary with another build, named by
// $SECRETS_BENCH_BASE (for example the commit before a change, built with `make build`
// in a worktree), each on a store it made itself: a lease alone and an exec, alternated,
// and 8 parallel clients, alternated round by round. It is how a change shows it made nothing
// slower; it is skipped when no base is named.
func BenchmarkAgainstBase(b *testing.B) {
	base := os.Getenv("SECRETS_BENCH_BASE")
	if base == "" {
		b.Skip("set SECRETS_BENCH_BASE to a secrets binary to compare with")
	}
	bin := releaseBinary(b)
	ours, theirs := benchStore(b, bin, 10), benchStore(b, base, 10)
	lease := func(bin, dir string) func() time.Duration {
		env := append(os.Environ(), "SECRETS_DIR="+dir)
		return func() time.Duration { return timed(b, bin, []string{"lease", "k", "--ttl", "1m"}, env) }
	}
	b.Run("lease", func(b *testing.B) { compare(b, lease(bin, ours), lease(base, theirs)) })
	// exec of true with one secret, its output redacted: what the supervisor and the
	// redactor's set-up cost.
	if truePath, err := exec.LookPath("true"); err == nil {
		run := func(bin, dir string) func() time.Duration {
			env := append(os.Environ(), "SECRETS_DIR="+dir)
			return func() time.Duration { return timed(b, bin, []string{"exec", "--secret", "k", "--", truePath}, env) }
		}
		b.Run("exec", func(b *testing.B) { compare(b, run(bin, ours), run(base, theirs)) })
	}
	b.Run("parallel8", func(b *testing.B) {
		// Each round is 8 clients x 25 leases; the time is the round's, per lease.
		round := func(one func() time.Duration) func() time.Duration {
			return func() time.Duration {
				var wg sync.WaitGroup
				start := time.Now()
				for c := 0; c < 8; c++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; i < 25; i++ {
							one()
						}
					}()
				}
				wg.Wait()
				return time.Since(start) / 200
			}
		}
		compare(b, round(lease(bin, ours)), round(lease(base, theirs)))
	})
}
