package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/agent-secrets/secrets/guard"
	"github.com/agent-secrets/secrets/vault"
	"github.com/urfave/cli/v3"
)

// The two sides of a guarded store (DESIGN.md section 10). An agent user's `secrets …`
// is the caller side: it checks the request, sends it as data on the stdin of
// `sudo -n -u OWNER BINARY __owner`, and prints what comes back. The owner side, running
// as the store's user, reads guard.json (root's), takes nothing from the caller but the
// request and the identity sudo vouches for (SUDO_UID), checks the request again, runs
// it against the store with an environment of its own, and answers on stdout.

// ownerRequest is what the caller side sends.
type ownerRequest struct {
	Release  string   `json:"release"`
	Argv     []string `json:"argv"`                // the words after "secrets"
	ClientID string   `json:"client_id,omitempty"` // $SECRETS_CLIENT_ID: a label
	Agent    string   `json:"agent,omitempty"`     // the agent host the caller's environment shows: a label
	// Hold, instead of Argv, asks for an exec's leases, held for a command the caller
	// side runs (guarded_exec.go).
	Hold *holdRequest `json:"hold,omitempty"`
	// Env, Cleanup and Forget are secrets env's grant, cleanup, and the .env files the
	// caller side removed (guarded_env.go).
	Env     *envRequest     `json:"env,omitempty"`
	Cleanup *cleanupRequest `json:"cleanup,omitempty"`
	Forget  []string        `json:"forget,omitempty"`
	// Request is an agent user's add: a pending secret, for an admin to approve.
	Request *secretRequest `json:"request,omitempty"`
}

// ownerResponse is what the owner side answers: the command's output and status.
type ownerResponse struct {
	Release string `json:"release"`
	Exit    int    `json:"exit"`
	Stdout  []byte `json:"stdout"`
	Stderr  []byte `json:"stderr"`
	// For a request served on the caller side (env, cleanup, forget):
	Error   *ownerError          `json:"error,omitempty"`
	Env     *envGrant            `json:"env,omitempty"`
	Cleanup *vault.CleanupResult `json:"cleanup,omitempty"`
	Due     []vault.FileRecord   `json:"due,omitempty"` // the caller's .env files whose leases ended
}

// kinds counts the kinds of request r holds: one is a request.
func (r *ownerRequest) kinds() int {
	n := 0
	for _, set := range []bool{r.Argv != nil, r.Hold != nil, r.Env != nil, r.Cleanup != nil, r.Forget != nil, r.Request != nil} {
		if set {
			n++
		}
	}
	return n
}

// maxRequest bounds a request: a command line, or a hold's mapping file (at most
// vault.MaxProjectFile) and command.
const maxRequest = vault.MaxProjectFile*4/3 + 128<<10

// agentCommands are what the owner side runs for an agent user: the agent-level requests
// of section 10 that are a command there. The rest (set, rm, rotate, unlock, approve,
// policy, config, audit --reset, guard, and add that stores at once) are an admin's.
var agentCommands = []string{"lease", "leases", "list", "status", "renew", "revoke", "killswitch", "audit"}

// callerSide are the agent-level requests the caller side serves itself, asking the
// owner side for what it needs: exec runs its command as the caller, and env, cleanup
// and watch write and remove the caller's own .env files (guarded_env.go), and add reads
// the value a pending-secret request carries.
var callerSide = []string{"exec", "env", "cleanup", "watch", "add"}

// notYet are agent-level requests a guarded store does not serve in this release.
var notYet = []string{"mcp"}

