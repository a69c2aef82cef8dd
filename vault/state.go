package vault

import (
	"slices"
	"strings"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/envfile"
	"github.com/agent-secrets/secrets/killswitch"
	"github.com/agent-secrets/secrets/lease"
)

// The state is a snapshot plus the log after it (DESIGN.md section 5). leases.age holds
// the snapshot: what the state was at a Position of the log, MAC'd under the store key.
// Every change of state is also an entry that carries what replay needs, so a command
// reads the snapshot, reads on from its Position and applies what it finds. A lease, a
// renew or a revoke appends its entries and writes no other file; the snapshot is
// rewritten (compacted) when the entries after it pass a bound, and at once on a security
// event, so that cutting the log back cannot undo a lockdown or a revoke --all. An older
// snapshot put back loses nothing: replay covers the gap.

// State is the content of leases.age, version 3: the header fields, then the leases. The
// leases are written in order of expiry, so that the ones that have expired are read
// from the front of the file without the rest (see leaseTable).
type State struct {
	Version  int    `json:"version"`
	StoreKey string `json:"store_key"`
	// KeyCache is the store key, wrapped under a key derived from the identity and the
	// bytes of store.key.age (store.KeyCache): a command that finds store.key.age as it
	// was opens the store key without a second age decryption.
	KeyCache string         `json:"store_key_cache,omitempty"`
	Position audit.Position `json:"position"`
	// AuditKeySince is the last seq of the log written under the key of a release before
	// the store key: the entry that recorded the conversion. 0 when there is none.
	AuditKeySince uint64 `json:"audit_key_since,omitempty"`
	// SecretsGeneration is the generation of secrets.age the log last recorded; an older
	// secrets.age put back is refused as a rollback.
	SecretsGeneration uint64 `json:"secrets_generation"`
	// AuditBroken is set when a full verification found the log damaged; every command that
	// would append refuses until `secrets audit --reset --yes`.
	AuditBroken string `json:"audit_broken,omitempty"`
	// EnvFiles are the .env files secrets env wrote and has not removed yet.
	EnvFiles []envfile.Record `json:"env_files,omitempty"`
	// Lockdown is set by the killswitch; lease, env and exec refuse until secrets unlock.
	Lockdown *killswitch.Lockdown `json:"lockdown,omitempty"`
	// Heartbeat is what secrets watch has seen.
	Heartbeat *killswitch.Heartbeat `json:"heartbeat,omitempty"`
	// Witness is what the heartbeat endpoint has said of the log's head.
	Witness *Witness `json:"witness,omitempty"`
	// ResetFrom is the last valid head of the log the last audit_reset replaced: a witness
	// head up to it belongs to that log.
	ResetFrom audit.Head `json:"reset_from,omitzero"`
	// Sealed pins the log's sealed segments (audit --rotate), oldest first: each command
	// checks they are all there at their size, audit --verify that each ends where sealed.
	Sealed []SealedPin `json:"sealed,omitempty"`
	// AppliedIntent is the id of the last killswitch.intent the state took in, so that
	// one is applied once.
	AppliedIntent string `json:"applied_intent,omitempty"`
	// Uses counts the leases of each value whose policy limits them (max_uses), on this
	// machine: the policy is shared, its counters are local (DESIGN.md section 11).
	Uses map[string]UseCount `json:"uses,omitempty"`
	// Requests are the approval requests not yet expired: pending, approved or denied.
	Requests []Approval `json:"requests,omitempty"`
	// Config is config.json as last applied: the values that hold until a change that
	// weakens a control is applied with secrets config apply.
	Config *AppliedConfig `json:"config,omitempty"`
	// Pruner is when a watch last pruned, and how often it does.
	Pruner *Pruner `json:"pruner,omitempty"`
	// Rotations are the rotations whose hooks run now.
	Rotations []Rotation `json:"rotations,omitempty"`
	// HookChanges are the latest changes of a rotation or verify hook, newest last.
	HookChanges []HookChange `json:"hook_changes,omitempty"`
	// Converted records the conversion of a store from an older release.
	Converted *Conversion `json:"converted,omitempty"`
	// Count and NextExpiry describe the leases below: how many, and the earliest expiry.
	Count      int       `json:"count"`
	NextExpiry time.Time `json:"next_expiry"`
	// BodySHA256 is the hash of the part of the file after the header line.
	BodySHA256 string `json:"body_sha256"`
	MAC        string `json:"mac"`
	// Leases are the active leases of the snapshot. In a transaction they are read only
	// when needed (Tx.Leases); use the transaction's methods, not this field.
	Leases []lease.Lease `json:"leases"`
}

// StateVersion is the leases.age format this binary writes.
const StateVersion = 3

// Witness is the log head the heartbeat endpoint saw, as it last said.
type Witness struct {
	Seen     audit.Head `json:"seen"`
	Checked  time.Time  `json:"checked"`
	Rollback string     `json:"rollback,omitempty"` // why the head it saw does not fit ours
	Silent   bool       `json:"silent,omitempty"`   // its last answer carried no head
}

// SealedPin is a sealed segment of the log as it was sealed: its size, and the hash of its
// last line, which the chain's MACs and links bind every byte before it to.
type SealedPin struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	Last string `json:"last"`
}

// Conversion records when a store of an older release got its store key.
type Conversion struct {
	From string    `json:"from"` // "secrets v2" or "agent-secrets v1"
	At   time.Time `json:"at"`
	Seq  uint64    `json:"seq"`
}

