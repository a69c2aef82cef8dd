package vault

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/internal/safefile"
	"github.com/agent-secrets/secrets/killswitch"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/store"
)

// A transaction follows DESIGN.md section 1, in the shape of bbolt's: the caller hands
// Update or View a function, and the vault does everything around it, so no use case can
// forget to commit, commit twice, write in a read, or release a value before its audit
// entry is durable.
//
//	Update: lock → load the state → check the log → prune expired leases → fn → commit
//	        (entries appended and fsynced, then leases.age and secrets.age renamed into
//	        place) → release the lock → the OnCommit work.
//	View:   lock → load → check (a damaged log is reported, not refused) → fn → release;
//	        it prunes nothing and writes nothing but the audit stamp.
//
// fn returning an error commits nothing, so no file changes; the one exception is a
// request fn refused with Deny, whose refusal is itself recorded.

// mode says what a transaction may do.
type mode uint8

const (
	// write may append; it refuses a damaged log and prunes expired leases.
	write mode = 1 << iota
	// damaged lets a write open a damaged log: for audit --verify, which records what it
	// found, and audit --reset, which starts a new log. They read the whole log
	// themselves, so the transaction does not verify it first.
	damaged
	// withSecrets decrypts secrets.age beside leases.age, for a use case that will need
	// it; the transaction fails before anything happens when it cannot be read.
	withSecrets
)

// Tx is one transaction: one hold of the store lock. It is used only inside the
// function given to Update or View, and only by that function's goroutine.
type Tx struct {
	v     *Vault
	mode  mode
	st    *store.Store
	now   time.Time
	state *State
	log   *audit.Log
	head  audit.Head
	mgr   lease.Manager

	// client is the request's client id: the default for every entry recorded.
	client string

	secrets    *store.Secrets
	secretsErr error

	pending      []audit.Entry
	secretsDirty bool  // secrets.age changed
	stateDirty   bool  // leases.age changed with no entry to record (a healthy heartbeat)
	denied       bool  // fn refused the request and recorded why: commit anyway
	broken       error // the audit log is damaged: nothing may be appended
	unstamped    bool  // the log was verified in full here but is not stamped yet
	torn         bool  // a View found a torn last line, which only a write may cut
	onCommit     []func()
}

// Update runs fn in a transaction that may change the store, and commits what fn did
// unless it returned an error (other than one from Deny). It fails before fn runs when
// the store cannot be opened or its audit log is damaged (audit.ErrTampered), so nothing
// is handed out against a log that cannot record it. After the commit and the release of
// the lock, the OnCommit functions run in order.
func (v *Vault) Update(ctx context.Context, fn func(*Tx) error) error {
	client, err := v.client("")
	if err != nil {
		return err
	}
	return v.update(ctx, write, client, fn)
}

// View runs fn in a read-only transaction. It opens on a damaged audit log, so that
// status and audit can report it, prunes nothing, and writes nothing but the audit stamp.
// A use case that must record what it showed runs in Update.
func (v *Vault) View(ctx context.Context, fn func(*Tx) error) error {
	return v.update(ctx, 0, "", fn)
}

// update runs fn in a transaction of mode m for the request's client (already resolved
// by the use case with Vault.client).
func (v *Vault) update(ctx context.Context, m mode, client string, fn func(*Tx) error) error {
	st, err := store.Open(ctx, v.storeOptions())
	if err != nil {
		return err
	}
	tx, err := v.begin(st, m, client)
	if err != nil {
		st.Close()
		return err
	}
	return tx.close(fn(tx))
}

// begin loads the state and checks the audit log against its pinned head, and for a
// write prunes. st is open and locked; on error the caller closes it.
func (v *Vault) begin(st *store.Store, m mode, client string) (*Tx, error) {
	tx := &Tx{v: v, mode: m, st: st, now: v.o.Now(), client: client}
	var decrypted chan struct{}
	if m&withSecrets != 0 {
		decrypted = make(chan struct{})
		go func() {
			defer close(decrypted)
			tx.secrets, tx.secretsErr = st.LoadSecrets()
		}()
	}
	state, err := readState(st)
	if decrypted != nil {
		// A use case that needs the secrets fails here when they cannot be read, as when
		// leases.age cannot: before the log is touched or anything is pruned, so nothing
		// changes (a leases.age failure is reported first).
		<-decrypted
		if err == nil {
			err = tx.secretsErr
		}
	}
	if err != nil {
		return nil, err
	}
	tx.state = state
	if err := tx.load(); err != nil {
		return nil, err
	}
	return tx, nil
}

