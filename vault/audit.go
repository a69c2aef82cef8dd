package vault

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/internal/duration"
)

// AuditInput selects audit entries.
type AuditInput struct {
	Tail     int    // how many of the last matching entries
	Secret   string // only entries for this secret
	ClientID string // only entries by this client
	Event    string // only this event
	Since    string // only entries newer than a duration ago (1h) or an RFC 3339 time
}

// AuditResult is entries, oldest first.
type AuditResult struct {
	Entries []audit.Entry `json:"entries"`
	Count   int           `json:"count"`
}

// Audit returns the newest entries that match, read from the end of the log.
func (v *Vault) Audit(ctx context.Context, in AuditInput) (*AuditResult, error) {
	if in.Tail < 1 {
		return nil, Usagef("--tail must be at least 1")
	}
	f := audit.Filter{Secret: in.Secret, ClientID: in.ClientID, Event: in.Event}
	if c := v.o.Caller; c != nil {
		f.UID = &c.UID // an agent user of a guarded store reads its own entries
	}
	var out *AuditResult
	err := v.View(ctx, func(tx *Tx) error {
		if in.Since != "" {
			t, err := since(in.Since, tx.now)
			if err != nil {
				return err
			}
			f.Since = t
		}
		entries, err := tx.log.Tail(in.Tail, f)
		if err != nil {
			return err
		}
		if v.o.Caller != nil {
			for i := range entries {
				if entries[i].Event == "killswitch" && strings.Contains(entries[i].Detail, "canary ") {
					entries[i].Detail = "canary: a canary secret was handed out" // not which
				}
				entries[i].State = nil // the owner's document, not the caller's
			}
		}
		out = &AuditResult{Entries: entries, Count: len(entries)}
		return nil
	})
	return out, err
}

// since reads --since: a duration before now, or an RFC 3339 time.
func since(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := duration.Positive(s)
	if err != nil {
		return time.Time{}, Usagef("--since: %v, or an RFC 3339 time", err)
	}
	return now.Add(-d), nil
}

// VerifyResult is a log that verified.
type VerifyResult struct {
	Valid   bool       `json:"valid"`
	Entries uint64     `json:"entries"`
	Head    audit.Head `json:"head"`
	Pinned  audit.Head `json:"pinned"`
}

// Verify reads the whole log and checks every line's MAC and chain link against the
// pinned head. What it finds is recorded in leases.age, so every later command that would
// append refuses until a reset, even where its O(1) head check cannot see the damage; a
// finding that no longer holds (the log was restored from a backup) is lifted. A damaged
// log is an error matching audit.ErrTampered, naming the first bad seq.
func (v *Vault) Verify(ctx context.Context) (*VerifyResult, error) {
	client, err := v.client("")
	if err != nil {
		return nil, err
	}
	var out *VerifyResult
	var done *Tx
	var tamper error
	err = v.update(ctx, write|damaged, client, func(tx *Tx) error {
		done = tx
		rep, err := tx.verify()
		var te *audit.TamperError
		if err != nil && !errors.As(err, &te) {
			return err
		}
		found := ""
		if te != nil {
			found = te.Error()
		}
		if found != tx.state.AuditBroken {
			tx.state.AuditBroken = found
			tx.stateDirty = true
		}
		if te != nil {
			tx.broken, tamper = err, err // commit the finding as a damaged log's, then report it
			return nil
		}
		tx.broken, tx.restamp = nil, true // read in full and sound: stamp it
		out = &VerifyResult{Valid: true, Entries: rep.Entries, Head: rep.Head}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if tamper != nil {
		return nil, tamper
	}
	// The log as the command leaves it: a torn line it cut is recorded after the lines
	// it verified.
	head := done.head
	out.Entries += head.Seq - out.Head.Seq
	out.Head, out.Pinned = head, head
	return out, nil
}

// ResetResult is a log moved aside and started anew.
type ResetResult struct {
	Reset          bool   `json:"reset"`
	MovedTo        string `json:"moved_to"`
	PreviousSHA256 string `json:"previous_sha256"`
	Reason         string `json:"reason"`
}

// Reset moves a damaged log aside (kept, never deleted) and starts a new one whose first
// entry records the break, its reason and the old log's sha256. It verifies first, so the
// entry names the damage as it is now, and refuses to reset a log that verifies: that
// would only hide history.
func (v *Vault) Reset(ctx context.Context) (*ResetResult, error) {
	client, err := v.client("")
	if err != nil {
		return nil, err
	}
	var out *ResetResult
	err = v.update(ctx, write|damaged, client, func(tx *Tx) error {
		_, verr := tx.verify()
		if verr == nil {
			return Usagef("the audit log verifies; --reset is only for a damaged log (run secrets audit --verify to clear an earlier finding)")
		}
		if !errors.Is(verr, audit.ErrTampered) {
			return verr
		}
		reason := verr.Error()
		moved, err := tx.restartLog(reason)
		if err != nil {
			return err
		}
		start := tx.head
		if tx.legacy {
			if err := tx.convert(); err != nil {
				return err
			}
		}
		out = &ResetResult{Reset: true, MovedTo: moved, PreviousSHA256: start.Hash, Reason: reason}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LogRotated is the segment audit --rotate sealed.
type LogRotated struct {
	Sealed string `json:"sealed"`
	First  uint64 `json:"first_seq"`
	Last   uint64 `json:"last_seq"`
}

// RotateLog seals the log's current segment (kept, read-only, chained to the next) and
// starts a new one, with a snapshot at the seal, so replay never reads the sealed part.
// audit --verify follows the whole chain.
func (v *Vault) RotateLog(ctx context.Context) (*LogRotated, error) {
	client, err := v.client("")
	if err != nil {
		return nil, err
	}
	var out *LogRotated
	err = v.update(ctx, write, client, func(tx *Tx) error {
		tx.sealLog = true
		tx.Record(audit.Entry{Event: "audit_rotate", OK: true, Detail: "secrets audit --rotate: sealed, a new segment starts"})
		tx.OnCommit(func() { out = &LogRotated{Sealed: tx.sealed.Path, First: tx.sealed.First, Last: tx.sealed.Last} })
		return nil
	})
	return out, err
}
