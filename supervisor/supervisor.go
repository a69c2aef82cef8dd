// Package supervisor runs the command of `secrets exec` and stays with it: it forwards
// signals to the command's process group, hands it the terminal when it has one, passes
// its output through the redactor, and stops it (SIGTERM, a grace period, SIGKILL to the
// whole group) when its leases end. It knows nothing of the store: whether a lease ended
// is a question it asks its caller.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/agent-secrets/secrets/internal/children"
	"github.com/agent-secrets/secrets/internal/sandbox"
	"github.com/agent-secrets/secrets/redact"
	"golang.org/x/sys/unix"
)

// forwarded are the signals the supervisor passes on to the command's process group.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// ExitNotStarted is the exit code of a command that could not be started, as a shell
// reports one it cannot find.
const ExitNotStarted = 127

// Command is what to run and how to watch it.
type Command struct {
	Argv   []string
	Env    []string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Redact are the values to hide from the output. With NoRedact the command is
	// connected straight to Stdout and Stderr (terminal programs keep their tty).
	Redact   []redact.Secret
	NoRedact bool
	// Grace is how long the command has between SIGTERM and SIGKILL once it is stopped.
	Grace time.Duration
	// Expiry is when the command's first lease expires: it is stopped then.
	Expiry time.Time
	// Ended is asked on every revocation signal, which any process can send, and when
	// Expiry comes: it returns why one of the command's leases ended, or "" if none did,
	// and the leases' earliest expiry as the store now has it (a renew moves it either
	// way); zero keeps the one the supervisor has.
	Ended func() (why string, expiry time.Time)
	// Pending is asked every PollEvery, and when it is true, Ended is asked as on a
	// revocation signal: for a revocation whose signal could not be sent (a killswitch
	// that could not read the state to find this supervisor). Nil polls nothing.
	Pending   func() bool
	PollEvery time.Duration
	// Warn receives problems that do not stop the command.
	Warn func(string)
	// Alert is called as soon as a revocation signal arrives, before Ended is asked: for
	// what must not act on a lease that may just have ended (the injection proxy).
	Alert func()
	// KeepRunning leaves the command running when a lease ends or expires (Ended says
	// so, or Expiry comes): for a command that holds placeholders only, whose use the
	// proxy stops. A timeout (ctx done) still stops it.
	KeepRunning bool
	// Hide are absolute paths the command must not see (the store): it runs in the
	// sandbox with them covered, where the kernel allows one, and as is where it does
	// not (Result.HideErr says why). Nil runs it as is.
	Hide []string
}

// Result is how the command ended.
type Result struct {
	// ExitCode is the command's status, 128+N when signal N ended it, ExitNotStarted
	// when it could not be started.
	ExitCode int
	// StartErr is why the command could not be started, or nil.
	StartErr error
	// Stopped says why the supervisor stopped it, or "" when it exited on its own.
	Stopped string
	// LeaseEnded says why a lease ended while the command was left running
	// (KeepRunning), or "".
	LeaseEnded string
	// Orphans is how many processes the command left running when it exited, which the
	// supervisor stopped.
	Orphans int
	// HideErr is why the command ran with Command.Hide visible (the platform or a
	// sysctl allows no namespace: sandbox.ErrUnsupported), or why it did not run (any
	// other failure of sandbox.Available), or nil when the paths were hidden or none
	// were asked.
	HideErr error
}

// sandboxAvailable is sandbox.Available; a test replaces it.
var sandboxAvailable = sandbox.Available

// ErrUnsupported reports a platform where the supervisor cannot be reached by revocation.
var ErrUnsupported = errors.New("secrets exec cannot be supervised on this platform yet")

// Listener receives the signals a supervisor acts on. Listen before any lease exists:
// the default action of a revocation signal would kill the process that holds it.
// Several may listen at once (a server runs commands side by side); each gets every
// revocation signal and asks the store about its own leases.
type Listener struct {
	sigs chan os.Signal
}

// listeners counts the Listeners open: the revocation signal is ignored again only when
// the last one closes.
var listeners struct {
	sync.Mutex
	n int
}

// Listen starts receiving the forwarded signals and the revocation signal.
func Listen() (*Listener, error) { return listen(true) }

// ListenRevocations starts receiving the revocation signal only, for a long-lived server
// (secrets mcp) that owns the process's other signals: it stops its commands itself, by
// the context it gives Run.
func ListenRevocations() (*Listener, error) { return listen(false) }

