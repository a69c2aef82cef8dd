package vault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/agent-secrets/secrets/envfile"
	"github.com/agent-secrets/secrets/internal/safefile"
	"github.com/agent-secrets/secrets/proxy"
	"github.com/agent-secrets/secrets/redact"
	"github.com/agent-secrets/secrets/supervisor"
)

// The caller side of a guarded store (DESIGN.md section 10): what the agent user's own
// secrets process does with what the owner side hands it. It runs an exec's command and
// writes and removes the caller's .env files; the store it never touches.

// MaxProjectFile bounds a mapping file.
const MaxProjectFile = envfile.MaxProjectFile

// Var is an environment variable and its value, as a grant hands it over.
type Var = envfile.Var

// FileRecord is a managed .env file as the store records it.
type FileRecord = envfile.Record

// Holder is the process that holds an exec's leases for a command this one runs: the
// owner side of a guarded store, over sudo's pipes (Hold is its half).
type Holder interface {
	// Grant asks for the leases and returns the values, when the first lease expires,
	// and where the injection proxy is. Until it returns, the signals the command would
	// get arrive on sigs, for Grant to pass on (^C ends a wait for approval).
	Grant(ctx context.Context, sigs <-chan os.Signal) (HoldGrant, error)
	// Next returns the holder's next word: why a lease ended (the command must stop),
	// or the leases' new earliest expiry. An error means the holder is gone.
	Next() (stop string, expiry time.Time, err error)
	// Ended tells the holder how the command ended, and what the caller side's proxy
	// did (nil when the run injects nothing).
	Ended(res ExecResult, orphans int, front *FrontReport)
}

// Revocation reports whether sig is the revocation signal, which a Holder's Grant does
// not pass on: it is the supervisor's own.
func Revocation(sig os.Signal) bool { return supervisor.Revocation(sig) }

// HolderGone is why a command is stopped when its holder went away: nothing watches its
// leases any more.
const HolderGone = "the guarded store's helper ended, and with it the leases"

// RunHeld runs in's command with the values h grants, as Exec runs it (environ is the
// caller's environment), until it exits or
// h says stop; then it tells h how it ended. It fails with Grant's error when nothing
// was granted.
func RunHeld(ctx context.Context, in ExecInput, h Holder, environ []string, warn func(string)) (*ExecResult, error) {
	if err := checkGrace(in.Grace); err != nil {
		return nil, err
	}
	sigs, err := supervisor.Listen()
	if err != nil {
		return nil, err
	}
	defer sigs.Close()
	g, err := h.Grant(ctx, sigs.C())
	if err != nil {
		return nil, err
	}
	vars, expiry := g.Vars, g.Expiry
	var secrets []redact.Secret
	env := ChildEnv(environ, in.Pristine, in.Keep, vars)
	var front *proxy.Proxy
	var events frontEvents
	if g.Injection != nil {
		// The values stay with the owner side's proxy: this one routes the rules' hosts
		// to it and tunnels (or refuses) the rest, as the caller.
		var routes []proxy.Secret
		for _, r := range g.Injection.Routes {
			routes = append(routes, proxy.Secret{Name: r.Name, Placeholder: r.Placeholder, Rule: r.Rule})
		}
		ep := g.Injection.Endpoint
		front, err = proxy.Start(proxy.Config{Secrets: routes, Strict: in.StrictEgress, Chain: &ep, Expiry: expiry, Event: events.add})
		if err != nil {
			h.Ended(ExecResult{ExitCode: supervisor.ExitNotStarted, StartErr: err, Stopped: "not started"}, 0, nil)
			return nil, fmt.Errorf("%w: %w", ErrInjectUnavailable, err)
		}
		var remove func()
		env, remove, err = childProxyEnv(env, front.Endpoint(), g.Injection.CA, nil)
		if err != nil {
			front.Close()
			h.Ended(ExecResult{ExitCode: supervisor.ExitNotStarted, StartErr: err, Stopped: "not started"}, 0, nil)
			return nil, err
		}
		defer remove()
	}
	injected := map[string]bool{}
	if g.Injection != nil {
		for _, r := range g.Injection.Routes {
			injected[r.Placeholder] = true
		}
	}
	for _, x := range vars {
		if !injected[string(x.Value)] {
			secrets = append(secrets, redact.Secret{Name: x.Name, Value: x.Value})
		}
	}
	// What h says next moves the state Ended reads, and pokes the supervisor to read it.
	var mu sync.Mutex
	why, until := "", expiry
	go func() {
		for {
			stop, at, err := h.Next()
			mu.Lock()
			switch {
			case err != nil:
				if why == "" {
					why = HolderGone
				}
			case stop != "":
				why = stop
			case !at.IsZero():
				until = at
			}
			mu.Unlock()
			sigs.Poke()
			if err != nil {
				return
			}
		}
	}()
	res := sigs.Run(ctx, supervisor.Command{
		Argv: in.Argv, Env: env,
		Stdin: in.Stdin, Stdout: in.Stdout, Stderr: in.Stderr,
		Redact: secrets, NoRedact: in.NoRedact, Grace: in.Grace, Expiry: expiry,
		Ended: func() (string, time.Time) {
			mu.Lock()
			defer mu.Unlock()
			return why, until
		},
		Warn:        warn,
		KeepRunning: in.OnRevoke == OnRevokeDeny && g.Injection != nil && len(g.Injection.Routes) == len(vars),
	})
	for i := range vars {
		clear(vars[i].Value)
	}
	out := ExecResult{ExitCode: res.ExitCode, StartErr: res.StartErr, Stopped: res.Stopped}
	var report *FrontReport
	if front != nil {
		report = &FrontReport{Report: front.Close(), Events: events.list()}
		for _, r := range g.Injection.Routes {
			out.Injected = append(out.Injected, Injected{Name: r.Name, Hosts: r.Rule.Hosts})
		}
	}
	if res.LeaseEnded != "" {
		warn(fmt.Sprintf("%s no longer gets its secrets injected (%s); it was left running (--on-revoke deny)", in.Argv[0], res.LeaseEnded))
	}
	h.Ended(out, res.Orphans, report)
	return &out, nil
}

