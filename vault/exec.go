package vault

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/envfile"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/policy"
	"github.com/agent-secrets/secrets/proxy"
	"github.com/agent-secrets/secrets/redact"
	"github.com/agent-secrets/secrets/store"
	"github.com/agent-secrets/secrets/supervisor"
)

// ExecInput runs a command with a project's secrets in its environment.
type ExecInput struct {
	Project  Project
	TTL      string
	ClientID string
	Wait     time.Duration // for a person's approval, as LeaseInput.Wait
	Argv     []string
	// Pristine gives the command only the secrets plus PATH, HOME, USER, LANG, TERM and Keep.
	Pristine bool
	Keep     []string
	// NoRedact connects the command straight to Stdout and Stderr.
	NoRedact bool
	// Grace is how long the command has between SIGTERM and SIGKILL after a lease ends.
	Grace  time.Duration
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Tool is set when an agent's tool runs the command (MCP or OpenClaw secrets_exec):
	// then only the commands the policy allows run (ToolGate).
	Tool *ToolGate
	// StrictEgress refuses (403) the child's requests to every host no inject rule
	// names, instead of tunnelling them.
	StrictEgress bool
	// OnRevoke is OnRevokeStop ("" too) or OnRevokeDeny.
	OnRevoke string
	// InServer is set by a long-lived server that runs commands side by side and owns
	// the process's signals (secrets mcp): none is forwarded to the command, and ctx
	// done (a timeout, a cancellation, the server's own SIGTERM) stops it.
	InServer bool
}

// ToolGate is what exec adds when an agent's tool asks for it (DESIGN.md section 13): the
// command must be one the policy allows for every secret asked, or one the person gave
// when registering the tool (advisory, like all of a plain store); never secrets itself.
// The command gets no SECRETS_* variable and, where the kernel allows, cannot see the
// store's directories.
type ToolGate struct {
	Name       string     // mcp, openclaw
	Registered [][]string // the commands given at registration (secrets mcp --exec)
}

// MaxGrace bounds how long a command has between SIGTERM and SIGKILL once its lease ends:
// a grace without a cap would let a revoked command keep its values as long as it asked.
const MaxGrace = 30 * time.Second

// ExecResult is how the command ended. A command that could not be started has
// ExitCode supervisor.ExitNotStarted and StartErr set.
type ExecResult struct {
	ExitCode int
	StartErr error
	Stopped  string // why the supervisor stopped it, or ""
	// Injected are the secrets whose values went into the command's requests, never
	// into the command.
	Injected []Injected
	// Unhidden says why the store's directories were visible to a tool's command (the
	// kernel allowed no namespace), or "".
	Unhidden string
}

