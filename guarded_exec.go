package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/agent-secrets/secrets/guard"
	"github.com/agent-secrets/secrets/vault"
)

// exec in a guarded store (DESIGN.md section 10). The caller side reads the mapping,
// starts `sudo -n -u OWNER BINARY __owner` with a hold request on its stdin, and runs the
// command as the caller with the values the owner side hands back. The owner side stays:
// it holds the leases, which name it, so revocation, expiry and the killswitch reach it,
// and it tells the caller side to stop the command. The pipe closing from either end
// ends it: the owner side revokes what is left, the caller side stops the command.

// holdRequest is an exec's grant as the caller side asks it.
type holdRequest struct {
	File     string        `json:"file,omitempty"`    // the mapping file's name, for messages
	Project  []byte        `json:"project,omitempty"` // its content
	Secrets  []string      `json:"secrets,omitempty"` // --secret NAME[=ENV_VAR]
	TTL      string        `json:"ttl,omitempty"`
	ClientID string        `json:"client_id,omitempty"` // --client-id
	Wait     time.Duration `json:"wait,omitempty"`
	Command  []string      `json:"command"`          // what the caller side runs, in its own account: for the log
	Inject   []string      `json:"inject,omitempty"` // --inject NAME=VAR@HOST,…
	Strict   bool          `json:"strict_egress,omitempty"`
	OnRevoke string        `json:"on_revoke,omitempty"`
}

// holdMessage is what the owner side says while it holds: first a refusal (Exit and
// Stderr) or the grant (Vars and Expiry), then Stop or a new Expiry.
type holdMessage struct {
	Release string      `json:"release"`
	Refused bool        `json:"refused,omitempty"`
	Exit    int         `json:"exit,omitempty"`
	Stderr  []byte      `json:"stderr,omitempty"`
	Vars    []vault.Var `json:"vars,omitempty"`
	Expiry  time.Time   `json:"expiry,omitzero"`
	Stop    string      `json:"stop,omitempty"`
	// Injection is where the owner side's proxy listens, the run CA and the routes.
	Injection *vault.Injection `json:"injection,omitempty"`
}

// holdEnd is how the command ended, as the caller side reports it.
type holdEnd struct {
	Exit    int                `json:"exit"`
	Stopped string             `json:"stopped,omitempty"`
	Orphans int                `json:"orphans,omitempty"`
	Front   *vault.FrontReport `json:"front,omitempty"` // what the caller side's proxy did
}

// execGuarded runs in through the owner side of the guarded store c.
func (a *app) execGuarded(ctx context.Context, c *guard.Config, in vault.ExecInput) (*reply, error) {
	p, err := in.Project.Load()
	if err != nil {
		return nil, err
	}
	if in.Tool != nil {
		// Its gate (the commands a policy allows a tool) would be the caller side's word
		// here: the values reach the caller's own process, whatever it runs.
		return nil, fmt.Errorf("%w: an agent host's secrets_exec is not served in a guarded store in this release; run secrets exec yourself", guard.ErrNotPermitted)
	}
	req := holdRequest{File: p.File, Project: p.Data, Secrets: p.Secrets, Inject: p.Inject, TTL: in.TTL, ClientID: in.ClientID, Wait: in.Wait, Command: in.Argv,
		Strict: in.StrictEgress, OnRevoke: in.OnRevoke}
	if len(req.Secrets) > 0 || len(req.Inject) > 0 {
		req.File = ""
	}
	h := &sudoHolder{c: c, req: ownerRequest{Release: version, ClientID: a.clientLabel(), Agent: agentLabel(a.environ), Hold: &req}, stderr: a.stderr}
	defer h.close()
	res, err := vault.RunHeld(ctx, in, h, a.environ, a.warn)
	var refused *holdRefusal
	switch {
	case errors.As(err, &refused):
		a.stderr.Write(refused.stderr)
		return &reply{quiet: true, exit: refused.exit}, nil
	case err != nil:
		return nil, err
	}
	if res.Stopped != "" {
		a.warn(fmt.Sprintf("%s was stopped: %s", filepath.Base(in.Argv[0]), res.Stopped))
	}
	if res.StartErr != nil {
		fmt.Fprintf(a.stderr, "secrets: error: %v\nsecrets: hint: check the command's name and that it is on PATH\n", res.StartErr)
	}
	return &reply{quiet: true, exit: res.ExitCode}, nil
}