// agentRequest checks argv (the words after "secrets") as a request an agent user may
// make, and returns its command; both sides run it, for a clear not_permitted. It reads
// global flags as urfave/cli does (one dash or two, a value after the flag or after =),
// and both sides route by the command it returns. It is not the boundary: a reading of
// words can be made to differ from the parser's (a "--" that is a flag's value), so the
// owner side runs requests in a command tree that holds only agentCommands, without
// adminFlags (agentTree).
func agentRequest(argv []string) (string, error) {
	i := 0
	for i < len(argv) && strings.HasPrefix(argv[i], "-") {
		flag, _, hasValue := strings.Cut(strings.TrimLeft(argv[i], "-"), "=")
		switch flag {
		case "json":
		case "lock-timeout":
			if !hasValue {
				i++
			}
		default:
			return "", fmt.Errorf("%w: the global flag %s is not for a guarded store (its directory and identity are the owner's)", guard.ErrNotPermitted, argv[i])
		}
		i++
	}
	if i == len(argv) {
		return "", fmt.Errorf("%w: name a command", guard.ErrNotPermitted)
	}
	cmd, rest := argv[i], argv[i+1:]
	switch {
	case slices.Contains(notYet, cmd):
		return "", fmt.Errorf("%w: %s is not yet available in a guarded store in this release", guard.ErrNotPermitted, cmd)
	case !slices.Contains(agentCommands, cmd) && !slices.Contains(callerSide, cmd):
		return "", fmt.Errorf("%w: %s changes the guarded store: only an admin runs it (sudo secrets %s)", guard.ErrNotPermitted, cmd, cmd)
	}
	for _, a := range rest {
		if a == "--" {
			break // what follows is exec's command, not ours
		}
		flag, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			continue
		}
		switch {
		case cmd == "killswitch" && (flag == "wipe" || flag == "rotate-all"):
			return "", fmt.Errorf("%w: an agent pulls the killswitch (every lease revoked, the store locked down); --%s is an admin's (sudo secrets killswitch --%s)", guard.ErrNotPermitted, flag, flag)
		case cmd == "audit" && (flag == "rotate" || flag == "reset" || flag == "verify"):
			return "", fmt.Errorf("%w: audit --%s is an admin's (sudo secrets audit --%s)", guard.ErrNotPermitted, flag, flag)
		case cmd == "add" && (flag == "rotate-via" || flag == "verify-via" || flag == "canary"):
			return "", fmt.Errorf("%w: an agent user's add is a request an admin decides; --%s is an admin's (sudo secrets add … --%s)", guard.ErrNotPermitted, flag, flag)
		case cmd == "list" && flag == "show-canaries":
			return "", fmt.Errorf("%w: which secrets are canaries is an admin's to know", guard.ErrNotPermitted)
		case flag == "dir":
			return "", fmt.Errorf("%w: --dir is not for a guarded store", guard.ErrNotPermitted)
		}
	}
	return cmd, nil
}

// adminFlags are the flags of the agent-level commands that only an admin may give:
// the owner side's tree does not have them, so no reading of a request's words can set
// one (helper-9 set killswitch --wipe past agentRequest with `--reason -- --wipe`).
var adminFlags = map[string][]string{
	"":           {"dir", "human", "output"}, // the root's: the store is the owner's, always
	"killswitch": {"wipe", "rotate-all", "yes"},
	"audit":      {"verify", "rotate", "reset", "yes"},
	"list":       {"show-canaries"},
}

// agentTree makes root the owner side's command tree: the agent-level commands only,
// without adminFlags. A flag it lacks is a usage error, as any unknown flag is.
func agentTree(root *cli.Command) {
	drop := func(c *cli.Command, names []string) {
		c.Flags = slices.DeleteFunc(c.Flags, func(f cli.Flag) bool {
			return slices.ContainsFunc(f.Names(), func(n string) bool { return slices.Contains(names, n) })
		})
	}
	drop(root, adminFlags[""])
	root.Commands = slices.DeleteFunc(root.Commands, func(c *cli.Command) bool { return !slices.Contains(agentCommands, c.Name) })
	for _, c := range root.Commands {
		drop(c, adminFlags[c.Name])
	}
}

// explicitStore reports whether the invocation names a store itself (--dir or
// $SECRETS_DIR): then it is a plain store, whatever guard.json says.
func (a *app) explicitStore(args []string) bool {
	if a.getenv("SECRETS_DIR") != "" {
		return true
	}
	for _, x := range args[1:] {
		if x == "--" {
			break
		}
		if x == "--dir" || x == "-dir" || strings.HasPrefix(x, "--dir=") || strings.HasPrefix(x, "-dir=") {
			return true
		}
	}
	return false
}

// localCommand reports the invocations that never go to the owner side: the command tree,
// help, version and guard itself.
func localCommand(args []string) bool {
	for _, x := range args[1:] {
		switch {
		case x == "-h" || x == "--help" || x == "help":
			return true
		case strings.HasPrefix(x, "-"):
			continue
		}
		return x == "version" || x == "guard"
	}
	return true // no command: the tree
}

