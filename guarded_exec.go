package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/agent-secrets/secrets/envfile"
	"github.com/agent-secrets/secrets/guard"
	"github.com/agent-secrets/secrets/internal/children"
	"github.com/agent-secrets/secrets/redact"
	"github.com/agent-secrets/secrets/supervisor"
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
	Command  []string      `json:"command"` // what the caller side runs: for the log and a tool's gate
	Tool     string        `json:"tool,omitempty"`
	ToolExec [][]string    `json:"tool_exec,omitempty"`
}

// holdMessage is what the owner side says while it holds: first a refusal (Exit and
// Stderr) or the grant (Vars and Expiry), then Stop or a new Expiry.
type holdMessage struct {
	Release string        `json:"release"`
	Refused bool          `json:"refused,omitempty"`
	Exit    int           `json:"exit,omitempty"`
	Stderr  []byte        `json:"stderr,omitempty"`
	Vars    []envfile.Var `json:"vars,omitempty"`
	Expiry  time.Time     `json:"expiry,omitzero"`
	Stop    string        `json:"stop,omitempty"`
}

// holdEnd is how the command ended, as the caller side reports it.
type holdEnd struct {
	Exit    int    `json:"exit"`
	Stopped string `json:"stopped,omitempty"`
	Orphans int    `json:"orphans,omitempty"`
}

// helperEnded is why the caller side stops the command when the owner side's pipe closes.
const helperEnded = "the guarded store's helper ended, and with it the leases"