// load checks the audit log against the state's pin and, for a write, repairs a torn
// last line and prunes.
func (tx *Tx) load() error {
	st, state := tx.st, tx.state
	cfg := st.Config()
	tx.mgr = lease.Manager{Now: tx.Now, DefaultTTL: time.Duration(cfg.DefaultLeaseTTL), MaxTTL: time.Duration(cfg.MaxLeaseTTL)}
	tx.log = audit.New(st.Path(store.AuditFile), audit.Keys{Current: st.AuditKey()}, tx.Now)
	adopted := false
	if state.fresh && tx.writes() {
		var err error
		if adopted, err = tx.adoptLog(); err != nil {
			return err
		}
	}
	head, torn, err := tx.log.Check(tx.state.AuditHead)
	switch {
	case errors.Is(err, audit.ErrTampered):
		tx.broken = err
	case errors.Is(err, safefile.ErrInsecure):
		return err // a loose mode, as for any store file: its chmod is the fix
	case err != nil:
		return fmt.Errorf("%w: %w", audit.ErrFailed, err)
	}
	if tx.broken == nil && state.AuditBroken != "" {
		tx.broken = recordedTamper(state.AuditBroken)
	}
	switch {
	case adopted: // tx.head is where adoptLog started the new log
	case tx.broken != nil:
		tx.head = tx.state.AuditHead // what was pinned, never the head of a damaged log
	default:
		tx.head = head
	}
	if tx.broken == nil && tx.mode&damaged == 0 && !tx.log.Stamped(st.LockNote(), head) {
		// Written since the last transaction stamped it (or never stamped): Check saw
		// only the end, so read all of it before anything is appended or trusted.
		switch _, err := tx.log.Verify(head); {
		case errors.Is(err, audit.ErrTampered):
			tx.broken = err
		case err != nil:
			return fmt.Errorf("%w: %w", audit.ErrFailed, err)
		default:
			tx.unstamped = !state.fresh // an unpinned log is not ours to stamp yet
		}
	}
	if tx.broken != nil {
		if tx.mode&write != 0 && tx.mode&damaged == 0 {
			return tx.broken
		}
		return nil
	}
	if torn > 0 {
		if !tx.writes() {
			tx.torn, tx.unstamped = true, false
			return nil
		}
		repair, err := tx.log.CutTorn(torn)
		if err != nil {
			return fmt.Errorf("%w: %w", audit.ErrFailed, err)
		}
		tx.Record(audit.Entry{Event: "repair", OK: true,
			Detail: fmt.Sprintf("cut a torn last line of %d bytes; the log as found is kept at %s", repair.Dropped, repair.Backup)})
	}
	if tx.mode&write != 0 && tx.mode&damaged == 0 {
		tx.End(tx.mgr.Expire(&tx.state.Leases), "lease_expire", "expired")
	}
	return nil
}

func (tx *Tx) writes() bool { return tx.mode&write != 0 }

// close ends the transaction with fn's result: it commits when fn succeeded or recorded
// a denial, stamps the log, releases the lock and then runs the OnCommit work. A store
// error (a file that would not decrypt) commits nothing, so no file changes.
func (tx *Tx) close(err error) error {
	if tx.writes() && (err == nil || tx.denied) {
		if cerr := tx.commit(); cerr != nil {
			tx.st.Close()
			return cerr
		}
	}
	if err == nil && tx.unstamped {
		tx.stamp() // a transaction that wrote nothing still spares the next one the full read
	}
	tx.st.Close()
	if err != nil {
		return err
	}
	for _, fn := range tx.onCommit {
		fn()
	}
	return nil
}