// routeGuarded runs the invocation against the guarded store when there is one and the
// invocation is for it: root's as the owner, an agent user's through the owner side. It
// reports false when the invocation is not for a guarded store.
func (a *app) routeGuarded(ctx context.Context, args []string) (int, bool) {
	if localCommand(args) || a.explicitStore(args) {
		return 0, false
	}
	c, err := guard.ReadConfig()
	if errors.Is(err, os.ErrNotExist) {
		return 0, false
	}
	if err != nil {
		return a.failGuard(err), true
	}
	switch uid := os.Geteuid(); {
	case uid == c.OwnerUID:
		return 0, false // the owner side itself, or an admin command run as the owner
	case uid == 0 && commandWord(args) == "exec":
		// Root's exec runs its command as root, through the owner side as any caller's
		// does: run as the owner, a command root started (a script an agent wrote, say)
		// would be the store's user, with the key in reach.
		a.guarded = c
		return 0, false
	case uid == 0:
		code, err := guard.AsOwner(c, args[1:], a.stdin, a.stdout, a.stderr)
		if err != nil {
			return a.failGuard(err), true
		}
		return code, true
	}
	self := vault.LookupCaller(os.Getuid(), "")
	me := self.User
	if !c.Allowed(me, self.Groups) {
		return a.failGuard(fmt.Errorf("%w: %s is not an agent user of the guarded store %s (an admin allows one with: sudo secrets guard --allow %s)", guard.ErrNotPermitted, me, c.Store, me)), true
	}
	cmd, err := agentRequest(args[1:])
	if err != nil {
		return a.failGuard(err), true
	}
	if slices.Contains(callerSide, cmd) {
		a.guarded = c // the command runs here, and asks the owner side for what it needs
		return 0, false
	}
	code, err := a.callOwner(ctx, c, args[1:])
	if err != nil {
		return a.failGuard(err), true
	}
	return code, true
}

// failGuard reports a guarded store's refusal as a.fail reports any failure: the error
// and the fix on stderr, and the envelope on stdout but where stdout is a raw value's (a
// lease without --json), a command's (exec) or the protocol's (mcp).
func (a *app) failGuard(err error) int {
	p := classify(err)
	fmt.Fprintf(a.stderr, "secrets: error: %s\nsecrets: hint: %s\n", err, p.fix)
	switch cmd := commandWord(a.args); {
	case cmd == "lease" && !a.hasArg("--json"), cmd == "exec", cmd == "mcp":
	default:
		a.print(envelope{Command: strings.TrimSpace("secrets " + cmd), Error: &envError{Message: err.Error(), Code: p.code}, Fix: p.fix})
	}
	return p.exit
}

// commandWord is the first word of args after the program that is not a flag (or a
// global flag's value), or "".
func commandWord(args []string) string {
	for i := 1; i < len(args); i++ {
		switch x := args[i]; {
		case x == "--lock-timeout" || x == "--dir" || x == "-lock-timeout" || x == "-dir":
			i++
		case !strings.HasPrefix(x, "-"):
			return x
		}
	}
	return ""
}

// callOwner sends the request to the owner side through sudo and writes its answer;
// then it removes the caller's .env files the answer says are due.
func (a *app) callOwner(ctx context.Context, c *guard.Config, argv []string) (int, error) {
	resp, err := a.askOwner(ctx, c, ownerRequest{Argv: argv})
	if err != nil {
		return 0, err
	}
	if resp.Error != nil {
		return 0, resp.Error // refused before the command ran
	}
	a.stdout.Write(resp.Stdout)
	a.removeDue(ctx, c, resp.Due)
	return resp.Exit, nil
}

// ownerCommand is `sudo -n -u OWNER BINARY __owner`, with an environment of its own,
// killed when ctx is done.
func ownerCommand(ctx context.Context, c *guard.Config) (*exec.Cmd, error) {
	sudo, err := exec.LookPath("sudo")
	if err != nil {
		return nil, fmt.Errorf("%w: sudo is not installed, and a guarded store is reached only through it", guard.ErrUnavailable)
	}
	cmd := exec.CommandContext(ctx, sudo, "-n", "-u", c.Owner, c.Binary, guard.OwnerArg)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}
	cmd.WaitDelay = time.Second
	return cmd, nil
}

