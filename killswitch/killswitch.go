// Package killswitch cuts access. End applies what ending a lease means outside the
// store, whatever ended it (revoke, revoke --all, expiry, rm, cleanup): the .env file
// that holds the value is removed, and the secrets exec supervisor whose child holds it
// is told, so that it stops the child. The lease package decides which leases end; the
// caller records the effects End returns.
package killswitch

import (
	"errors"
	"os"
	"strconv"

	"github.com/agent-secrets/secrets/envfile"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/supervisor"
)

// Effect is one thing End did, for the audit log.
type Effect struct {
	Event   string // env_remove, env_kept, env_remove_due, exec_signal, exec_gone
	LeaseID string
	Path    string
	UID     *int // whose file Path is (Record.UID)
	Detail  string
	OK      bool
}

// End applies the effects of the ended leases, which the caller has already taken out of
// its leases. A .env file (of files) holding an ended lease's value is removed if it still
// has the bytes secrets wrote, and its record dropped; a file someone changed is left, its
// record kept for secrets cleanup to report. The other leases such a file held end with
// it: End takes each out with take (which reports whether it was still active) and
// returns them, for the caller to record and pass to End again. A caller's file in a
// guarded store (Record.UID) is not this process's to open: its record is kept, due for
// the caller side to remove (secrets cleanup there).
func End(take func(id string) (lease.Lease, bool), files *[]envfile.Record, ended []lease.Lease) (more []lease.Lease, effects []Effect) {
	gone := map[string]bool{}
	signalled := map[int]bool{}
	for _, l := range ended {
		gone[l.ID] = true
		// A lease held by this very process (a supervisor ending its own) needs no notice.
		if l.Supervised() && l.PID != os.Getpid() && !signalled[l.PID] {
			signalled[l.PID] = true
			e := notify(l.PID, l.PIDStart)
			e.LeaseID = l.ID
			effects = append(effects, e)
		}
	}
	kept := (*files)[:0]
	for _, rec := range *files {
		hit := ""
		for _, id := range rec.LeaseIDs {
			if gone[id] {
				hit = id
				break
			}
		}
		if hit == "" {
			kept = append(kept, rec)
			continue
		}
		e, keep := Effect{Event: "env_remove_due", Path: rec.Path, UID: rec.UID, OK: true, Detail: "its leases ended; the caller side removes it"}, true
		if rec.UID == nil {
			e, keep = RemoveFile(rec)
		}
		e.LeaseID = hit
		effects = append(effects, e)
		if keep {
			kept = append(kept, rec)
		}
		for _, id := range rec.LeaseIDs {
			if !gone[id] {
				if l, ok := take(id); ok {
					more = append(more, l)
					gone[id] = true
				}
			}
		}
	}
	clear((*files)[len(kept):])
	*files = kept
	return more, effects
}

// RemoveFile removes one managed .env file and says whether its record must be kept
// (the file was changed by someone, or could not be removed).
func RemoveFile(rec envfile.Record) (Effect, bool) {
	e := Effect{Event: "env_remove", Path: rec.Path, OK: true}
	outcome, err := envfile.Remove(rec)
	switch {
	case err != nil:
		e.OK, e.Detail = false, err.Error()
		return e, true
	case outcome == envfile.Modified:
		e.Event, e.Detail = "env_kept", "changed since secrets wrote it; left in place"
		return e, true
	case outcome == envfile.Gone:
		e.Detail = "already deleted"
	default:
		e.Detail = "removed"
	}
	return e, false
}

// notify tells the supervisor of an exec lease that it may have ended.
func notify(pid int, start uint64) Effect {
	e := Effect{Event: "exec_signal", OK: true, Detail: "supervisor pid " + strconv.Itoa(pid)}
	switch err := supervisor.Notify(pid, start); {
	case errors.Is(err, supervisor.ErrGone):
		e.Event, e.Detail = "exec_gone", e.Detail+" is no longer running"
	case err != nil:
		e.OK, e.Detail = false, e.Detail+": "+err.Error()
	}
	return e
}

// Stop ends the commands of the exec leases in ended outright, through their
// supervisors: for a killswitch that could write nothing a supervisor would check.
func Stop(ended []lease.Lease) {
	for _, l := range ended {
		if l.Supervised() && l.PID != os.Getpid() {
			supervisor.Stop(l.PID, l.PIDStart)
		}
	}
}
