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
	// Grant asks for the leases and returns the values and when the first lease
	// expires. Until it returns, the signals the command would get arrive on sigs, for
	// Grant to pass on (^C ends a wait for approval).
	Grant(ctx context.Context, sigs <-chan os.Signal) ([]Var, time.Time, error)
	// Next returns the holder's next word: why a lease ended (the command must stop),
	// or the leases' new earliest expiry. An error means the holder is gone.
	Next() (stop string, expiry time.Time, err error)
	// Ended tells the holder how the command ended.
	Ended(res ExecResult, orphans int)
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
	vars, expiry, err := h.Grant(ctx, sigs.C())
	if err != nil {
		return nil, err
	}
	secrets := redactions(vars)
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
		Argv: in.Argv, Env: ChildEnv(environ, in.Pristine, in.Keep, vars),
		Stdin: in.Stdin, Stdout: in.Stdout, Stderr: in.Stderr,
		Redact: secrets, NoRedact: in.NoRedact, Grace: in.Grace, Expiry: expiry,
		Ended: func() (string, time.Time) {
			mu.Lock()
			defer mu.Unlock()
			return why, until
		},
		Warn: warn,
	})
	for i := range vars {
		clear(vars[i].Value)
	}
	out := ExecResult{ExitCode: res.ExitCode, StartErr: res.StartErr, Stopped: res.Stopped}
	h.Ended(out, res.Orphans)
	return &out, nil
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