func listen(forward bool) (*Listener, error) {
	if revoke == nil {
		return nil, ErrUnsupported
	}
	l := &Listener{sigs: make(chan os.Signal, 16)}
	listeners.Lock()
	defer listeners.Unlock()
	listeners.n++
	if forward {
		signal.Notify(l.sigs, append(forwarded, revoke)...)
	} else {
		signal.Notify(l.sigs, revoke)
	}
	return l, nil
}

// Close stops receiving. A revocation signal arriving once no Listener is open is
// ignored, for the reason Listen gives.
func (l *Listener) Close() {
	listeners.Lock()
	defer listeners.Unlock()
	signal.Stop(l.sigs)
	if listeners.n--; listeners.n == 0 {
		signal.Ignore(revoke)
	}
}

// Revocation reports whether sig is the revocation signal (never on a platform without
// one), as against a signal for the command.
func Revocation(sig os.Signal) bool { return revoke != nil && sig == revoke }

// C is what the Listener receives, for a process that holds leases for a command
// another process runs (the owner side of a guarded store).
func (l *Listener) C() <-chan os.Signal { return l.sigs }

// Poke queues a check of the leases, as a revocation signal would.
func (l *Listener) Poke() { l.sigs <- revoke }

// Run starts the command and supervises it until it exits. ctx done stops it too, as a
// timeout.
func (l *Listener) Run(ctx context.Context, c Command) Result {
	cmd := exec.Command(c.Argv[0], c.Argv[1:]...)
	cmd.Env = c.Env
	cmd.Stdin = c.Stdin
	// A background process the command left may hold its output pipes open: Wait must
	// not wait for it (it is stopped as an orphan once the command is gone).
	cmd.WaitDelay = orphanWait
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// The command does not outlive us: killed, we cannot reach it to revoke. In its PID
	// namespace the helper is the command's parent, and everything in it dies with it.
	dieWithParent(cmd.SysProcAttr)
	var term *os.File // the terminal the command's group holds, if it does
	if tty, ok := c.Stdin.(*os.File); ok && foreground(tty) {
		// The command's group becomes the terminal's foreground, so it reads the terminal
		// and gets ^C itself; the terminal is handed back when it exits.
		cmd.SysProcAttr.Foreground, cmd.SysProcAttr.Ctty = true, int(tty.Fd())
		term = tty
		defer takeTerminal(tty)
	}
	// Job control: when the command stops (^Z), the shell must get the terminal back,
	// which it does only when our job stops too (jobControl).
	sigchld := make(chan os.Signal, 4)
	var jobs <-chan time.Time
	if term != nil {
		signal.Notify(sigchld, syscall.SIGCHLD)
		defer signal.Stop(sigchld)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		jobs = t.C
	}
	var hideErr error
	confined := false // in a PID namespace of its own, which nothing it starts can leave
	if c.Hide != nil {
		hideErr = sandboxAvailable()
		switch {
		case hideErr == nil:
			// A path Wrap refuses is the caller's mistake, not the kernel's: the command
			// does not run rather than run with the store in view.
			if err := sandbox.Wrap(cmd, c.Hide); err != nil {
				return Result{ExitCode: ExitNotStarted, StartErr: fmt.Errorf("sandbox %s: %w", c.Argv[0], err), Stopped: "the command could not be started"}
			}
			confined = true
		case !errors.Is(hideErr, sandbox.ErrUnsupported):
			// The kernel has the namespaces but would not give one now (a limit someone
			// may have filled on purpose): fail closed rather than show the store.
			return Result{ExitCode: ExitNotStarted, StartErr: fmt.Errorf("the store could not be hidden from %s (%w); it was not run", c.Argv[0], hideErr),
				Stopped: "the command could not be started", HideErr: hideErr}
		}
	}
	if !confined {
		// What such a command leaves behind is reparented to this process and is told
		// from another's only while one of them runs at a time.
		select {
		case unconfined <- struct{}{}:
			defer func() { <-unconfined }()
		case <-ctx.Done():
			return Result{ExitCode: ExitNotStarted, StartErr: fmt.Errorf("%s was not started: %s", c.Argv[0], stopReason(ctx)),
				Stopped: "the command could not be started", HideErr: hideErr}
		}
	}
	var closers []io.Closer
	if c.NoRedact {
		cmd.Stdout, cmd.Stderr = c.Stdout, c.Stderr
	} else {
		out, short := redact.New(c.Stdout, c.Redact)
		for _, name := range short {
			c.Warn(fmt.Sprintf("%s is shorter than %d bytes and is not redacted from the output", name, redact.MinLen))
		}
		cmd.Stdout, cmd.Stderr = out, out
		closers = []io.Closer{out}
		// Two streams to one place (a terminal, 2>&1) are one pipe, as they would be
		// without us: their order is kept, and a value the command splits between them
		// is redacted, which two redactors, each seeing half, could not do.
		if !sameDestination(c.Stdout, c.Stderr) {
			errw, _ := redact.New(c.Stderr, c.Redact)
			cmd.Stderr = errw
			closers = append(closers, errw)
		}
	}
	// Everything the command starts stays ours to stop: orphans are reparented to this
	// process (a subreaper), so a background job or one that called setsid is found too.
	becomeSubreaper()
	before := ownChildren()
	if err := cmd.Start(); err != nil {
		return Result{ExitCode: ExitNotStarted, StartErr: fmt.Errorf("exec %s: %w", c.Argv[0], err), Stopped: "the command could not be started", HideErr: hideErr}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	pgid := cmd.Process.Pid
	running.add(pgid)
	defer running.remove(pgid)
	// tree is what the command started: the processes below it, and those reparented to
	// us since it started. In its own PID namespace nothing is reparented to us: what it
	// leaves goes to the namespace's init, the command's parent, and dies with it.
	orphans := func() []int {
		if confined {
			return nil
		}
		var roots []int
		for _, p := range ownChildren() {
			if p != pgid && !slices.Contains(before, p) && !running.has(p) && !children.Known(p) {
				roots = append(roots, p)
			}
		}
		return below(roots)
	}
	tree := func() []int { return append(below([]int{pgid}), orphans()...) }
	signalAll := func(sig syscall.Signal) {
		syscall.Kill(-pgid, sig)
		for _, p := range tree() {
			syscall.Kill(p, sig)
		}
	}
	until := c.Expiry
	expiry := time.NewTimer(time.Until(until))
	defer expiry.Stop()
	// follow moves the expiry timer to what the store says now (a renew).
	follow := func(at time.Time) {
		if at.IsZero() || at.Equal(until) {
			return
		}
		until = at
		if !expiry.Stop() {
			select {
			case <-expiry.C:
			default:
			}
		}
		expiry.Reset(time.Until(until))
	}
	var kill <-chan time.Time
	stopped := ""
	stop := func(why string) {
		if stopped != "" {
			return
		}
		stopped = why
		signalAll(syscall.SIGTERM)
		kill = time.After(c.Grace)
	}
	// end is a lease's end: the command is stopped, unless it is to be kept running.
	leaseEnded := ""
	end := func(why string) {
		if !c.KeepRunning {
			stop(why)
			return
		}
		if leaseEnded == "" {
			leaseEnded = why
			expiry.Stop()
		}
	}
	var poll <-chan time.Time
	if c.Pending != nil && c.PollEvery > 0 {
		t := time.NewTicker(c.PollEvery)
		defer t.Stop()
		poll = t.C
	}
	for {
		select {
		case <-jobs:
			// A stop that sent us no SIGCHLD (a grandchild's: the shell running the
			// command waits for it) is found by looking.
			if stopped == "" && stoppedGroup(pgid) { // not the stop of killTree
				jobControl(term, pgid)
			}
		case <-poll:
			if c.Pending() {
				why, at := c.Ended()
				if why != "" {
					end(why)
					poll = nil
				}
				follow(at)
			}
		case err := <-done:
			// The command is gone; what it left running in the background still holds
			// the values: stopped now, SIGTERM and then SIGKILL after the grace.
			// Its pid is reaped and may be reused: only what was reparented to us counts.
			left := stopOrphans(orphans, c.Grace)
			for _, cl := range closers {
				cl.Close()
			}
			return Result{ExitCode: exitCode(cmd, err), Stopped: stopped, LeaseEnded: leaseEnded, HideErr: hideErr, Orphans: left}
		case <-sigchld:
			if stopped == "" && stoppedGroup(pgid) { // not the stop of killTree
				jobControl(term, pgid)
			}
		case sig := <-l.sigs:
			if sig != revoke {
				syscall.Kill(-pgid, sig.(syscall.Signal))
				continue
			}
			if c.Alert != nil {
				c.Alert()
			}
			why, at := c.Ended()
			if why != "" {
				end(why)
			}
			if leaseEnded == "" {
				follow(at)
			}
		case <-expiry.C:
			// A renew whose signal was lost still counts: ask the store before stopping.
			why, at := c.Ended()
			switch {
			case why != "":
				end(why)
			case !at.IsZero() && at.After(until):
				follow(at)
			default:
				end("lease expired")
			}
		case <-ctx.Done():
			stop(stopReason(ctx))
			ctx = context.Background() // stop once; then wait for the command
		case <-kill:
			syscall.Kill(-pgid, syscall.SIGKILL)
			killTree(tree, pgid) // the command itself is reaped by its Wait
			stopped += fmt.Sprintf("; SIGKILL after %s", c.Grace)
			kill = nil
		}
	}
}

// sameDestination reports whether a and b write to the same place: one writer, or two
// files that are one (the same terminal, pipe or file, as after 2>&1).
func sameDestination(a, b io.Writer) bool {
	fa, okA := a.(*os.File)
	fb, okB := b.(*os.File)
	if okA && okB {
		sa, errA := fa.Stat()
		sb, errB := fb.Stat()
		return errA == nil && errB == nil && os.SameFile(sa, sb)
	}
	defer func() { recover() }() // a writer of a type == cannot compare is not the same
	return a == b
}

// stopReason is why ctx ended, as Result.Stopped says it.
func stopReason(ctx context.Context) string {
	if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		return "timed out"
	}
	if cause := context.Cause(ctx); cause != nil && cause != context.Canceled {
		return "cancelled: " + cause.Error()
	}
	return "cancelled"
}

