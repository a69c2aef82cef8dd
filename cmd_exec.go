package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/envfile"
	"github.com/agent-secrets/secrets/killswitch"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/redact"
	"github.com/urfave/cli/v3"
	"golang.org/x/sys/unix"
)

func (a *app) cmdExec() *cli.Command {
	return &cli.Command{
		Name:      "exec",
		Usage:     "Run a command with the project's secrets in its environment, never on disk, its output redacted",
		UsageText: "secrets exec [--file .secrets.json | --secret NAME[=ENV_VAR] …] [--ttl D] [--pristine] [--keep VAR,…] [--no-redact] [--grace 10s] -- CMD [ARGS…]",
		Flags: append(mappingFlags(),
			&cli.BoolFlag{Name: "pristine", Usage: "give the command only the secrets plus PATH, HOME, USER, LANG, TERM and --keep"},
			&cli.StringSliceFlag{Name: "keep", Usage: "with --pristine, also pass these variables"},
			&cli.BoolFlag{Name: "no-redact", Usage: "connect the command straight to our stdio (terminal programs keep their tty)"},
			&cli.StringFlag{Name: "grace", Value: "10s", Usage: "after a lease ends, how long the command has between SIGTERM and SIGKILL"},
		),
		Action: a.act(a.exec),
	}
}

// forwarded are the signals the supervisor passes on to the command's process group.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// Exit codes of exec once the command has run: the command's own, or 128+N when a
// signal N ended it. A command that could not be started gives 127.
const exitNotStarted = 127

func (a *app) exec(ctx context.Context, c *cli.Command) (*reply, error) {
	argv := c.Args().Slice()
	if len(argv) == 0 {
		return nil, usagef("give the command to run after --: secrets exec -- CMD [ARGS…]")
	}
	grace, err := lease.ParseDuration(c.String("grace"))
	if err != nil || grace < 0 {
		return nil, usagef("--grace: want a duration such as 10s, got %q", c.String("grace"))
	}
	ms, source, fileClient, err := a.mappings(c)
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	start, err := killswitch.StartTime(self)
	if err != nil {
		return nil, fmt.Errorf("read own start time: %w", err)
	}
	// Listen before any lease exists: a revocation signal's default action would kill us.
	// Once we stop listening we ignore it, for the same reason.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, append(forwarded, killswitch.SigRevoke)...)
	defer func() {
		signal.Ignore(killswitch.SigRevoke)
		signal.Stop(sigs)
	}()
	s, err := a.open(ctx, c, modeWrite|withSecrets)
	if err != nil {
		return nil, err
	}
	var leases []lease.Lease
	var vars []envfile.Var
	var canaries []string
	canaryAction := s.st.Config().CanaryAction
	prog := filepath.Base(argv[0])
	err = s.finish(func() error {
		if err := s.projectClient(c, fileClient); err != nil {
			return err
		}
		denied := audit.Entry{Event: "exec_denied", Detail: prog}
		if err := s.refuseInLockdown(denied); err != nil {
			return err
		}
		leases, vars, err = s.grantMapped(source, ms, c.String("ttl"), lease.Request{Kind: lease.KindExec, PID: self, PIDStart: start})
		if err != nil {
			return s.deny(denied, err)
		}
		for _, l := range leases {
			s.record(audit.Entry{Event: "lease_grant", Secret: l.Secret, LeaseID: l.ID, OK: true, Detail: "exec " + prog + ", ttl " + l.TTL})
		}
		canaries = s.canaries(leases)
		return nil
	}())
	if err != nil {
		return nil, err
	}
	if len(canaries) > 0 {
		// The command starts as usual; the killswitch has ended its leases, and the queued
		// check stops it as soon as it runs.
		a.tripCanaries(ctx, c, canaries, s.client, canaryAction)
		sigs <- killswitch.SigRevoke
	}
	// The lock is released: a secrets call inside the command never waits on us.
	code, how := a.supervise(ctx, c, argv, vars, leases, grace, sigs)
	a.endExec(ctx, c, leases, prog, code, how)
	return &reply{quiet: true, exit: code}, nil
}

// childEnv is the command's environment: ours (or, with --pristine, a few basics) without
// the store identity, plus the secrets.
func childEnv(base []string, pristine bool, keep []string, vars []envfile.Var) []string {
	allowed := append([]string{"PATH", "HOME", "USER", "LANG", "TERM"}, keep...)
	set := map[string]bool{}
	for _, v := range vars {
		set[v.Name] = true
	}
	env := make([]string, 0, len(base)+len(vars))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if k == "SECRETS_IDENTITY" || k == "SECRETS_IDENTITY_FILE" || set[k] || pristine && !slices.Contains(allowed, k) {
			continue
		}
		env = append(env, kv)
	}
	for _, v := range vars {
		env = append(env, v.Name+"="+string(v.Value))
	}
	return env
}