// holdRefusal is the owner side's refusal of a hold, as it printed it.
type holdRefusal struct {
	exit   int
	stderr []byte
}

func (r *holdRefusal) Error() string { return string(r.stderr) }

// sudoHolder is vault.Holder over `sudo -n -u OWNER BINARY __owner`: the hold request
// and the command's end on its stdin, the owner side's words on its stdout.
type sudoHolder struct {
	c      *guard.Config
	req    ownerRequest
	stderr io.Writer
	cmd    *exec.Cmd
	in     io.WriteCloser
	dec    *json.Decoder
}

func (h *sudoHolder) Grant(ctx context.Context, sigs <-chan os.Signal) (vault.HoldGrant, error) {
	vars, expiry, inj, err := h.grant(sigs)
	return vault.HoldGrant{Vars: vars, Expiry: expiry, Injection: inj}, err
}

func (h *sudoHolder) grant(sigs <-chan os.Signal) ([]vault.Var, time.Time, *vault.Injection, error) {
	c := h.c
	var err error
	// The hold ends with its pipe, not a context: the caller side closes it last.
	if h.cmd, err = ownerCommand(context.Background(), c); err != nil {
		return nil, time.Time{}, nil, err
	}
	h.cmd.Stderr = h.stderr // its warnings are the caller's
	if h.in, err = h.cmd.StdinPipe(); err != nil {
		return nil, time.Time{}, nil, err
	}
	out, err := h.cmd.StdoutPipe()
	if err != nil {
		return nil, time.Time{}, nil, err
	}
	if err := h.cmd.Start(); err != nil {
		path := h.cmd.Path
		h.cmd = nil
		return nil, time.Time{}, nil, fmt.Errorf("%w: start %s: %v", guard.ErrUnavailable, path, err)
	}
	unavailable := func(err error) error {
		return fmt.Errorf("%w: sudo -n -u %s %s %s did not answer (%v)", guard.ErrUnavailable, c.Owner, c.Binary, guard.OwnerArg, err)
	}
	if err := json.NewEncoder(h.in).Encode(h.req); err != nil {
		return nil, time.Time{}, nil, unavailable(err)
	}
	h.dec = json.NewDecoder(io.LimitReader(out, 4<<20))
	first := make(chan error, 1)
	var grant holdMessage
	go func() { first <- h.dec.Decode(&grant) }()
	// Until the grant, a signal the command would get goes to the owner side, which
	// sudo passes on: ^C ends a wait for approval there.
	for waiting := true; waiting; {
		select {
		case err = <-first:
			waiting = false
		case sig := <-sigs:
			if !vault.Revocation(sig) {
				h.cmd.Process.Signal(sig)
			}
		}
	}
	switch {
	case err != nil:
		return nil, time.Time{}, nil, unavailable(err)
	case grant.Release != version:
		return nil, time.Time{}, nil, fmt.Errorf("%w: this secrets is release %s and the guarded store's is %s", guard.ErrUnavailable, version, grant.Release)
	case grant.Refused:
		return nil, time.Time{}, nil, &holdRefusal{exit: grant.Exit, stderr: grant.Stderr}
	}
	return grant.Vars, grant.Expiry, grant.Injection, nil
}

func (h *sudoHolder) Next() (string, time.Time, error) {
	var m holdMessage
	if err := h.dec.Decode(&m); err != nil {
		return "", time.Time{}, err
	}
	return m.Stop, m.Expiry, nil
}

func (h *sudoHolder) Ended(res vault.ExecResult, orphans int, front *vault.FrontReport) {
	json.NewEncoder(h.in).Encode(holdEnd{Exit: res.ExitCode, Stopped: res.Stopped, Orphans: orphans, Front: front})
}

// close ends the pipe, which ends the hold, and waits for sudo.
func (h *sudoHolder) close() {
	if h.cmd == nil {
		return
	}
	h.in.Close()
	h.cmd.Wait()
}

// clientLabel is the client id the caller side passes on: $SECRETS_CLIENT_ID, or ours
// (the owner side's parent is sudo, which would name no one).
func (a *app) clientLabel() string {
	if id := a.getenv("SECRETS_CLIENT_ID"); id != "" {
		return id
	}
	return vault.DefaultClientID()
}