// Now returns the transaction's time, read once when it began: every entry, grant and
// expiry in one transaction agrees on it.
func (tx *Tx) Now() time.Time { return tx.now }

// State returns the lease state. A use case changes it in place; Update commits it.
func (tx *Tx) State() *State { return tx.state }

// Secrets returns the decrypted secrets, read once per transaction on first use. It never
// returns an empty store for a file that failed (store.ErrDecrypt, store.ErrCorrupt).
func (tx *Tx) Secrets() (*store.Secrets, error) {
	if tx.secrets == nil && tx.secretsErr == nil {
		tx.secrets, tx.secretsErr = tx.st.LoadSecrets()
	}
	return tx.secrets, tx.secretsErr
}

// Record queues an audit entry, stamped with the actor, the transaction's time and (when
// it names none) the request's client id. Update appends it at commit. Recording in a
// View is a programming error.
func (tx *Tx) Record(e audit.Entry) {
	if !tx.writes() {
		panic("vault: Record in a read-only transaction")
	}
	e.Actor = tx.v.actor
	if e.ClientID == "" {
		e.ClientID = tx.client
	}
	if e.TS.IsZero() {
		e.TS = tx.now
	}
	tx.pending = append(tx.pending, e)
}

// Deny records a refused request (with its stable error code) and returns err, for fn to
// return: the transaction still commits, so the refusal is in the log although the
// request fails.
func (tx *Tx) Deny(e audit.Entry, err error) error {
	e.OK = false
	e.Code = Code(err)
	tx.Record(e)
	tx.denied = true
	return err
}

// End is the one path that ends leases, whatever ended them (revoke, expiry, rotation,
// rm, cleanup, the killswitch): the lease package decides which leases end and takes them
// out of the state; End records each with event and reason and applies what ending it
// means outside the store (its .env file removed, its exec supervisor signalled), and
// likewise for the other leases a removed file held. It returns the effects, which are
// recorded too.
//
// The effects happen here, before the commit forgets the leases. Were the commit first, a
// crash between it and the removal would leave a value on disk that no record points to
// any more, which nothing would ever clean up; in this order a crash leaves a record of a
// file already gone, which the next command drops, and a supervisor told early checks the
// store and finds its lease still there until the commit lands.
func (tx *Tx) End(ended []lease.Lease, event, reason string) []killswitch.Effect {
	var all []killswitch.Effect
	for len(ended) > 0 {
		for _, l := range ended {
			tx.Record(audit.Entry{Event: event, Secret: l.Secret, LeaseID: l.ID, ClientID: l.ClientID, OK: true, Detail: reason})
		}
		more, effects := killswitch.End(&tx.state.Leases, &tx.state.EnvFiles, ended)
		tx.effects(effects)
		all = append(all, effects...)
		ended, event, reason = more, "lease_revoke", "its .env file was removed"
	}
	return all
}

// effects records what the killswitch package did outside the store.
func (tx *Tx) effects(effects []killswitch.Effect) {
	for _, e := range effects {
		detail := e.Detail
		if e.Path != "" {
			detail = e.Path + ": " + e.Detail
		}
		tx.Record(audit.Entry{Event: e.Event, LeaseID: e.LeaseID, OK: e.OK, Detail: detail})
	}
}

// OnCommit adds fn to the work done after the transaction has committed and released the
// lock (a canary's killswitch, which takes the lock itself). It does not run when the
// transaction fails.
func (tx *Tx) OnCommit(fn func()) { tx.onCommit = append(tx.onCommit, fn) }

// Checkpoint makes everything recorded so far durable, as a commit would, without
// releasing the lock: for a use case that must let something leave the store only once
// its grant is durable (a .env file written, the store shredded) and then record what
// happened, all under one hold of the lock.
func (tx *Tx) Checkpoint() error { return tx.commit() }