// running are the commands this process supervises now, by pid: none is an orphan of
// another.
var running = pidSet{pids: map[int]bool{}}

// unconfined is held by the one command at a time that runs outside a PID namespace.
var unconfined = make(chan struct{}, 1)

type pidSet struct {
	sync.Mutex
	pids map[int]bool
}

func (s *pidSet) add(pid int)    { s.Lock(); s.pids[pid] = true; s.Unlock() }
func (s *pidSet) remove(pid int) { s.Lock(); delete(s.pids, pid); s.Unlock() }
func (s *pidSet) has(pid int) bool {
	s.Lock()
	defer s.Unlock()
	return s.pids[pid]
}

// orphanWait is how long the command's output may go on after it exited, from processes
// it left behind, before the pipes are closed and those processes stopped.
const orphanWait = 200 * time.Millisecond

// stopOrphans stops what tree lists once the command has exited: SIGTERM, up to grace
// for them to go, then SIGKILL; each is reaped (they are our children by now, or
// below one that is). It returns how many there were.
func stopOrphans(tree func() []int, grace time.Duration) int {
	left := tree()
	if len(left) == 0 {
		return 0
	}
	n := len(left)
	for _, p := range left {
		syscall.Kill(p, syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	for len(live(tree())) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	killTree(tree, 0)
	return n
}

// killTree kills every process tree lists. Each is stopped first and the list read again
// until it grows no more: a stopped process forks no more, so one that keeps starting
// new sessions cannot stay ahead of a single pass (the attacker's review left 78 running
// that way). Then all are killed and those that are our children reaped, but for keep,
// which its own Wait reaps; a few rounds for what was reparented in between.
func killTree(tree func() []int, keep int) {
	for range 8 {
		seen := map[int]bool{}
		for grew := true; grew && len(seen) < 1<<16; {
			grew = false
			for _, p := range tree() {
				if !seen[p] {
					seen[p], grew = true, true
					syscall.Kill(p, syscall.SIGSTOP)
				}
			}
		}
		for p := range seen {
			syscall.Kill(p, syscall.SIGKILL)
		}
		for p := range seen {
			if p != keep {
				var ws syscall.WaitStatus
				syscall.Wait4(p, &ws, syscall.WNOHANG, nil)
			}
		}
		if len(live(tree())) == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// jobControl is what a shell's job control needs of a supervisor whose command stopped
// (^Z sends SIGTSTP to the command's group, which holds the terminal): take the terminal
// back and stop our own process group, the shell's job, so the shell sees the job
// stopped and gets its prompt. When the shell continues the job, the command is
// continued too, holding the terminal again if the job is in the foreground (fg) and
// not if it is not (bg).
func jobControl(tty *os.File, pgid int) {
	takeTerminal(tty)
	syscall.Kill(0, syscall.SIGSTOP) // returns once the shell sends SIGCONT
	if foreground(tty) {
		unix.IoctlSetPointerInt(int(tty.Fd()), unix.TIOCSPGRP, pgid)
	}
	syscall.Kill(-pgid, syscall.SIGCONT)
}

// exitCode is the command's exit status, or 128+N for signal N.
func exitCode(cmd *exec.Cmd, err error) int {
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) && !(errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil) {
		return ExitNotStarted
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
