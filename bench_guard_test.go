//go:build linux

package main

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/guard"
)

// BenchmarkGuardedLease: a lease by an agent user of a guarded store (the caller side,
// sudo, the owner side) against a lease of a plain store by the same user, alternated.
// It pays sudo and a second start-up; the target is 2.5x. Root only: it creates users and
// a sudoers rule, and removes them.
func BenchmarkGuardedLease(b *testing.B) {
	guarded, plain := guardedBench(b)
	compare(b, guarded("lease", "k", "--ttl", "1m"), plain("lease", "k", "--ttl", "1m"))
}

// BenchmarkGuardedExec: exec of true by an agent user of a guarded store (the owner side
// stays for the command's life, holding its lease) against exec in a plain store by the
// same user, alternated. No target: what the hold costs.
func BenchmarkGuardedExec(b *testing.B) {
	guarded, plain := guardedBench(b)
	compare(b, guarded("exec", "--secret", "k", "--", "true"), plain("exec", "--secret", "k", "--", "true"))
}

// guardedBench sets up a guarded store holding k, with an agent user that also has a
// plain store holding k, and returns how to time a command of the agent user against
// each.
func guardedBench(b *testing.B) (guarded, plainStore func(args ...string) func() time.Duration) {
	if os.Geteuid() != 0 {
		b.Skip("SKIP: a guarded store needs root to set up")
	}
	if _, err := os.Stat(guard.ConfigPath); err == nil {
		b.Skipf("SKIP: %s exists; the benchmark would replace it", guard.ConfigPath)
	}
	bin := releaseBinary(b)
	const agent, owner = "secrets-b-agent", "_secrets_b"
	exec.Command("userdel", "-r", agent).Run()
	if out, err := exec.Command("useradd", "--create-home", "--shell", "/bin/sh", agent).CombinedOutput(); err != nil {
		b.Fatalf("useradd: %v %s", err, out)
	}
	dir := "/var/lib/secrets-bench"
	b.Cleanup(func() {
		exec.Command(bin, "guard", "--remove", "--delete-store", "--yes").Run()
		exec.Command("userdel", owner).Run()
		exec.Command("userdel", "-r", agent).Run()
	})
	rootEnv := []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/root"}
	run := func(stdin string, args ...string) {
		cmd := exec.Command(bin, args...)
		cmd.Env, cmd.Stdin = rootEnv, nil
		if stdin != "" {
			cmd.Stdin = stringsReader(stdin)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	run("", "guard", "--allow", agent, "--user", owner, "--dir", dir)
	run("FAKE-bench-value-0000000000000000", "add", "k")
	u, _ := user.Lookup(agent)
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// The plain store: the agent user's own, made by it.
	plain := filepath.Join(u.HomeDir, "plain")
	asAgent := func(env []string, args ...string) func() time.Duration {
		return func() time.Duration {
			cmd := exec.Command(guard.BinaryPath, args...)
			cmd.Env, cmd.Dir = env, u.HomeDir
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
			start := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v as the agent: %v\n%s", args, err, out)
			}
			return time.Since(start)
		}
	}
	env := []string{"PATH=/usr/bin:/bin", "HOME=" + u.HomeDir}
	plainEnv := append(env, "SECRETS_DIR="+plain)
	asAgent(plainEnv, "init")()
	cmd := exec.Command(guard.BinaryPath, "add", "k")
	cmd.Env, cmd.Stdin = plainEnv, stringsReader("FAKE-bench-value-0000000000000000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("add: %v %s", err, out)
	}
	return func(args ...string) func() time.Duration { return asAgent(env, args...) },
		func(args ...string) func() time.Duration { return asAgent(plainEnv, args...) }
}

func stringsReader(s string) *os.File {
	r, w, _ := os.Pipe()
	go func() { w.WriteString(s); w.Close() }()
	return r
}