// commit makes the transaction durable. The audit entries are sealed first, so leases.age
// can pin the new head; then the audit append (write, fsync) runs while the documents are
// encrypted and staged, and only once the append is durable are they renamed into place.
// If the append fails nothing is released. Nothing is written when nothing happened.
func (tx *Tx) commit() error {
	if len(tx.pending) == 0 && !tx.secretsDirty && !tx.stateDirty {
		return nil
	}
	if tx.broken != nil {
		// Only audit --verify writes to a damaged log's store: the finding, in leases.age,
		// with the pin as it was, so that nothing it did can make the damage fit.
		if len(tx.pending) > 0 || tx.secretsDirty {
			return tx.broken
		}
		plain, err := encodeState(tx.state)
		if err != nil {
			return fmt.Errorf("encode %s: %w", store.LeasesFile, err)
		}
		return tx.st.Save(store.Commit{State: plain}, nil)
	}
	batch, head, err := tx.log.Prepare(tx.head, tx.pending...)
	if err != nil {
		return err
	}
	tx.state.AuditHead = head
	plain, err := encodeState(tx.state)
	if err != nil {
		return fmt.Errorf("encode %s: %w", store.LeasesFile, err)
	}
	c := store.Commit{State: plain}
	if tx.secretsDirty {
		if !tx.st.HasStoreKey() {
			if err := tx.st.CreateStoreKey(); err != nil {
				return err
			}
		}
		tx.secrets.Generation++
		c.Secrets = tx.secrets
	}
	appended := false // set by the gate, which Save has finished with before it returns
	gate := func() error {
		err := batch.Write()
		appended = err == nil
		return err
	}
	if err := tx.st.Save(c, gate); err != nil {
		if appended && len(tx.pending) > 0 {
			// The entries are durable but what they describe was not written (a full disk):
			// say so in the log, which must not claim what did not happen.
			tx.log.Append(head, audit.Entry{Event: "commit_failed", Code: Code(err), Actor: tx.v.actor, ClientID: tx.client, TS: tx.now,
				Detail: fmt.Sprintf("seq %d-%d above were recorded but not applied: %v", tx.pending[0].Seq, head.Seq, err)})
		}
		return err
	}
	tx.head, tx.pending, tx.secretsDirty, tx.stateDirty = head, nil, false, false
	tx.state.fresh = false
	tx.stamp()
	return nil
}

// stamp records the log file as this transaction leaves it, so the next one can tell that
// nothing else wrote it without reading it all (audit.Log.Stamp). It is best effort: a
// stamp that cannot be written only costs the next command a full read.
func (tx *Tx) stamp() {
	if tx.torn || tx.state.fresh || tx.broken != nil {
		return
	}
	if b, err := tx.log.Stamp(tx.head); err == nil && tx.st.SetLockNote(b) == nil {
		tx.unstamped = false
	}
}

// recordedTamper is a finding of `secrets audit --verify`, read back from leases.age.
type recordedTamper string

func (e recordedTamper) Error() string        { return string(e) + " (found by secrets audit --verify)" }
func (e recordedTamper) Is(target error) bool { return target == audit.ErrTampered }

// adoptLog handles a store with no leases.age (written by the earlier tool, or one whose
// leases.age was lost): a log that no head pins cannot be trusted, so it is moved aside,
// kept, and the new log's first entry says so. Only a write does this.
func (tx *Tx) adoptLog() (bool, error) {
	fi, err := os.Lstat(tx.log.Path())
	if errors.Is(err, fs.ErrNotExist) || err == nil && fi.Size() == 0 {
		return false, nil
	}
	moved, _, start, err := tx.log.Reset()
	if err != nil {
		return false, fmt.Errorf("%w: move aside unpinned log: %w", audit.ErrFailed, err)
	}
	tx.head = start
	tx.state.AuditHead = start
	tx.Record(audit.Entry{Event: audit.EventReset, OK: true,
		Detail: fmt.Sprintf("no leases.age pinned the existing log; it was moved to %s (%s)", moved, start.Hash)})
	return true, nil
}

// active returns the leases that have not expired at the transaction's time, without
// pruning (a View writes nothing).
func (tx *Tx) active() []lease.Lease {
	out := make([]lease.Lease, 0, len(tx.state.Leases))
	for _, l := range tx.state.Leases {
		if l.ExpiresAt.After(tx.now) {
			out = append(out, l)
		}
	}
	return out
}
