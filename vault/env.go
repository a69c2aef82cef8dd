package vault

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/envfile"
	"github.com/agent-secrets/secrets/internal/safefile"
	"github.com/agent-secrets/secrets/killswitch"
	"github.com/agent-secrets/secrets/lease"
)

// EnvInput writes a project's secrets to a managed .env file.
type EnvInput struct {
	Project  Project
	Output   string // the file to write, relative to the working directory or absolute
	Force    bool   // replace an existing file
	TTL      string // for mappings that set none
	ClientID string
	Wait     time.Duration // for a person's approval, as LeaseInput.Wait
	// Elsewhere is set by the owner side of a guarded store: the caller side writes the
	// file, as the caller, and removes it once its leases end. Output is then the
	// caller's absolute path, a name only: nothing here opens, checks or writes it, and
	// the result carries the file's Content.
	Elsewhere bool
}

// EnvResult is the file written.
type EnvResult struct {
	Path      string   `json:"path"`
	Variables []string `json:"variables"`
	LeaseIDs  []string `json:"lease_ids"`
	ExpiresAt string   `json:"expires_at"` // when the file is certainly gone
	Gitignore string   `json:"gitignore"`
	// Warnings names the variables that only bash reads back exactly from a .env file.
	Warnings []string `json:"warnings"`
	// Source is where the mappings came from: the mapping file, or "--secret".
	Source string `json:"-"`
	// Content is what to write, with EnvInput.Elsewhere; nil when nothing must be (a
	// canary's trip ended the leases at once).
	Content []byte `json:"-"`
}