// execGuarded runs in through the owner side of the guarded store c.
func (a *app) execGuarded(ctx context.Context, c *guard.Config, in vault.ExecInput) (*reply, error) {
	p, err := in.Project.Load()
	if err != nil {
		return nil, err
	}
	req := holdRequest{File: p.File, Project: p.Data, Secrets: p.Secrets, TTL: in.TTL, ClientID: in.ClientID, Wait: in.Wait, Command: in.Argv}
	if in.Tool != nil {
		req.Tool, req.ToolExec = in.Tool.Name, in.Tool.Registered
	}
	if len(req.Secrets) > 0 {
		req.File = ""
	}
	// Signals meant for the command are ours from now on: the grant may wait for a
	// person's approval, and ^C then must end the request, not us.
	sigs, err := supervisor.Listen()
	if err != nil {
		return nil, err
	}
	defer sigs.Close()
	sudo, err := exec.LookPath("sudo")
	if err != nil {
		return nil, fmt.Errorf("%w: sudo is not installed, and a guarded store is reached only through it", guard.ErrUnavailable)
	}
	helper := exec.Command(sudo, "-n", "-u", c.Owner, c.Binary, guard.OwnerArg)
	helper.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}
	helper.Stderr = a.stderr // its warnings are the caller's
	helper.WaitDelay = time.Second
	toHelper, err := helper.StdinPipe()
	if err != nil {
		return nil, err
	}
	fromHelper, err := helper.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := helper.Start(); err != nil {
		return nil, fmt.Errorf("%w: start %s: %v", guard.ErrUnavailable, sudo, err)
	}
	children.Add(helper.Process.Pid)
	defer func() {
		toHelper.Close()
		helper.Wait()
		children.Remove(helper.Process.Pid)
	}()
	if err := json.NewEncoder(toHelper).Encode(ownerRequest{Release: version, ClientID: a.clientLabel(), Agent: agentLabel(a.environ), Hold: &req}); err != nil {
		return nil, fmt.Errorf("%w: sudo -n -u %s %s %s did not take the request: %v", guard.ErrUnavailable, c.Owner, c.Binary, guard.OwnerArg, err)
	}
	dec := json.NewDecoder(io.LimitReader(fromHelper, 4<<20))
	first := make(chan error, 1)
	var grant holdMessage
	go func() { first <- dec.Decode(&grant) }()
	// Until the grant, a signal ends the request: the owner side, told by sudo, gives up.
	for waiting := true; waiting; {
		select {
		case err = <-first:
			waiting = false
		case sig := <-sigs.C():
			if sig != supervisor.SigRevoke {
				helper.Process.Signal(sig)
			}
		}
	}
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: sudo -n -u %s %s %s did not answer (%v)", guard.ErrUnavailable, c.Owner, c.Binary, guard.OwnerArg, err)
	case grant.Release != version:
		return nil, fmt.Errorf("%w: this secrets is release %s and the guarded store's is %s", guard.ErrUnavailable, version, grant.Release)
	case grant.Refused:
		a.stderr.Write(grant.Stderr)
		return &reply{quiet: true, exit: grant.Exit}, nil
	}
	secrets := make([]redact.Secret, len(grant.Vars))
	for i, x := range grant.Vars {
		secrets[i] = redact.Secret{Name: x.Name, Value: x.Value}
	}
	// What the owner side says next moves the state Ended reads, and pokes the
	// supervisor to read it.
	var mu sync.Mutex
	why, until := "", grant.Expiry
	go func() {
		for {
			var m holdMessage
			err := dec.Decode(&m)
			mu.Lock()
			switch {
			case err != nil:
				if why == "" {
					why = helperEnded
				}
			case m.Stop != "":
				why = m.Stop
			case !m.Expiry.IsZero():
				until = m.Expiry
			}
			mu.Unlock()
			sigs.Poke()
			if err != nil {
				return
			}
		}
	}()
	stderr := in.Stderr
	res := sigs.Run(ctx, supervisor.Command{
		Argv: in.Argv, Env: vault.ChildEnv(a.environ, in.Pristine, in.Keep, grant.Vars),
		Stdin: in.Stdin, Stdout: in.Stdout, Stderr: stderr,
		Redact: secrets, NoRedact: in.NoRedact, Grace: in.Grace, Expiry: grant.Expiry,
		Ended: func() (string, time.Time) {
			mu.Lock()
			defer mu.Unlock()
			return why, until
		},
		Warn: a.warn,
	})
	json.NewEncoder(toHelper).Encode(holdEnd{Exit: res.ExitCode, Stopped: res.Stopped, Orphans: res.Orphans})
	if res.Stopped != "" {
		a.warn(fmt.Sprintf("%s was stopped: %s", filepath.Base(in.Argv[0]), res.Stopped))
	}
	if res.StartErr != nil {
		fmt.Fprintf(a.stderr, "secrets: error: %v\nsecrets: hint: check the command's name and that it is on PATH\n", res.StartErr)
	}
	return &reply{quiet: true, exit: res.ExitCode}, nil
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
func ownerHold(v *vault.Vault, req *holdRequest, dec *json.Decoder, stdout io.Writer, refuse func(error) int) int {
	switch {
	case len(req.Command) == 0 || len(req.Command) > maxCommand || slices.Contains(req.Command, ""):
		return refuse(vault.Usagef("the hold request names no command it can run"))
	case len(req.Secrets) == 0 && req.Project == nil:
		return refuse(vault.Usagef("the hold request names no secrets"))
	}
	in := vault.ExecInput{
		Project: vault.Project{File: printable(req.File, 256), Secrets: req.Secrets, Data: req.Project},
		TTL:     req.TTL, ClientID: req.ClientID, Wait: req.Wait, Argv: req.Command,
	}
	if in.Project.File == "" {
		in.Project.File = ".secrets.json"
	}
	if req.Tool != "" || req.ToolExec != nil {
		in.Tool = &vault.ToolGate{Name: printable(req.Tool, 32), Registered: req.ToolExec}
	}
	// sudo relays to us what the caller's terminal or the caller sends it: ^C, a
	// SIGTERM, a hang-up. Each ends the hold (the caller side is told, and stops the
	// command), as the pipe closing does.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	link := &pipeLink{enc: json.NewEncoder(stdout), ended: make(chan supervisor.Result, 1)}
	go func() {
		var end holdEnd
		if err := dec.Decode(&end); err == nil {
			link.ended <- supervisor.Result{ExitCode: end.Exit, Stopped: printable(end.Stopped, 256), Orphans: max(end.Orphans, 0)}
		}
		close(link.ended)
	}()
	if err := v.Hold(ctx, in, link); err != nil {
		return refuse(err)
	}
	return 0
}

// pipeLink is vault.HoldLink over the owner side's stdout and stdin.
type pipeLink struct {
	enc   *json.Encoder
	ended chan supervisor.Result
}

func (l *pipeLink) Granted(vars []envfile.Var, expiry time.Time) error {
	return l.enc.Encode(holdMessage{Release: version, Vars: vars, Expiry: expiry})
}

func (l *pipeLink) Changed(why string, expiry time.Time) {
	l.enc.Encode(holdMessage{Release: version, Stop: why, Expiry: expiry})
}

func (l *pipeLink) Ended() <-chan supervisor.Result { return l.ended }