// frontEvents collects a caller-side proxy's refusals for the owner side's log.
type frontEvents struct {
	mu     sync.Mutex
	events []proxy.Event
}

func (f *frontEvents) add(e proxy.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.events) < MaxFrontEntries {
		f.events = append(f.events, e)
	}
}

func (f *frontEvents) list() []proxy.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.events
}

// CheckEnvOutput refuses to write a .env file at path, as env does: an existing file
// without force, a directory, a link.
func CheckEnvOutput(path string, force bool) error { return envfile.CheckOutput(path, force) }

// WriteEnvFile writes a .env file the owner side rendered, 0600, atomically.
func WriteEnvFile(path string, content []byte) error {
	err := envfile.Write(path, content)
	if err != nil && !errors.Is(err, safefile.ErrWrite) {
		err = fmt.Errorf("%w: %s: %w", safefile.ErrWrite, path, err)
	}
	return err
}

// Gitignore adds path to the .gitignore beside it, as env does, and says what it did.
func Gitignore(path string) string { return envfile.Gitignore(path) }

// RemoveFiles removes the caller's .env files whose leases ended, as cleanup does: a
// file someone changed is left. It returns what it removed (or found gone), which the
// store may forget, and what it left. With dryRun it removes nothing and says what it
// would do.
func RemoveFiles(due []FileRecord, dryRun bool) (removed, skipped []Cleaned, gone []string) {
	for _, rec := range due {
		var o envfile.Outcome
		var err error
		if dryRun {
			o, err = envfile.Inspect(rec)
		} else {
			o, err = envfile.Remove(rec)
		}
		switch {
		case err != nil:
			skipped = append(skipped, Cleaned{rec.Path, err.Error()})
		case o == envfile.Modified && dryRun:
			skipped = append(skipped, Cleaned{rec.Path, "changed since secrets wrote it; would be left in place"})
		case o == envfile.Modified:
			skipped = append(skipped, Cleaned{rec.Path, "changed since secrets wrote it; left in place"})
		case dryRun:
			removed = append(removed, Cleaned{rec.Path, "would be " + string(o)})
		default:
			removed = append(removed, Cleaned{rec.Path, string(o)})
			gone = append(gone, rec.Path)
		}
	}
	return removed, skipped, gone
}