// Exec grants one lease per mapping (kind exec, naming this process as the supervisor),
// releases the lock, and runs the command with the values in its environment, its output
// redacted, until it exits; revocation, expiry or ctx done stop it. Then its remaining
// leases are revoked and its exit recorded. It fails before the command runs with the
// codes of a grant; after, the result carries the command's status. ctx done is a
// timeout: the command is stopped as a revocation would stop it.
func (v *Vault) Exec(ctx context.Context, in ExecInput) (*ExecResult, error) {
	if err := checkGrace(in.Grace); err != nil {
		return nil, err
	}
	// The lease names this process by pid and start time, so that revocation reaches it
	// and never a process that reused the pid. Where that cannot be read (macOS, for
	// now), exec refuses before granting anything.
	self, start, err := supervisor.Self()
	if err != nil {
		return nil, err
	}
	listen := supervisor.Listen
	if in.InServer {
		listen = supervisor.ListenRevocations
	}
	sigs, err := listen()
	if err != nil {
		return nil, err
	}
	defer sigs.Close()
	g, err := v.grantExec(ctx, in, sigs, self, start)
	if err != nil {
		return nil, err
	}
	client, leases, vars, envFiles, prog := g.client, g.leases, g.vars, g.envFiles, g.prog
	// What the command prints is redacted of every value, an injected one's too: it holds
	// the placeholder, which it may print, and never should the value.
	secrets := redactions(vars)
	for i := range secrets {
		for _, x := range g.injected {
			if x.envVar == secrets[i].Name {
				secrets[i].Value = x.value
			}
		}
	}
	ids := leaseIDs(leases)
	env := ChildEnv(v.o.Environ, in.Pristine, in.Keep, vars)
	var inj *injection
	if len(g.injected) > 0 {
		inj, err = v.startInjection(g, in.StrictEgress, false, client)
		if err == nil {
			var remove func()
			env, remove, err = childProxyEnv(env, inj.px.Endpoint(), inj.px.CA(), inj.roots)
			if err == nil {
				defer remove()
			} else {
				inj.close()
			}
		}
		if err != nil {
			v.execEnd(context.Background(), client, ids, prog, supervisor.Result{ExitCode: supervisor.ExitNotStarted, Stopped: "the command was not started: " + err.Error()}, nil)
			return nil, err
		}
	}
	var hide []string
	if in.Tool != nil {
		env = toolEnv(env)
		hide = append(v.storePaths(), envFiles...)
	}
	var unanswered silence
	cmd := supervisor.Command{
		Argv: in.Argv, Env: env, Hide: hide,
		Stdin: in.Stdin, Stdout: in.Stdout, Stderr: in.Stderr,
		Redact: secrets, NoRedact: in.NoRedact, Grace: in.Grace, Expiry: earliest(leases),
		Ended: func() (string, time.Time) {
			why, at, ok := v.leasesEnded(context.Background(), client, leases)
			if !ok {
				// The store did not answer (a process holds its lock): a lease may have
				// ended. Injection waits, the store is asked again shortly, and a command
				// that holds values is stopped if it stays silent (unanswered).
				if why = unanswered.failed(in.OnRevoke == OnRevokeDeny); why == "" {
					inj.hold()
					time.AfterFunc(recheckEvery, sigs.Poke)
					return "", time.Time{}
				}
			} else {
				unanswered.answered()
			}
			inj.verdict(why, at)
			return why, at
		},
		Pending: func() bool { return store.IntentWaiting(v.storeOptions()) }, PollEvery: time.Second,
		Warn:        v.o.Warn,
		KeepRunning: in.OnRevoke == OnRevokeDeny,
	}
	if inj != nil {
		cmd.Alert = inj.px.Pause
	}
	// The lock is released: a secrets call inside the command never waits on us.
	res := sigs.Run(ctx, cmd)
	extra := inj.close()
	v.execEnd(context.Background(), client, ids, prog, res, extra)
	if res.Stopped != "" {
		v.warn("%s was stopped: %s", prog, res.Stopped)
	}
	if res.LeaseEnded != "" {
		v.warn("%s no longer gets its secrets injected (%s); it was left running (--on-revoke deny)", prog, res.LeaseEnded)
	}
	out := &ExecResult{ExitCode: res.ExitCode, StartErr: res.StartErr, Stopped: res.Stopped}
	if inj != nil {
		out.Injected = inj.list
	}
	if in.Tool != nil && res.HideErr != nil {
		out.Unhidden = res.HideErr.Error()
	}
	return out, nil
}

// childProxyEnv is env with the proxy's variables for a child, and its trust bundle (the
// system's roots and the run's CA) written 0600 in a private directory that remove
// takes away.
func childProxyEnv(env []string, ep proxy.Endpoint, ca, roots []byte) ([]string, func(), error) {
	if roots == nil {
		var err error
		if roots, err = proxy.SystemRoots(); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrInjectUnavailable, err)
		}
	}
	bundle, remove, err := proxy.WriteBundle(roots, ca)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInjectUnavailable, err)
	}
	return proxy.Env(env, ep, bundle), remove, nil
}

// execGrant is what grantExec granted.
type execGrant struct {
	client   string
	leases   []lease.Lease
	vars     []envfile.Var // the child's: placeholders for the injected
	envFiles []string      // for a tool: the .env files other projects hold values in
	prog     string        // the command's name, for the log
	injected []injectedSecret
}

// injectedSecret is a mapping whose value the proxy puts into requests.
type injectedSecret struct {
	name, envVar, placeholder string
	value                     []byte
	rule                      *policy.InjectRule
}