// Env leases the project's secrets (one lease each, kind env) and writes them to a .env
// file, 0600, atomically. The grants are durable before any value reaches the disk; the
// file is recorded (path, sha256, leases) so that ending any of its leases removes it. A
// file written before by secrets env is replaced, with --force, by ending its leases.
func (v *Vault) Env(ctx context.Context, in EnvInput) (*EnvResult, error) {
	m, err := in.Project.read()
	if err != nil {
		return nil, err
	}
	for i, mp := range m.ms {
		if mp.Inject != nil {
			// The mapping keeps this value out of the command; a file would hand it over.
			return nil, &envfile.ProblemError{File: m.source, Path: fmt.Sprintf("secrets[%d].inject", i),
				Msg: mp.Name + " is to be injected into requests, never held: secrets env would write its value to a file; use secrets exec"}
		}
	}
	out, err := filepath.Abs(in.Output)
	if err != nil {
		return nil, err
	}
	var owner *int // whose file it is, in a guarded store
	switch {
	case in.Elsewhere && (v.o.Caller == nil || !filepath.IsAbs(in.Output)):
		return nil, Usagef("a .env file written elsewhere needs a caller and an absolute path")
	case in.Elsewhere && escapeControl(in.Output) != in.Output:
		// The path is shown to root (cleanup, audit): no character that a terminal acts
		// on or that reorders what a person reads.
		return nil, Usagef("--output holds a control character")
	case in.Elsewhere && len(in.Output) > MaxEnvPath:
		// The path goes into the state and the log: a path no file system takes must
		// not make either larger than its reader allows.
		return nil, Usagef("--output is %d bytes; a path is at most %d", len(in.Output), MaxEnvPath)
	case in.Elsewhere:
		owner = &v.o.Caller.UID
	default:
		if err := v.outsideStore(out); err != nil {
			return nil, err
		}
	}
	var content []byte
	client, err := v.projectClient(in.ClientID, m)
	if err != nil {
		return nil, err
	}
	var leases []lease.Lease
	var bashOnly []string
	err = v.retryApproved(ctx, in.Wait, func() error {
		return v.update(ctx, write, client, func(tx *Tx) error {
			denied := audit.Entry{Event: "env_denied", Detail: out}
			if err := tx.refuseInLockdown(denied); err != nil {
				return err
			}
			found, err := tx.lookupMapped(m)
			if err != nil {
				return err
			}
			if owner != nil {
				if err := tx.callerFileRoom(*owner, out); err != nil {
					return tx.Deny(denied, err)
				}
			}
			same := func(r envfile.Record) bool {
				return r.Path == out && (owner == nil) == (r.UID == nil) && (owner == nil || *owner == *r.UID)
			}
			if i := slices.IndexFunc(tx.state.EnvFiles, same); i >= 0 && in.Force {
				ended, err := tx.revokeIDs(tx.state.EnvFiles[i].LeaseIDs)
				if err != nil {
					return err
				}
				tx.End(ended, "lease_revoke", "replaced by secrets env --force")
				if owner != nil {
					// The caller side writes the new file over it: the old record would
					// only ever find it changed.
					tx.dropEnvFile(out, owner)
					tx.effects([]killswitch.Effect{{Event: "env_remove", Path: out, UID: owner, OK: true, Detail: "replaced by the caller side's secrets env --force"}})
				}
			}
			if owner == nil {
				if err := envfile.CheckOutput(out, in.Force); err != nil {
					return tx.Deny(denied, err)
				}
			}
			var vars []envfile.Var
			leases, vars, err = tx.grantMapped(found, m, in.TTL, lease.Request{Kind: lease.KindEnv, Path: out}, "env "+out+", ")
			if err != nil {
				return tx.Deny(denied, err)
			}
			ids, expires := leaseIDs(leases), latest(leases)
			var only []string
			content, only, err = envfile.Render(vars, ids, expires)
			if err != nil {
				tx.ungrant(leases)
				return tx.Deny(denied, err)
			}
			bashOnly = only
			rec := envfile.Record{Path: out, SHA256: envfile.Hash(content), LeaseIDs: ids, CreatedAt: tx.now.UTC(), UID: owner}
			tx.state.EnvFiles = append(tx.state.EnvFiles, rec)
			tx.Record(audit.Entry{Event: "env_write", OK: true, Detail: fmt.Sprintf("%s: %d variables", out, len(vars)), State: change{EnvFile: &rec}.raw()})
			// A canary's trip is durable with the grant, before the file exists; its own
			// leases end (and the file goes) once it is written, as any lease's would.
			own := func(l lease.Lease) bool { return slices.Contains(ids, l.ID) }
			tripped, err := tx.tripCanaries(tx.canaries(leases), own)
			if err != nil {
				return err
			}
			if owner != nil {
				if tripped && tx.cfg.CanaryAction.RevokeAll {
					ended, err := tx.revokeIDs(ids)
					if err != nil {
						return err
					}
					tx.End(ended, "lease_revoke", "killswitch")
					clear(content)
					content = nil // ended before it was written: the caller side writes nothing
				}
				return nil // the caller side writes it
			}
			defer clear(content)
			// The grant is durable before any value reaches the disk, and the file is written
			// under the same hold of the lock, so no other command can end its leases (and
			// drop its record) before it exists.
			if err := tx.Checkpoint(); err != nil {
				return err
			}
			if err := envfile.Write(out, content); err != nil {
				ended, rerr := tx.revokeIDs(ids)
				if rerr != nil {
					return rerr
				}
				tx.End(ended, "lease_revoke", "writing the .env file failed")
				return tx.Deny(audit.Entry{Event: "env_write", Detail: out}, fmt.Errorf("%w: %s: %w", safefile.ErrWrite, out, err))
			}
			if p := tx.state.Pruner; p == nil || tx.now.Sub(p.At) > 2*p.Every+time.Minute {
				v.warn("nothing is pruning this store: %s stays on disk after its leases end until the next secrets command that writes; run secrets watch --prune-every 1m (or from cron: secrets watch --once --prune-every 1m)", out)
			}
			if tripped && tx.cfg.CanaryAction.RevokeAll {
				ended, err := tx.revokeIDs(ids)
				if err != nil {
					return err
				}
				tx.End(ended, "lease_revoke", "killswitch")
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	gitignore := "" // the caller side's to add
	if owner == nil {
		gitignore = envfile.Gitignore(out)
	}
	names := make([]string, len(m.ms))
	for i, mp := range m.ms {
		names[i] = mp.EnvVar
	}
	if owner == nil {
		content = nil // cleared; written already
	}
	return &EnvResult{
		Path: out, Variables: names, LeaseIDs: leaseIDs(leases), ExpiresAt: rfc3339(latest(leases)),
		Gitignore: gitignore, Warnings: nonNil(bashOnly), Source: m.source, Content: content,
	}, nil
}

// latest is the expiry of the longest lease: when the file will certainly be gone.
func latest(ls []lease.Lease) time.Time {
	var t time.Time
	for _, l := range ls {
		if l.ExpiresAt.After(t) {
			t = l.ExpiresAt
		}
	}
	return t
}

// Cleaned is one managed file cleanup removed or left, and why.
type Cleaned struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// CleanupResult is what cleanup did, or with a dry run would do.
type CleanupResult struct {
	Removed []Cleaned `json:"removed"`
	Skipped []Cleaned `json:"skipped"`
	DryRun  bool      `json:"dry_run"`
}

// CleanupInput says which managed .env files to remove.
type CleanupInput struct {
	DryRun   bool // say what would be removed; change nothing
	All      bool // every managed file, ending the leases still using it
	ClientID string
}

// Cleanup removes the .env files secrets env wrote whose leases ended (with All, every
// one, ending its leases). A file someone changed is left and reported. A dry run is a
// View: it prunes nothing and writes nothing.
func (v *Vault) Cleanup(ctx context.Context, in CleanupInput) (*CleanupResult, error) {
	client, err := v.client(in.ClientID)
	if err != nil {
		return nil, err
	}
	out := &CleanupResult{Removed: []Cleaned{}, Skipped: []Cleaned{}, DryRun: in.DryRun}
	note := func(e killswitch.Effect) {
		if e.Event == "env_remove" && e.OK {
			out.Removed = append(out.Removed, Cleaned{e.Path, e.Detail})
		} else {
			out.Skipped = append(out.Skipped, Cleaned{e.Path, e.Detail})
		}
	}
	m := write
	if in.DryRun {
		m = 0
	}
	err = v.update(ctx, m, client, func(tx *Tx) error {
		if v.o.Caller != nil {
			return tx.cleanupFor(v.o.Caller.UID, in, out)
		}
		// Files whose leases expired were removed as the transaction began (pruning):
		// they are what this cleanup removed too.
		for _, e := range tx.pruned {
			if e.Path != "" {
				note(e)
			}
		}
		active, err := tx.activeIDs()
		if err != nil {
			return err
		}
		for _, rec := range slices.Clone(tx.state.EnvFiles) {
			if rec.UID != nil {
				// A caller's file in a guarded store: not this process's to open.
				out.Skipped = append(out.Skipped, Cleaned{rec.Path, fmt.Sprintf("uid %d's file; its secrets cleanup removes it", *rec.UID)})
				continue
			}
			if !in.DryRun {
				envfile.RemoveTemps(rec.Path)
			}
			live := slices.ContainsFunc(rec.LeaseIDs, func(id string) bool { return active[id] })
			switch {
			case live && !in.All:
				out.Skipped = append(out.Skipped, Cleaned{rec.Path, "its leases are active (use --all, or revoke them)"})
			case in.DryRun:
				o, err := envfile.Inspect(rec)
				switch {
				case err != nil:
					out.Skipped = append(out.Skipped, Cleaned{rec.Path, err.Error()})
				case o == envfile.Modified:
					out.Skipped = append(out.Skipped, Cleaned{rec.Path, "changed since secrets wrote it; would be left in place"})
				default:
					out.Removed = append(out.Removed, Cleaned{rec.Path, "would be " + string(o)})
				}
			case live:
				ended, err := tx.revokeIDs(rec.LeaseIDs)
				if err != nil {
					return err
				}
				for _, e := range tx.End(ended, "lease_revoke", "secrets cleanup --all") {
					note(e)
				}
			default:
				e, keep := killswitch.RemoveFile(rec)
				tx.effects([]killswitch.Effect{e}) // an env_remove entry drops the record in replay
				note(e)
				if !keep {
					tx.dropEnvFile(rec.Path, nil)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// cleanupFor is Cleanup on the owner side of a guarded store, for the caller uid: of its
// files only, and without opening one. A file whose leases ended is due, for the caller
// side to remove (Options.Due tells it which); with All the leases still using one end
// first. Another user's files are not named.
func (tx *Tx) cleanupFor(uid int, in CleanupInput, out *CleanupResult) error {
	active, err := tx.activeIDs()
	if err != nil {
		return err
	}
	for _, rec := range slices.Clone(tx.state.EnvFiles) {
		if rec.UID == nil || *rec.UID != uid {
			continue
		}
		if !slices.ContainsFunc(rec.LeaseIDs, func(id string) bool { return active[id] }) {
			continue // due already
		}
		switch {
		case !in.All:
			out.Skipped = append(out.Skipped, Cleaned{rec.Path, "its leases are active (use --all, or revoke them)"})
		case in.DryRun:
			out.Removed = append(out.Removed, Cleaned{rec.Path, "would be removed, and its leases ended"})
		default:
			ended, err := tx.revokeIDs(rec.LeaseIDs)
			if err != nil {
				return err
			}
			tx.End(ended, "lease_revoke", "secrets cleanup --all")
		}
	}
	return nil
}

// Forget drops the records of the caller's .env files at paths, which the caller side
// removed (or found gone) after their leases ended: in a guarded store it is the caller
// side that removes them. A record whose leases are all still active, or another user's,
// is kept.
func (v *Vault) Forget(ctx context.Context, paths []string) error {
	if v.o.Caller == nil {
		return Usagef("only a guarded store's caller side forgets the files it removed")
	}
	uid := v.o.Caller.UID
	return v.update(ctx, write, "", func(tx *Tx) error {
		due := tx.callerDue(uid)
		for _, p := range paths {
			if !slices.ContainsFunc(due, func(r envfile.Record) bool { return r.Path == p }) {
				continue
			}
			tx.dropEnvFile(p, &uid)
			tx.effects([]killswitch.Effect{{Event: "env_remove", Path: p, UID: &uid, OK: true, Detail: "removed by the caller side"}})
		}
		return nil
	})
}

// MaxEnvPath bounds the path of a caller's .env file in a guarded store (PATH_MAX).
const MaxEnvPath = 4096

// MaxCallerFiles bounds the .env files one caller of a guarded store has on record: each
// is in the state, which every command reads, and only the caller side removes them.
const MaxCallerFiles = 32

// callerFileRoom refuses another .env file for uid when it has MaxCallerFiles on record
// (a file written again at the same path, with --force, replaces its record).
func (tx *Tx) callerFileRoom(uid int, path string) error {
	// Records are a caller's own (path and uid): another user's at the same path is
	// neither touched by this one nor in its way.
	n := 0
	for _, r := range tx.state.EnvFiles {
		if r.UID != nil && *r.UID == uid && r.Path != path {
			n++
		}
	}
	if n >= MaxCallerFiles {
		return fixed{Usagef("%d .env files of yours are on record already", n), "remove the ended ones with secrets cleanup (and end the others with secrets cleanup --all)"}
	}
	return nil
}

// activeIDs are the ids of the active leases.
func (tx *Tx) activeIDs() (map[string]bool, error) {
	live, err := tx.active()
	if err != nil {
		return nil, err
	}
	active := make(map[string]bool, len(live))
	for _, l := range live {
		active[l.ID] = true
	}
	return active, nil
}

// dropEnvFile forgets the record of a managed file that is gone: the one at path that uid
// wrote (nil: a file of the store's own user), never another user's at the same path.
func (tx *Tx) dropEnvFile(path string, uid *int) {
	tx.state.EnvFiles = slices.DeleteFunc(tx.state.EnvFiles, func(r envfile.Record) bool { return r.Path == path && sameUID(r.UID, uid) })
}

func sameUID(a, b *int) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

// ErrPathInStore reports a file we would write for a project that lies in the store's
// own directories: a .env written over identity.age would lose every secret.
var ErrPathInStore = errors.New("path inside the store")

// outsideStore refuses path when it, or the directory it would be written in once
// symlinks are resolved, is inside one of the store's directories.
func (v *Vault) outsideStore(path string) error {
	dirs := []string{v.o.Dir, v.o.StateDir}
	within := func(p string) bool {
		for _, d := range dirs {
			if d == "" {
				continue
			}
			cands := []string{filepath.Clean(d)}
			if real, err := filepath.EvalSymlinks(d); err == nil {
				cands = append(cands, real)
			}
			for _, c := range cands {
				if p == c || strings.HasPrefix(p, c+string(filepath.Separator)) {
					return true
				}
			}
		}
		return false
	}
	clean := filepath.Clean(path)
	parent := filepath.Dir(clean)
	if real, err := filepath.EvalSymlinks(parent); err == nil {
		parent = real
	}
	if within(clean) || within(parent) || within(filepath.Join(parent, filepath.Base(clean))) {
		return fixed{fmt.Errorf("%w: %s is in the store's directory; secrets never writes a project file there", ErrPathInStore, path), "write the .env file in the project: --output .env"}
	}
	return nil
}
