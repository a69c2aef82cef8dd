// Package rotate runs rotation hooks: the command given with --rotate-via, and the check
// given with --verify-via. A hook runs with sh -c in its own process group, gets the
// current value on stdin and SECRET_NAME in its environment (never the value in argv or
// the environment), and is killed with its whole group when it overruns its timeout.
//
// The contract: exit 0 with output is a new value (one trailing newline dropped); exit 0
// with no output means the credential was refreshed elsewhere (gh auth refresh) and the
// stored value stays; anything else fails and changes nothing. With a check, the value to
// be stored is verified first, so a bad new credential is never stored (make before break).
package rotate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"time"

	"github.com/agent-secrets/secrets/internal/children"
)

// ErrFailed matches every rotation that changed nothing because a hook failed.
var ErrFailed = errors.New("rotation failed")

// MaxOutput bounds what a hook may print: a value is at most 1 MiB.
const MaxOutput = 1 << 20

// Hook is how one secret rotates.
type Hook struct {
	Name    string        // the secret, passed as SECRET_NAME
	Command string        // --rotate-via
	Verify  string        // --verify-via, may be empty
	Timeout time.Duration // per command
	Env     []string      // the environment to start from (without the store identity)
}

// Result is what a rotation did.
type Result struct {
	Value      []byte        // the value to store: new, or the old one when refreshed elsewhere
	Changed    bool          // the hook printed a new value
	Verified   bool          // the check ran and passed
	Duration   time.Duration // hook and check together
	ExitStatus int           // the hook's
}

// Run rotates: it runs the hook with old on stdin and, if there is a check, runs it
// with the value to be stored. It fails with ErrFailed (and a reason that never includes
// hook output) when the hook or the check fails or overruns.
func (h Hook) Run(ctx context.Context, old []byte) (Result, error) {
	start := time.Now()
	out, status, err := h.run(ctx, h.Command, old)
	r := Result{ExitStatus: status}
	if err != nil {
		r.Duration = time.Since(start)
		return r, fmt.Errorf("%w: %s: %v", ErrFailed, h.Name, err)
	}
	out = bytes.TrimSuffix(out, []byte("\n"))
	r.Value, r.Changed = old, len(out) > 0
	if r.Changed {
		r.Value = out
	}
	if h.Verify != "" {
		if _, vstatus, err := h.run(ctx, h.Verify, r.Value); err != nil {
			r.Duration = time.Since(start)
			return r, fmt.Errorf("%w: %s: the check failed (%v, status %d); the old value stays (rolled back)", ErrFailed, h.Name, err, vstatus)
		}
		r.Verified = true
	}
	r.Duration = time.Since(start)
	return r, nil
}

// run executes one command and returns its stdout and exit status. Its stderr is
// discarded: hook output never reaches a log or our output.
func (h Hook) run(ctx context.Context, command string, stdin []byte) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Env = append(append([]string{}, h.Env...), "SECRET_NAME="+h.Name)
	cmd.Stdin = bytes.NewReader(stdin)
	var out limited
	cmd.Stdout = &out
	cmd.Stderr = io.Discard
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// On timeout the whole group dies, so a grandchild holding stdout cannot keep us waiting.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := children.Run(cmd)
	status := -1
	if cmd.ProcessState != nil {
		status = cmd.ProcessState.ExitCode()
	}
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return nil, status, fmt.Errorf("timed out after %s", h.Timeout)
	case out.over:
		return nil, status, fmt.Errorf("printed more than %d bytes", MaxOutput)
	case err != nil:
		return nil, status, fmt.Errorf("exited with status %d", status)
	}
	return out.buf.Bytes(), status, nil
}

// limited keeps at most MaxOutput+1 bytes and notes when there were more.
type limited struct {
	buf  bytes.Buffer
	over bool
}

func (l *limited) Write(p []byte) (int, error) {
	if room := MaxOutput + 1 - l.buf.Len(); len(p) > room {
		l.over = true
		l.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return l.buf.Write(p)
}