// grantExec grants the exec leases of in, naming the supervisor pid (which started at
// start) as their holder: revocation signals it through sigs.
func (v *Vault) grantExec(ctx context.Context, in ExecInput, sigs *supervisor.Listener, self int, start uint64) (*execGrant, error) {
	m, err := in.Project.read()
	if err != nil {
		return nil, err
	}
	if in.Tool != nil {
		// The agent may write the mapping file: it names neither who asks (the tool's
		// client does) nor a variable that makes the command run its code.
		m.clientID = ""
		if err := toolVars(in.Tool, m); err != nil {
			return nil, err
		}
	}
	client, err := v.projectClient(in.ClientID, m)
	if err != nil {
		return nil, err
	}
	prog := escapeControl(filepath.Base(in.Argv[0]))
	var leases []lease.Lease
	var vars []envfile.Var
	var envFiles []string
	var injected []injectedSecret
	err = v.retryApproved(ctx, in.Wait, func() error {
		injected = nil
		return v.update(ctx, write, client, func(tx *Tx) error {
			denied := audit.Entry{Event: "exec_denied", Detail: prog}
			if err := tx.refuseInLockdown(denied); err != nil {
				return err
			}
			found, err := tx.lookupMapped(m)
			if err != nil {
				return err
			}
			if in.Tool != nil {
				if err := tx.gateCommand(in.Tool, m, found, in.Argv); err != nil {
					return tx.Deny(denied, err)
				}
				// The .env files other projects hold values in are not the tool's to read.
				for _, r := range tx.state.EnvFiles {
					envFiles = append(envFiles, r.Path)
				}
			}
			rules, err := tx.injectRules(m, found)
			if err != nil {
				return tx.Deny(denied, err)
			}
			placeholders := make([]string, len(rules))
			for i, r := range rules {
				if r != nil {
					mp := m.ms[i]
					placeholders[i] = proxy.Placeholder(found[mp.Name].Value)
					injected = append(injected, injectedSecret{name: mp.Name, envVar: mp.EnvVar, placeholder: placeholders[i], value: found[mp.Name].Value, rule: r})
				}
			}
			if len(injected) == 0 && in.OnRevoke == OnRevokeDeny {
				return Usagef("--on-revoke deny is for a command whose secrets are all injected (--inject); this one holds its values")
			}
			if len(injected) > 0 && len(injected) < len(m.ms) && in.OnRevoke == OnRevokeDeny {
				return Usagef("--on-revoke deny is for a command whose secrets are all injected; %d of its %d are in its environment", len(m.ms)-len(injected), len(m.ms))
			}
			leases, vars, err = tx.grantMapped(found, m, in.TTL, lease.Request{Kind: lease.KindExec, PID: self, PIDStart: start}, "exec "+prog+", ",
				func(i int, r *lease.Request, v *envfile.Var) {
					if rules[i] != nil {
						r.Kind = lease.KindInject
						v.Value = []byte(placeholders[i])
					}
				})
			if err != nil {
				return tx.Deny(denied, err)
			}
			// The trip is durable before the command starts; the killswitch ends its leases
			// too, and the queued check stops it as soon as it runs.
			tripped, err := tx.tripCanaries(tx.canaries(leases), nil)
			if err != nil {
				return err
			}
			if tripped {
				tx.OnCommit(sigs.Poke)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return &execGrant{client: client, leases: leases, vars: vars, envFiles: envFiles, prog: prog, injected: injected}, nil
}

// checkGrace refuses a grace longer than MaxGrace.
func checkGrace(grace time.Duration) error {
	if grace > MaxGrace {
		return Usagef("--grace: %s is more than %s; a command gets at most that long to stop after its lease ends", grace, MaxGrace)
	}
	return nil
}

// redactions are the values of vars, named by their variables, for the redactor.
func redactions(vars []envfile.Var) []redact.Secret {
	secrets := make([]redact.Secret, len(vars))
	for i, x := range vars {
		secrets[i] = redact.Secret{Name: x.Name, Value: x.Value}
	}
	return secrets
}

// leasesEnded looks in the store whether any of the leases has ended, and says how, and
// when the first of them expires now (a renew moves it); and whether the store answered
// at all: false when it could not be read (the lock held, say), which says nothing of
// the leases. Any process can send the revocation signal; only the store decides.
func (v *Vault) leasesEnded(ctx context.Context, client string, leases []lease.Lease) (string, time.Time, bool) {
	// A killswitch recorded while another process holds the lock is honoured first,
	// without waiting for the lock that process may never release.
	if in := v.pendingIntent(ctx); in != nil {
		for _, l := range leases {
			if in.Kind == intentKillswitch || !l.CreatedAt.After(in.At) {
				if in.Kind == intentKillswitch {
					return "the killswitch fired", time.Time{}, true
				}
				return "revoke --all: lease " + l.ID + " ended", time.Time{}, true
			}
		}
	}
	why := ""
	var now []lease.Lease
	// Whether to stop is read whatever someone did to config.json or a mode.
	err := v.updateWith(ctx, write, client, txOptions{looseFiles: true}, func(tx *Tx) error {
		for _, l := range leases {
			cur, ok, err := tx.table.find(l.ID)
			if err != nil {
				return err
			}
			if !ok {
				why = "lease " + l.ID + " ended"
				if slices.ContainsFunc(tx.expired, func(e lease.Lease) bool { return e.ID == l.ID }) {
					why = "lease expired"
				}
				return nil
			}
			now = append(now, cur)
		}
		return nil
	})
	if err != nil {
		v.warn("could not check the leases after a revocation signal: %v", err)
		return "", time.Time{}, false
	}
	if why != "" || len(now) == 0 {
		return why, time.Time{}, true
	}
	return "", earliest(now), true
}

// execEnd records how the command ended and revokes its remaining leases.
func (v *Vault) execEnd(ctx context.Context, client string, ids []string, prog string, res supervisor.Result, extra []audit.Entry) {
	err := v.update(ctx, write, client, func(tx *Tx) error {
		ended, err := tx.revokeIDs(ids)
		if err != nil {
			return err
		}
		for _, e := range extra {
			tx.Record(e)
		}
		if res.Stopped != "" {
			tx.Record(audit.Entry{Event: "exec_terminated", OK: true, Detail: fmt.Sprintf("%s: %s; exit %d", prog, res.Stopped, res.ExitCode)})
		}
		if res.LeaseEnded != "" {
			tx.Record(audit.Entry{Event: "inject_stop", OK: true, Detail: fmt.Sprintf("%s: %s; injection stopped, the command left running (--on-revoke deny)", prog, res.LeaseEnded)})
		}
		tx.End(ended, "lease_revoke", "exec_exit")
		detail := fmt.Sprintf("%s exited %d", prog, res.ExitCode)
		if res.ExitCode < 0 { // a command another process ran, which did not say (Hold)
			detail = prog + ": how it ended was not reported"
		}
		if res.Orphans > 0 {
			detail += fmt.Sprintf("; %d processes it left running were stopped", res.Orphans)
		}
		tx.Record(audit.Entry{Event: "exec_exit", OK: res.ExitCode == 0, Detail: detail})
		return nil
	})
	if err != nil {
		v.warn("could not record the command's exit: %v; its leases end at their expiry", err)
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

// gateCommand refuses a tool's command unless every secret asked allows it (its
// policy's exec rules, or the tool's registration).
func (tx *Tx) gateCommand(g *ToolGate, m mapping, found map[string]*store.Secret, argv []string) error {
	if isSecrets(argv[0]) {
		return fmt.Errorf("%w: %s may not run secrets itself: it would reach the store with the tool's rights", policy.ErrCommandNotAllowed, g.Name)
	}
	shown := EscapeCommand(argv)
	if len(m.ms) == 0 && !policy.Allows(g.Registered, argv) {
		return fmt.Errorf("%w: %q is not a command this %s server was registered with (secrets mcp --exec)", policy.ErrCommandNotAllowed, shown, g.Name)
	}
	for _, mp := range m.ms {
		if found[mp.Name] == nil {
			continue // grantMapped reports it
		}
		rule, err := tx.rule(mp.Name)
		if err != nil {
			return err
		}
		if !policy.Allows(rule.Exec, argv) && !policy.Allows(g.Registered, argv) {
			return fmt.Errorf("%w: %s may run %q with %s only if its policy allows it (secrets policy set %s --exec '...') or the server was registered with it (secrets mcp --exec '...')",
				policy.ErrCommandNotAllowed, g.Name, shown, mp.Name, mp.Name)
		}
	}
	return nil
}

// isSecrets reports whether prog names this binary, or any program called secrets.
func isSecrets(prog string) bool {
	if filepath.Base(prog) == "secrets" {
		return true
	}
	self, err := os.Executable()
	if err != nil {
		return false
	}
	path, err := exec.LookPath(prog)
	if err != nil {
		return false
	}
	a, errA := os.Stat(self)
	b, errB := os.Stat(path)
	return errA == nil && errB == nil && os.SameFile(a, b)
}

// toolEnv drops every SECRETS_ variable from a tool's command's environment: it may not
// find the store, its identity or the client id it could speak as.
func toolEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "SECRETS_") {
			out = append(out, kv)
		}
	}
	return out
}

// storePaths are what a tool's command must not see: the store's directories and an
// identity file kept elsewhere.
func (v *Vault) storePaths() []string {
	var paths []string
	add := func(p string) {
		if p == "" {
			return
		}
		if abs, err := filepath.Abs(p); err == nil {
			paths = append(paths, abs)
			if real, err := filepath.EvalSymlinks(abs); err == nil && real != abs {
				paths = append(paths, real) // the same directory by its other name
			}
		}
	}
	add(v.o.Dir)
	if v.o.StateDir != v.o.Dir {
		add(v.o.StateDir)
	}
	add(v.o.IdentityFile)
	return paths
}

// loaderVars are variables that make a program load or run code of the caller's choosing
// (the loader, shells, interpreters, build and version-control tools): an agent that may
// name the variable a secret goes in must not name one of these, or an exactly allowed
// command runs its code with the values in hand.
var loaderVars = []string{"PATH", "HOME", "SHELL", "ENV", "BASH_ENV", "IFS", "PS4", "PROMPT_COMMAND", "CDPATH",
	"NODE_OPTIONS", "NODE_PATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH",
	"MAKEFLAGS", "MFLAGS", "GNUMAKEFLAGS", "GCONV_PATH", "LOCPATH", "NLSPATH", "TMPDIR", "EDITOR", "VISUAL", "PAGER",
	"SSL_CERT_FILE", "SSL_CERT_DIR", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
	"http_proxy", "https_proxy", "all_proxy", "no_proxy", "SSH_ASKPASS", "SUDO_ASKPASS",
	"RUBYOPT", "RUBYLIB", "GEM_HOME", "GEM_PATH", "BUNDLE_GEMFILE", "PHPRC", "PHP_INI_SCAN_DIR",
	"GOFLAGS", "GOROOT", "GOPATH", "GOPROXY", "GOTOOLCHAIN", "GOENV", "RUSTC", "RUSTC_WRAPPER", "CARGO_HOME", "CARGO_BUILD_RUSTC_WRAPPER"}

// loaderPrefixes are the families of such variables.
var loaderPrefixes = []string{"LD_", "DYLD_", "PYTHON", "PERL", "GIT_", "npm_config_", "NPM_CONFIG_", "LUA_", "XDG_", "SECRETS_"}

// toolVars refuses a mapping, as an agent's tool asks for it, that puts a secret in a
// variable of loaderVars or loaderPrefixes.
func toolVars(g *ToolGate, m mapping) error {
	for _, mp := range m.ms {
		v := mp.EnvVar
		if slices.Contains(loaderVars, v) || slices.ContainsFunc(loaderPrefixes, func(p string) bool { return strings.HasPrefix(v, p) }) {
			return fmt.Errorf("%w: %s may not put a secret in %s: that variable makes programs load code or change what they run", policy.ErrCommandNotAllowed, g.Name, v)
		}
	}
	return nil
}