// maxCommand bounds the command line a hold request carries.
const maxCommand = 256

// ownerHold serves a hold request on the owner side: v grants and holds the leases; the
// rest of stdin (dec) is the caller side's report of the command's end.
func ownerHold(ctx context.Context, v *vault.Vault, req *holdRequest, dec *json.Decoder, stdout io.Writer, refuse func(error) int) int {
	switch {
	case len(req.Command) == 0 || len(req.Command) > maxCommand || slices.Contains(req.Command, ""):
		return refuse(vault.Usagef("the hold request names no command it can run"))
	case slices.ContainsFunc(req.Command, func(w string) bool { return len(w) > vault.MaxEnvPath }):
		// The command goes into the log and an approval: bounded, as a path is.
		return refuse(vault.Usagef("a word of the command is longer than %d bytes", vault.MaxEnvPath))
	case len(req.Secrets) == 0 && len(req.Inject) == 0 && req.Project == nil:
		return refuse(vault.Usagef("the hold request names no secrets"))
	case req.OnRevoke != "" && req.OnRevoke != vault.OnRevokeStop && req.OnRevoke != vault.OnRevokeDeny:
		return refuse(vault.Usagef("--on-revoke is stop or deny"))
	}
	in := vault.ExecInput{
		Project: vault.Project{File: printable(req.File, 256), Secrets: req.Secrets, Inject: req.Inject, Data: req.Project},
		TTL:     req.TTL, ClientID: req.ClientID, Wait: req.Wait, Argv: req.Command,
		StrictEgress: req.Strict, OnRevoke: req.OnRevoke,
	}
	if in.Project.File == "" {
		in.Project.File = ".secrets.json"
	}
	// ctx is done when sudo relays a signal from the caller's terminal or the caller:
	// ^C, a SIGTERM, a hang-up. Each ends the hold (the caller side is told, and stops
	// the command), as the pipe closing does.
	link := newPipeLink(stdout)
	go func() {
		var end holdEnd
		if err := dec.Decode(&end); err == nil {
			link.ended <- vault.HoldEnd{Exit: end.Exit, Stopped: printable(end.Stopped, 256), Orphans: max(end.Orphans, 0), Front: end.Front}
		}
		close(link.ended)
	}()
	if err := v.Hold(ctx, in, link); err != nil {
		return refuse(err)
	}
	return 0
}

// pipeLink is vault.HoldLink over the owner side's stdout and stdin. What it says goes
// out through a goroutine: a caller side that stops reading must not stop the hold, which
// would then miss a revocation or an expiry. When its words pile up unread, it is taken
// for gone (the hold ends, as when the pipe closes).
type pipeLink struct {
	out   chan holdMessage
	ended chan vault.HoldEnd
	gone  chan struct{}
	once  sync.Once
}

func newPipeLink(w io.Writer) *pipeLink {
	l := &pipeLink{out: make(chan holdMessage, 16), ended: make(chan vault.HoldEnd, 1), gone: make(chan struct{})}
	go func() {
		enc := json.NewEncoder(w)
		for m := range l.out {
			if enc.Encode(m) != nil {
				l.lost()
			}
		}
	}()
	return l
}

// lost ends the hold: the caller side does not hear us.
func (l *pipeLink) lost() { l.once.Do(func() { close(l.gone) }) }

func (l *pipeLink) say(m holdMessage) error {
	m.Release = version
	select {
	case l.out <- m:
		return nil
	default:
		l.lost()
		return fmt.Errorf("the caller side reads nothing")
	}
}

func (l *pipeLink) Granted(g vault.HoldGrant) error {
	return l.say(holdMessage{Vars: g.Vars, Expiry: g.Expiry, Injection: g.Injection})
}

func (l *pipeLink) Changed(why string, expiry time.Time) {
	l.say(holdMessage{Stop: why, Expiry: expiry})
}

// Ended is the caller side's report, or closed when it went away or stopped reading.
func (l *pipeLink) Ended() <-chan vault.HoldEnd {
	merged := make(chan vault.HoldEnd, 1)
	go func() {
		defer close(merged)
		select {
		case r, ok := <-l.ended:
			if ok {
				merged <- r
			}
		case <-l.gone:
		}
	}()
	return merged
}