// supervise runs the command and stays with it: it forwards signals, stops the command
// (SIGTERM, grace, SIGKILL to its process group) when one of its leases ends, and returns
// the exit code and, if it stopped the command, why.
func (a *app) supervise(ctx context.Context, c *cli.Command, argv []string, vars []envfile.Var, leases []lease.Lease, grace time.Duration, sigs chan os.Signal) (int, string) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = childEnv(a.environ, c.Bool("pristine"), c.StringSlice("keep"), vars)
	cmd.Stdin = a.stdin
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if tty, ok := a.stdin.(*os.File); ok && foreground(tty) {
		// The command's group becomes the terminal's foreground, so it reads the terminal
		// and gets ^C itself; the terminal is handed back when it exits.
		cmd.SysProcAttr.Foreground, cmd.SysProcAttr.Ctty = true, int(tty.Fd())
		defer takeTerminal(tty)
	}
	var closers []io.Closer
	if c.Bool("no-redact") {
		cmd.Stdout, cmd.Stderr = a.stdout, a.stderr
	} else {
		secrets := make([]redact.Secret, len(vars))
		for i, v := range vars {
			secrets[i] = redact.Secret{Name: v.Name, Value: v.Value}
		}
		out, short := redact.New(a.stdout, secrets)
		errw, _ := redact.New(a.stderr, secrets)
		for _, name := range short {
			a.warn(fmt.Sprintf("%s is shorter than %d bytes and is not redacted from the output", name, redact.MinLen))
		}
		cmd.Stdout, cmd.Stderr = out, errw
		closers = []io.Closer{out, errw}
	}

	if err := cmd.Start(); err != nil {
		fmt.Fprintf(a.stderr, "secrets: error: exec %s: %v\n", argv[0], err)
		return exitNotStarted, "the command could not be started"
	}
	a.execRan = true
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	pgid := cmd.Process.Pid
	expiry := time.NewTimer(time.Until(earliest(leases)))
	defer expiry.Stop()
	var kill <-chan time.Time
	stopped := ""
	stop := func(why string) {
		if stopped != "" {
			return
		}
		stopped = why
		syscall.Kill(-pgid, syscall.SIGTERM)
		kill = time.After(grace)
	}
	for {
		select {
		case err := <-done:
			for _, cl := range closers {
				cl.Close()
			}
			return exitCode(cmd, err), stopped
		case sig := <-sigs:
			if sig != killswitch.SigRevoke {
				syscall.Kill(-pgid, sig.(syscall.Signal))
				continue
			}
			if why := a.leasesEnded(ctx, c, leases); why != "" {
				stop(why)
			}
		case <-expiry.C:
			stop("lease expired")
		case <-ctx.Done():
			stop("timed out")
			ctx = context.Background() // stop once; then wait for the command
		case <-kill:
			syscall.Kill(-pgid, syscall.SIGKILL)
			stopped += fmt.Sprintf("; SIGKILL after %s", grace)
			kill = nil
		}
	}
}

// leasesEnded looks in the store whether any of the leases has ended, and says how.
// Any process can send the signal; only the store decides.
func (a *app) leasesEnded(ctx context.Context, c *cli.Command, leases []lease.Lease) string {
	s, err := a.open(ctx, c, modeWrite)
	if err != nil {
		a.warn("could not check the leases after a revocation signal: " + err.Error())
		return ""
	}
	defer s.finish(nil)
	for _, l := range leases {
		if !slices.ContainsFunc(s.state.Leases, func(x lease.Lease) bool { return x.ID == l.ID }) {
			return "lease " + l.ID + " ended"
		}
	}
	return ""
}

// endExec records how the command ended and revokes its remaining leases.
func (a *app) endExec(ctx context.Context, c *cli.Command, leases []lease.Lease, prog string, code int, stopped string) {
	s, err := a.open(ctx, c, modeWrite)
	if err != nil {
		a.warn("could not revoke the command's leases: " + err.Error() + "; they end at their expiry")
		return
	}
	ended := lease.RevokeIDs(&s.state.Leases, leaseIDs(leases))
	if stopped != "" {
		s.record(audit.Entry{Event: "exec_terminated", OK: true, Detail: fmt.Sprintf("%s: %s; exit %d", prog, stopped, code)})
	}
	s.end(ended, "lease_revoke", "exec_exit")
	s.record(audit.Entry{Event: "exec_exit", OK: code == 0, Detail: fmt.Sprintf("%s exited %d", prog, code)})
	if err := s.finish(nil); err != nil {
		a.warn("could not record the command's exit: " + err.Error())
	}
}

func earliest(ls []lease.Lease) time.Time {
	t := ls[0].ExpiresAt
	for _, l := range ls[1:] {
		if l.ExpiresAt.Before(t) {
			t = l.ExpiresAt
		}
	}
	return t
}

// exitCode is the command's exit status, or 128+N for signal N.
func exitCode(cmd *exec.Cmd, err error) int {
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return exitNotStarted
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return cmd.ProcessState.ExitCode()
}

// foreground reports whether f is a terminal whose foreground process group is ours:
// only then may the command's group take it over (not when we run in the background).
func foreground(f *os.File) bool {
	pg, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPGRP)
	return err == nil && pg == unix.Getpgrp()
}

// takeTerminal makes our process group the terminal's foreground again.
func takeTerminal(tty *os.File) {
	signal.Ignore(syscall.SIGTTOU)
	defer signal.Reset(syscall.SIGTTOU)
	unix.IoctlSetPointerInt(int(tty.Fd()), unix.TIOCSPGRP, unix.Getpgrp())
}