// callSudo runs `sudo -n -u OWNER BINARY __owner` with req on its stdin and reads its
// answer.
func callSudo(ctx context.Context, c *guard.Config, req []byte) (*ownerResponse, error) {
	cmd, err := ownerCommand(ctx, c)
	if err != nil {
		return nil, err
	}
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(req), &out, &errb
	runErr := cmd.Run()
	var resp ownerResponse
	if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
		why := strings.TrimSpace(errb.String())
		if why == "" && runErr != nil {
			why = runErr.Error()
		}
		return nil, fmt.Errorf("%w: sudo -n -u %s %s %s did not answer (%s)", guard.ErrUnavailable, c.Owner, c.Binary, guard.OwnerArg, why)
	}
	return &resp, nil
}

// printable is s without control or non-ASCII characters, at most n bytes: a label the
// caller chose, before it reaches the log.
func printable(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 0x20 && r < 0x7f && b.Len() < n {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// agentLabel is the agent host the caller's environment shows, as a label for the log.
func agentLabel(environ []string) string {
	return vault.AgentOf(environ)
}

// ownerSide is the binary run by sudo as the store's user: one request on stdin, one
// answer on stdout. Nothing the caller chose but the request's words reaches the store:
// not its environment (sudo resets it; this side builds its own), not a path, not its
// working directory.
func ownerSide(stdin io.Reader, stdout, stderr io.Writer) int {
	// The caller's terminal is not ours: ^Z there (sudo without a pty leaves us in its
	// foreground group) must not stop us while we hold the store lock, which would stop
	// every other agent user's requests. SIGSTOP needs our uid, which the caller has not.
	signal.Ignore(syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU)
	// Nor does its ^\ dump our goroutines, registers and addresses onto its stderr.
	signal.Ignore(syscall.SIGQUIT)
	debug.SetTraceback("none")
	// Nor is its umask ours: files of the store are the owner's, 0600 (sudoers sets it
	// too; this holds if an admin's own rule runs us).
	syscall.Umask(0o077)
	// ^C at its terminal, or a signal it sends sudo, which relays it, ends a wait (for
	// the lock, for an approval) and nothing else: what this side started after a
	// commit (a canary's rotate-all or wipe) runs to its end.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	// Nor does it outlive its caller: a wait ends when the caller side is gone.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-guard.CallerGone(ctx):
			cancel()
		case <-ctx.Done():
		}
	}()
	// A request that never comes ties up nothing for long.
	deadline := time.AfterFunc(30*time.Second, func() { os.Exit(exitGuard) })
	// A refusal carries the error, classified: the caller side reports it as any failure
	// of its own (the error and the fix on stderr, the envelope where stdout is ours).
	refuse := func(err error) int {
		p := classify(err)
		json.NewEncoder(stdout).Encode(ownerResponse{Release: version, Exit: p.exit, Error: &ownerError{Message: err.Error(), Code: p.code, Fix: p.fix}})
		return 0
	}
	if err := guard.CheckLimits(); err != nil {
		return refuse(err)
	}
	c, err := guard.ReadConfig()
	if err != nil {
		return refuse(fmt.Errorf("%w: the owner side has no guard configuration: %v", guard.ErrUnavailable, err))
	}
	if os.Geteuid() != c.OwnerUID {
		return refuse(fmt.Errorf("%w: the owner side runs only as %s, through sudo", guard.ErrNotPermitted, c.Owner))
	}
	// sudo leaves us in the caller's working directory: nothing relative is read from there.
	if err := os.Chdir(c.Store); err != nil {
		return refuse(fmt.Errorf("%w: the store %s: %v", guard.ErrUnavailable, c.Store, err))
	}
	uid, err := strconv.Atoi(os.Getenv("SUDO_UID"))
	if err != nil || os.Getenv("SUDO_USER") == "" {
		return refuse(fmt.Errorf("%w: the owner side is reached through sudo only", guard.ErrNotPermitted))
	}
	// One request, then (for a hold) the caller side's report of its command's end.
	var req ownerRequest
	dec := json.NewDecoder(io.LimitReader(stdin, maxRequest))
	dec.DisallowUnknownFields()
	err = dec.Decode(&req)
	deadline.Stop()
	if err != nil || req.kinds() != 1 {
		return refuse(vault.Usagef("the owner side got no request it can read"))
	}
	if req.Release != version {
		return refuse(fmt.Errorf("%w: this secrets is release %s and the guarded store's is %s; use the one an admin installed (%s), or an admin runs sudo secrets guard with the new release", guard.ErrUnavailable, req.Release, version, c.Binary))
	}
	if req.Argv != nil {
		cmd, err := agentRequest(req.Argv)
		if err != nil {
			return refuse(err)
		}
		// No agent-level command takes a "--"; one here is a flag's value, which hides
		// what follows from a reading of the words (agentTree is what holds).
		if slices.Contains(req.Argv, "--") {
			return refuse(fmt.Errorf("%w: a request to the owner side has no --", guard.ErrNotPermitted))
		}
		// What the caller side serves itself never runs here: exec would start the
		// caller's command as the store's user. (Nor could it: the owner side's command
		// tree holds agentCommands only.)
		if !slices.Contains(agentCommands, cmd) {
			return refuse(fmt.Errorf("%w: %s runs on the caller side; the owner side takes its own request", guard.ErrNotPermitted, cmd))
		}
	}
	caller := vault.LookupCaller(uid, os.Getenv("SUDO_USER"))
	// Root, an admin, reaches the owner side for what runs on the caller side (exec,
	// env, cleanup).
	if !c.Allowed(caller.User, caller.Groups) && (uid != 0 || req.Argv != nil) {
		return refuse(fmt.Errorf("%w: %s is not an agent user of this guarded store", guard.ErrNotPermitted, caller.User))
	}
	env := []string{"SECRETS_DIR=" + c.Store, "HOME=" + c.Store, "PATH=/usr/bin:/bin", "LANG=C.UTF-8"}
	if req.ClientID != "" {
		env = append(env, "SECRETS_CLIENT_ID="+req.ClientID) // checked as any client id is
	}
	if agent := printable(req.Agent, 64); agent != "" {
		env = append(env, "AI_AGENT="+agent)
	}
	if req.Hold != nil {
		// The caller side may go before we have said all: a write then fails, it does
		// not kill us with the leases still held.
		signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
		warn := dropping(stderr)
		v := vault.New(vault.Options{Dir: c.Store, Now: time.Now, Environ: env, ClientID: req.ClientID, Warn: warn, Caller: &caller,
			Command: vault.EscapeCommand(append([]string{"secrets", "exec", "--"}, req.Hold.Command...))})
		return ownerHold(ctx, v, req.Hold, dec, stdout, func(err error) int {
			p := classify(err)
			json.NewEncoder(stdout).Encode(holdMessage{Release: version, Refused: true, Exit: p.exit,
				Stderr: []byte(fmt.Sprintf("secrets: error: %s\nsecrets: hint: %s\n", err, p.fix))})
			return 0
		})
	}
	if req.Argv == nil {
		return ownerFiles(ctx, vault.Options{Dir: c.Store, Now: time.Now, Environ: env, ClientID: req.ClientID, Caller: &caller,
			Command: vault.EscapeCommand(req.command())}, req, stdout)
	}
	var out, errs bytes.Buffer
	a := newApp(strings.NewReader(""), &out, &errs, env, time.Now)
	a.caller = &caller
	var due []vault.FileRecord
	a.due = func(d []vault.FileRecord) { due = d }
	code := a.runContext(ctx, append([]string{"secrets"}, req.Argv...))
	json.NewEncoder(stdout).Encode(ownerResponse{Release: version, Exit: code, Stdout: out.Bytes(), Stderr: errs.Bytes(), Due: due})
	return 0
}

// dropping is a warn that writes to w from a goroutine of its own and drops what w does
// not take: a warning written while the store lock is held must not wait on a pipe the
// caller side chose not to read.
func dropping(w io.Writer) func(string) {
	ch := make(chan string, 32)
	go func() {
		for msg := range ch {
			fmt.Fprintf(w, "secrets: warning: %s\n", msg)
		}
	}()
	return func(msg string) {
		select {
		case ch <- msg:
		default:
		}
	}
}