// leaseTable is the active leases: those of the snapshot (its body, in order of expiry,
// read only when needed) and the changes since (the log's tail, then this transaction).
// A lease needs none of the body; pruning reads only its expired front; a command that
// needs every lease (leases, status, revoke --all, a compaction) reads it all once.
type leaseTable struct {
	body func(until time.Time) ([]lease.Lease, error) // the snapshot's leases, while unread
	// expiry is the earliest expiry of the snapshot's leases (their order in the file).
	expiry time.Time

	all     []lease.Lease // every lease, once read; nil before
	read    bool
	added   []lease.Lease          // granted since the snapshot, while not read
	gone    map[string]bool        // ended since the snapshot, while not read
	renewed map[string]lease.Lease // snapshot leases renewed since, while not read
}

func newTable(body func(time.Time) ([]lease.Lease, error), expiry time.Time) *leaseTable {
	return &leaseTable{body: body, expiry: expiry, gone: map[string]bool{}, renewed: map[string]lease.Lease{}}
}

// load reads the snapshot's leases and folds the changes into them.
func (t *leaseTable) load() error {
	if t.read {
		return nil
	}
	var base []lease.Lease
	if t.body != nil {
		b, err := t.body(time.Time{})
		if err != nil {
			return err
		}
		base = b
	}
	all := make([]lease.Lease, 0, len(base)+len(t.added))
	for _, l := range base {
		if t.gone[l.ID] {
			continue
		}
		if r, ok := t.renewed[l.ID]; ok {
			l = r
		}
		all = append(all, l)
	}
	all = append(all, t.added...)
	// Leases are listed in the order they were granted: their ids are ULIDs.
	slices.SortFunc(all, func(a, b lease.Lease) int { return strings.Compare(a.ID, b.ID) })
	t.all, t.read = all, true
	t.added, t.gone, t.renewed = nil, nil, nil
	return nil
}

// grant adds a new lease.
func (t *leaseTable) grant(l lease.Lease) {
	if t.read {
		t.all = append(t.all, l)
		return
	}
	t.added = append(t.added, l)
}

// find returns the active lease id, reading the snapshot's leases when it is not a lease
// of the changes.
func (t *leaseTable) find(id string) (lease.Lease, bool, error) {
	if !t.read {
		if i := slices.IndexFunc(t.added, func(l lease.Lease) bool { return l.ID == id }); i >= 0 {
			return t.added[i], true, nil
		}
		if l, ok := t.renewed[id]; ok {
			return l, true, nil
		}
		if t.gone[id] {
			return lease.Lease{}, false, nil
		}
		if err := t.load(); err != nil {
			return lease.Lease{}, false, err
		}
	}
	i := slices.IndexFunc(t.all, func(l lease.Lease) bool { return l.ID == id })
	if i < 0 {
		return lease.Lease{}, false, nil
	}
	return t.all[i], true, nil
}

// take removes the active lease id and returns it.
func (t *leaseTable) take(id string) (lease.Lease, bool, error) {
	l, ok, err := t.find(id)
	if !ok || err != nil {
		return l, ok, err
	}
	t.drop(id)
	return l, true, nil
}

// drop ends lease id whether or not it is known here (replay of an end needs no record).
func (t *leaseTable) drop(id string) {
	if t.read {
		t.all = slices.DeleteFunc(t.all, func(l lease.Lease) bool { return l.ID == id })
		return
	}
	if i := slices.IndexFunc(t.added, func(l lease.Lease) bool { return l.ID == id }); i >= 0 {
		t.added = slices.Delete(t.added, i, i+1)
		return
	}
	delete(t.renewed, id)
	t.gone[id] = true
}

// put replaces the record of an active lease (a renewal).
func (t *leaseTable) put(l lease.Lease) {
	if t.read {
		if i := slices.IndexFunc(t.all, func(x lease.Lease) bool { return x.ID == l.ID }); i >= 0 {
			t.all[i] = l
		}
		return
	}
	if i := slices.IndexFunc(t.added, func(x lease.Lease) bool { return x.ID == l.ID }); i >= 0 {
		t.added[i] = l
		return
	}
	if !t.gone[l.ID] {
		t.renewed[l.ID] = l
	}
}

// expired returns the leases whose expiry is at or before now, reading of the snapshot's
// leases only those at its front that have.
func (t *leaseTable) expired(now time.Time) ([]lease.Lease, error) {
	over := func(l lease.Lease) bool { return !l.ExpiresAt.After(now) }
	if t.read {
		var out []lease.Lease
		for _, l := range t.all {
			if over(l) {
				out = append(out, l)
			}
		}
		return out, nil
	}
	var out []lease.Lease
	if t.body != nil && !t.expiry.IsZero() && !t.expiry.After(now) {
		front, err := t.body(now)
		if err != nil {
			return nil, err
		}
		for _, l := range front {
			if _, renewed := t.renewed[l.ID]; !renewed && !t.gone[l.ID] && over(l) {
				out = append(out, l)
			}
		}
	}
	for _, l := range t.renewed {
		if !t.gone[l.ID] && over(l) {
			out = append(out, l)
		}
	}
	for _, l := range t.added {
		if over(l) {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b lease.Lease) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// leases returns every active lease, in the order they were granted.
func (t *leaseTable) leases() ([]lease.Lease, error) {
	if err := t.load(); err != nil {
		return nil, err
	}
	return t.all, nil
}
