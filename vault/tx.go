package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/envfile"
	names "github.com/agent-secrets/secrets/internal/name"
	"github.com/agent-secrets/secrets/internal/safefile"
	"github.com/agent-secrets/secrets/killswitch"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/policy"
	"github.com/agent-secrets/secrets/store"
)

// A transaction follows DESIGN.md sections 1 and 5, in the shape of bbolt's: the caller
// hands Update or View a function, and the vault does everything around it, so no use
// case can forget to commit, commit twice, write in a read, or release a value before its
// audit entry is durable.
//
//	Update: lock → the snapshot's header → check the log against the lock file's stamp →
//	        replay the entries after the snapshot → roll forward what a crash left → prune
//	        expired leases → fn → commit (the entries appended and fsynced; secrets.age,
//	        and the snapshot when it is due, renamed into place after) → stamp → release
//	        the lock → the OnCommit work.
//	View:   the same reads (a damaged log is reported, not refused), then fn, then
//	        release; it prunes nothing and writes nothing but the audit stamp.
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
	// withSecrets decrypts all of secrets.age before fn, for a use case that needs more
	// than one secret; the transaction fails before anything happens when it cannot.
	withSecrets
	// failsafe is for revoke --all and the killswitch, which cut access whatever the log:
	// a damaged one is read as far as it holds (the snapshot plus its valid prefix) and,
	// at commit, moved aside (kept) for a new log whose first entry says why.
	failsafe
)

// windowSize is how much of the log each command checks beyond what replay reads, so that
// an edit its stamp cannot see (a write through a shared mapping to a page that was
// already dirty leaves the change time alone) is found within segment size / windowSize
// commands. 16 KiB is about 60 lines: 0.1 ms.
const windowSize = 16 << 10

// securityEvents are pinned in the snapshot at once: cutting the log back to before one
// of them then needs an older snapshot too.
var securityEvents = map[string]bool{
	"killswitch": true, "unlock": true, "revoke_all": true, "canary_tripped": true,
	"audit_reset": true, "convert": true, "witness": true, "audit_rollback": true, "secrets_recovered": true,
}

// compactBound is how many entries may follow the snapshot before it is rewritten, for a
// snapshot of n leases: replay costs every command a few µs an entry, a rewrite costs
// about 0.5 ms plus 0.5 µs a lease, so the bound grows with n (BENCHMARKS.md).
func compactBound(n int) int { return min(16+n/256, 128) }

// Tx is one transaction: one hold of the store lock. It is used only inside the
// function given to Update or View, and only by that function's goroutine.
type Tx struct {
	v       *Vault
	mode    mode
	st      *store.Store
	now     time.Time
	state   *State
	table   *leaseTable
	snap    *snapshotFile
	log     *audit.Log
	keys    struct{ state, stamp []byte }
	mgr     lease.Manager
	cfg     store.Config // config.json as it holds (loadConfig)
	cfgHeld []string     // its keys held back until secrets config apply

	pin      audit.Head     // what pins the log's end: the stamp's head, else the snapshot's
	stampErr error          // the stamp was missing or changed
	head     audit.Head     // the last line of the log, as this transaction leaves it
	end      audit.Position // just after it
	tail     int            // entries after the snapshot, replayed or pending
	group    []replayed     // the lines of a commit read so far, not yet applied
	applied  audit.Position // just after the last commit replay applied
	cursor   int64          // where the next rolling check of the log starts
	legacy   bool           // an unconverted store, read (View) as the release before wrote it
	old      *legacy        // what such a store had

	// client is the request's client id: the default for every entry recorded.
	client string

	secrets      *store.Secrets
	secretsErr   error
	looked       map[string]*store.Secret // what lookup read, when secrets is not loaded
	lookedPolicy []byte                   // the default policy, as lookup read it
	rules        map[string]policy.Rule   // the rules read (Tx.rule)
	secretsPath  string                   // a staged secrets.age a View reads instead (findStagedSecrets)

	pending      []audit.Entry
	secretsDirty bool  // secrets.age changed
	stateDirty   bool  // the state changed in a way no entry replays (a healthy heartbeat): compact
	compact      bool  // rewrite the snapshot at commit
	denied       bool  // fn refused the request and recorded why: commit anyway
	broken       error // the audit log is damaged: nothing may be appended
	restamp      bool  // the stamp must be written again (the log was checked, or the cursor moved)
	torn         int   // bytes of a torn last line: a write cuts them, a View leaves them
	onCommit     []func()
	pruned       []killswitch.Effect // what ending the expired leases did at begin
	expired      []lease.Lease       // the leases that ended by expiry at begin

	// killswitch.intent (intent.go)
	ownIntent   string            // the intent this transaction's command wrote: it applies it itself
	intent      *Intent           // the intent applied, if any
	intentPaths []string          // the intent files this transaction claimed: removed after its commit
	intentOut   *KillswitchResult // what applying a killswitch intent did
	intentEnded []lease.Lease     // what applying a revoke_all intent ended

	sealLog bool          // seal the log's current segment with this commit (audit --rotate)
	sealed  audit.Segment // the segment sealed
	closers []io.Closer
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
	return v.updateWith(ctx, m, client, txOptions{}, fn)
}

// txOptions are what a few use cases change about a transaction.
type txOptions struct {
	lockTimeout time.Duration // 0: the store's
	ownIntent   string        // the killswitch.intent the command wrote and applies itself
	looseFiles  bool          // open as store.Options.Failsafe (implied by failsafe)
}

func (v *Vault) updateWith(ctx context.Context, m mode, client string, o txOptions, fn func(*Tx) error) error {
	so := v.storeOptions()
	if o.lockTimeout > 0 {
		so.LockTimeout = o.lockTimeout
	}
	so.Failsafe = m&failsafe != 0 || o.looseFiles
	st, err := store.Open(ctx, so)
	if err != nil {
		return err
	}
	for _, p := range st.Problems() {
		v.warn("%v; going on, since this command only cuts access", p)
	}
	tx, err := v.begin(st, m, client, o)
	if err != nil {
		if tx != nil {
			tx.release()
		} else {
			st.Close()
		}
		return err
	}
	return tx.close(fn(tx))
}

// begin reads the state and checks the log; for a write it also rolls forward what a
// crash left, removes dead temp files, cuts a torn last line and prunes. On error the
// caller releases the store (through the returned Tx when there is one).
func (v *Vault) begin(st *store.Store, m mode, client string, o txOptions) (*Tx, error) {
	tx := &Tx{v: v, mode: m, st: st, now: v.o.Now(), client: client, ownIntent: o.ownIntent}
	if err := tx.load(); err != nil {
		return tx, err
	}
	tx.loadConfig()
	tx.mgr = lease.Manager{Now: tx.Now, DefaultTTL: time.Duration(tx.cfg.DefaultLeaseTTL), MaxTTL: time.Duration(tx.cfg.MaxLeaseTTL)}
	if !tx.legacy && tx.broken == nil {
		if err := tx.findStagedSecrets(); err != nil {
			return tx, err
		}
	}
	if m&withSecrets != 0 {
		if _, err := tx.Secrets(); err != nil {
			return tx, err
		}
	}
	if tx.broken != nil && m&failsafe == 0 {
		if tx.writes() && m&damaged == 0 {
			return tx, tx.broken
		}
		return tx, nil
	}
	if !tx.writes() {
		return tx, nil
	}
	if err := st.RemoveTemps(); err != nil {
		return tx, err
	}
	// A killswitch recorded while the lock was held is applied before anything else.
	if _, err := tx.applyIntents(); err != nil {
		return tx, err
	}
	if tx.torn > 0 && tx.broken == nil {
		repair, err := tx.log.CutAt(tx.end.Offset)
		if err != nil {
			return tx, fmt.Errorf("%w: %w", audit.ErrFailed, err)
		}
		what := fmt.Sprintf("a torn last line of %d bytes", repair.Dropped)
		if len(tx.group) > 0 {
			what = fmt.Sprintf("%d bytes of a commit a crash cut short (seq %d-%d of %d)", repair.Dropped, tx.group[0].seq, tx.group[len(tx.group)-1].seq, tx.group[0].txn)
		}
		tx.torn, tx.group = 0, nil
		tx.Record(audit.Entry{Event: "repair", OK: true,
			Detail: fmt.Sprintf("cut %s; the log as found is kept at %s", what, repair.Backup)})
	}
	if m&damaged == 0 {
		expired, err := tx.table.expired(tx.now)
		if err != nil {
			return tx, err
		}
		for _, l := range expired {
			tx.table.drop(l.ID)
		}
		if len(expired) > 0 && !tx.state.NextExpiry.IsZero() && !tx.state.NextExpiry.After(tx.now) {
			// Leases of the snapshot ended: write it again without them, or every command
			// would read its front again until the next compaction.
			tx.compact = true
		}
		tx.expired = expired
		tx.pruned = tx.End(expired, "lease_expire", "expired")
		tx.pruneRequests()
	}
	return tx, nil
}

// load reads the snapshot and the log after it.
func (tx *Tx) load() error {
	st := tx.st
	if !st.HasStoreKey() {
		return tx.loadLegacy()
	}
	snap, closer, err := openSnapshot(st, func(h *State) ([]byte, error) {
		if h.KeyCache != "" {
			st.UseKeyCache(h.KeyCache, h.StoreKey)
		}
		return tx.loadKeys()
	})
	switch {
	case errors.Is(err, errLegacySnapshot) || errors.Is(err, fs.ErrNotExist):
		if _, kerr := tx.loadKeys(); kerr != nil {
			return kerr
		}
		return tx.loadConverting(err)
	case err != nil:
		return err
	}
	tx.closers = append(tx.closers, closer)
	tx.snap, tx.state = snap, snap.state
	if id, err := st.KeyID(); err != nil {
		return err
	} else if tx.state.StoreKey != id {
		return fmt.Errorf("%w: %s was written under another store key (%s, the store's is %s)", store.ErrCorrupt, st.Path(store.LeasesFile), tx.state.StoreKey, id)
	}
	tx.table = newTable(snap.leases, tx.state.NextExpiry)
	if err := tx.openLog(); err != nil {
		return err
	}
	return tx.readLog()
}

// loadKeys derives the keys a transaction checks the state with.
func (tx *Tx) loadKeys() ([]byte, error) {
	var err error
	if tx.keys.state, err = tx.st.Key(store.KeyState); err != nil {
		return nil, err
	}
	if tx.keys.stamp, err = tx.st.Key(store.KeyStamp); err != nil {
		return nil, err
	}
	return tx.keys.state, nil
}

// openLog sets up the log with the keys of its lines.
func (tx *Tx) openLog() error {
	key, err := tx.st.Key(store.KeyAudit)
	if err != nil {
		return err
	}
	keys := audit.Keys{Current: key}
	if tx.state.AuditKeySince > 0 {
		keys.Legacy, keys.Since = tx.st.LegacyAuditKey(), tx.state.AuditKeySince
	}
	tx.log = audit.New(tx.st.Path(store.AuditFile), keys, tx.Now)
	return nil
}

// readLog checks the log and replays it from the snapshot's position. The lock file's
// stamp says what the log was when the last command left it: if the file is still that
// one (same inode, size and change time), nothing has written it since, and only a
// rolling window of it is checked; otherwise it is verified in full, and it must still
// hold the stamped head. A stamp that is missing or does not check out means the end of
// the log can no longer be trusted: someone removed or changed it.
func (tx *Tx) readLog() error {
	if tx.state.AuditBroken != "" {
		tx.broken = recordedTamper(tx.state.AuditBroken) // what audit --verify found stands
	}
	stamp, serr := audit.DecodeStamp(tx.st.LockNote(), tx.keys.stamp)
	tx.pin = tx.state.Position.Head()
	if serr == nil && stamp.Head.Seq >= tx.pin.Seq {
		tx.pin = stamp.Head
	}
	unchanged := serr == nil && tx.log.Matches(stamp)
	if unchanged {
		next, err := tx.log.CheckWindow(stamp.Cursor, windowSize)
		if err != nil {
			return tx.damage(err)
		}
		tx.cursor, tx.restamp = next, next != stamp.Cursor
	} else {
		if tx.mode&damaged == 0 {
			if _, err := tx.log.Verify(tx.pin); err != nil {
				if derr := tx.damage(err); derr != nil {
					return derr
				}
			}
		}
		if serr != nil && !(errors.Is(serr, audit.ErrLegacyStamp) && tx.state.Converted != nil) {
			reason := "the lock file's stamp was changed"
			if errors.Is(serr, audit.ErrNoStamp) {
				reason = "the lock file's stamp is missing"
			}
			tx.stampErr = &audit.TamperError{Seq: tx.state.Position.Seq + 1, Reason: reason + ": the end of the log cannot be checked (do not delete .lock)"}
			if tx.broken == nil {
				tx.broken = tx.stampErr
			}
		}
		tx.restamp = true
	}
	if err := tx.checkSealed(); err != nil {
		if derr := tx.damage(err); derr != nil {
			return derr
		}
	}
	tx.applied = tx.state.Position
	end, torn, err := tx.log.ReadChain(tx.state.Position, tx.apply)
	if err != nil {
		if derr := tx.damage(err); derr != nil {
			return derr
		}
	}
	if tx.broken == nil && unchanged && end.Head() != stamp.Head {
		tx.broken = &audit.TamperError{Seq: min(end.Seq, stamp.Head.Seq) + 1, Reason: "the log does not end where its stamp says"}
	}
	// What the state reflects ends at the last whole commit; lines after it (a commit a
	// crash cut short, a torn line) are cut by the next write.
	tx.end, tx.head, tx.torn = tx.applied, tx.applied.Head(), int(end.Offset-tx.applied.Offset)+torn
	return nil
}

// damage records a tampering finding, or returns an error that is not one.
func (tx *Tx) damage(err error) error {
	var pe *safefile.PermError
	switch {
	case errors.Is(err, audit.ErrTampered):
		if tx.broken == nil {
			tx.broken = err
		}
		return nil
	case errors.As(err, &pe):
		return err // a loose mode, as for any store file: its chmod is the fix
	}
	return fmt.Errorf("%w: %w", audit.ErrFailed, err)
}

func (tx *Tx) writes() bool { return tx.mode&write != 0 }

// close ends the transaction with fn's result: it commits when fn succeeded or recorded
// a denial, stamps the log, releases the lock and then runs the OnCommit work. A store
// error (a file that would not decrypt) commits nothing, so no file changes.
func (tx *Tx) close(err error) error {
	if tx.writes() && (err == nil || tx.denied) {
		if cerr := tx.commit(); cerr != nil {
			tx.release()
			return cerr
		}
	}
	if err == nil && tx.restamp {
		tx.stamp() // a transaction that wrote nothing still spares the next one the full read
	}
	if err == nil && tx.v.o.Due != nil && tx.v.o.Caller != nil {
		tx.v.o.Due(tx.callerDue(tx.v.o.Caller.UID))
	}
	tx.release()
	if err != nil {
		return err
	}
	for _, fn := range tx.onCommit {
		fn()
	}
	return nil
}

// MaxCallerLeases and MaxCallerHolds bound what one caller of a guarded store holds at
// once: its leases are in the state every command reads, and each exec it runs keeps an
// owner-side process (and its threads, which count against the owner's process limit
// for everyone) alive.
const (
	MaxCallerLeases = 256
	MaxCallerHolds  = 16
)

// leaseRoom refuses a grant that would take a guarded caller past MaxCallerLeases, or
// an exec past MaxCallerHolds running at once.
func (tx *Tx) leaseRoom(reqs []lease.Request) error {
	c := tx.v.o.Caller
	if c == nil || len(reqs) == 0 {
		return nil
	}
	live, err := tx.active()
	if err != nil {
		return err
	}
	n, holders := 0, map[int]bool{}
	for _, l := range live {
		if l.UID == c.UID {
			n++
			if l.Supervised() {
				holders[l.PID] = true
			}
		}
	}
	if n+len(reqs) > MaxCallerLeases {
		return fixed{Usagef("%d leases of yours are active; a caller holds at most %d", n, MaxCallerLeases), "revoke the ones you no longer use (secrets leases, secrets revoke ID), or let them expire"}
	}
	if reqs[0].PID > 0 && !holders[reqs[0].PID] && len(holders) >= MaxCallerHolds {
		return fixed{Usagef("%d commands of yours run with secrets already; a caller runs at most %d", len(holders), MaxCallerHolds), "wait for one to end"}
	}
	return nil
}

// callerDue are uid's .env files (in a guarded store) any of whose leases has ended.
func (tx *Tx) callerDue(uid int) []envfile.Record {
	var due []envfile.Record
	for _, rec := range tx.state.EnvFiles {
		if rec.UID == nil || *rec.UID != uid {
			continue
		}
		for _, id := range rec.LeaseIDs {
			l, ok, err := tx.table.find(id)
			if err == nil && (!ok || !l.ExpiresAt.After(tx.now)) {
				due = append(due, rec)
				break
			}
		}
	}
	return due
}

func (tx *Tx) release() {
	for _, c := range tx.closers {
		c.Close()
	}
	tx.st.Close()
}

// Now returns the transaction's time, read once when it began: every entry, grant and
// expiry in one transaction agrees on it.
func (tx *Tx) Now() time.Time { return tx.now }

// State returns the state's header: lockdown, heartbeat, the .env files written, the
// generation of secrets.age. A use case changes it in place and records the entries that
// replay the change. The leases are read through Leases.
func (tx *Tx) State() *State { return tx.state }

// Leases returns every active lease (unexpired ones and, until pruned, expired ones), in
// the order they were granted, reading all of the snapshot's leases if it has not yet.
func (tx *Tx) Leases() ([]lease.Lease, error) { return tx.table.leases() }

// Secrets returns all the decrypted secrets, read once per transaction on first use. It
// never returns an empty store for a file that failed (store.ErrDecrypt,
// store.ErrCorrupt), and refuses a secrets.age older than the log knows (ErrRollback).
func (tx *Tx) Secrets() (*store.Secrets, error) {
	if tx.secrets == nil && tx.secretsErr == nil {
		tx.secrets, tx.secretsErr = tx.loadSecrets()
	}
	return tx.secrets, tx.secretsErr
}

// secret returns one secret, reading of secrets.age only as much as it takes when the
// transaction has not read all of it.
func (tx *Tx) secret(name string) (*store.Secret, error) {
	found, err := tx.lookup(name)
	if err != nil {
		return nil, err
	}
	if s := found[name]; s != nil {
		return s, nil
	}
	return nil, fmt.Errorf("%w: %s", store.ErrSecretNotFound, names.Shown(name))
}

// lookup returns the secrets of names that secrets.age holds, reading of it only what
// they take (store.LookupSecrets), unless the transaction has it all already.
func (tx *Tx) lookup(names ...string) (map[string]*store.Secret, error) {
	if tx.secrets != nil || tx.secretsPath != "" || tx.legacy {
		sec, err := tx.Secrets()
		if err != nil {
			return nil, err
		}
		found := make(map[string]*store.Secret, len(names))
		for _, name := range names {
			if s, err := sec.Get(name); err == nil {
				found[name] = s
			}
		}
		return found, nil
	}
	l, err := tx.st.LookupSecrets(names...)
	if err != nil {
		return nil, err
	}
	if err := tx.checkGeneration(l.Generation, l.Version); err != nil {
		return nil, err
	}
	if tx.looked == nil {
		tx.looked = map[string]*store.Secret{}
	}
	maps.Copy(tx.looked, l.Found)
	tx.lookedPolicy = l.Policy
	return l.Found, nil
}

// known returns a secret the transaction has read (lookup, or all of them), or nil.
func (tx *Tx) known(name string) *store.Secret {
	if tx.secrets != nil {
		return tx.secrets.Secrets[name]
	}
	return tx.looked[name]
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
	if len(e.Detail) > maxDetail {
		// A detail names what was asked, which a caller chose: a line the log's reader
		// would refuse (over 1 MiB) must never be written, whatever a request held.
		e.Detail = strings.ToValidUTF8(e.Detail[:maxDetail], "") + "… (cut)"
	}
	tx.pending = append(tx.pending, e)
}

// maxDetail bounds an entry's detail.
const maxDetail = 8 << 10

// Deny records a refused request (with its stable error code) and returns err, for fn to
// return: the transaction still commits, so the refusal is in the log although the
// request fails. A store that cannot be read (a file that will not decrypt, is forged or
// rolled back, a damaged log) is no refusal: that error is returned with nothing
// recorded, and the transaction changes nothing.
func (tx *Tx) Deny(e audit.Entry, err error) error {
	for _, unreadable := range []error{store.ErrDecrypt, store.ErrCorrupt, ErrRollback, audit.ErrTampered, audit.ErrFailed} {
		if errors.Is(err, unreadable) {
			return err
		}
	}
	e.OK = false
	e.Code = Code(err)
	tx.Record(e)
	tx.denied = true
	return err
}

// Grant grants a lease as r asks, if the secret's policy allows it (authorize), and
// records lease_grant, with detail followed by the TTL and, for replay, the lease. It
// fails with the policy's and the lease package's errors and then changes nothing but
// an approval request it recorded.
func (tx *Tx) Grant(r lease.Request, detail string) (lease.Lease, error) {
	ls, err := tx.grantAll([]lease.Request{r}, detail)
	if err != nil {
		return lease.Lease{}, err
	}
	return ls[0], nil
}

// grantAll authorizes every request, then grants them all, or none.
func (tx *Tx) grantAll(reqs []lease.Request, detail string) ([]lease.Lease, error) {
	if err := tx.leaseRoom(reqs); err != nil {
		return nil, err
	}
	reqs, err := tx.authorize(reqs)
	if err != nil {
		return nil, err
	}
	out := make([]lease.Lease, 0, len(reqs))
	for _, r := range reqs {
		if c := tx.v.o.Caller; c != nil {
			r.UID = c.UID // a guarded store's lease is its agent user's
		}
		var ls []lease.Lease
		l, err := tx.mgr.Grant(&ls, r)
		if err == nil {
			var c json.RawMessage
			if c, err = leaseChange(l); err == nil {
				tx.table.grant(l)
				d := detail
				if l.Kind == lease.KindInject {
					d += "injected into its requests (it holds a placeholder), "
				}
				tx.Record(audit.Entry{Event: "lease_grant", Secret: l.Secret, LeaseID: l.ID, Holder: l.UID, OK: true, Detail: d + "ttl " + l.TTL, State: c})
				out = append(out, l)
				continue
			}
		}
		tx.ungrant(out)
		return nil, err
	}
	if err := tx.countUses(out); err != nil {
		tx.ungrant(out)
		return nil, err
	}
	return out, nil
}

// ungrant takes back leases this transaction granted, and their entries, when a later
// check refuses the request they were part of.
func (tx *Tx) ungrant(leases []lease.Lease) {
	for _, l := range leases {
		tx.table.drop(l.ID)
		tx.pending = slices.DeleteFunc(tx.pending, func(e audit.Entry) bool {
			return (e.Event == "lease_grant" || e.Event == "lease_use") && e.LeaseID == l.ID
		})
	}
}

// renew moves an active lease's expiry to now + ttl ("" keeps its TTL) and records it.
func (tx *Tx) renew(id, ttl string) (lease.Lease, error) {
	l, ok, err := tx.table.find(id)
	if err != nil {
		return lease.Lease{}, err
	}
	if !ok || !tx.v.owns(l) {
		return lease.Lease{}, fmt.Errorf("%w: %s", lease.ErrNotFound, names.LeaseID(id))
	}
	// A renewal is held to the secret's policy as a grant is: no longer than its max_ttl.
	if _, err := tx.lookup(l.Secret); err != nil {
		return lease.Lease{}, err
	}
	rule, err := tx.rule(l.Secret)
	if err != nil {
		return lease.Lease{}, err
	}
	if max := rule.TTL(); max > 0 {
		want := l.TTL
		if ttl != "" {
			want = ttl
		}
		if d, err := lease.ParseTTL(want); err == nil && d > max {
			return lease.Lease{}, fmt.Errorf("%w: %s is more than %s's max_ttl %s", policy.ErrTTLExceedsMax, want, l.Secret, *rule.MaxTTL)
		}
	}
	ls := []lease.Lease{l}
	if l, err = tx.mgr.Renew(ls, id, ttl); err != nil {
		return lease.Lease{}, err
	}
	c, err := leaseChange(l)
	if err != nil {
		return lease.Lease{}, err
	}
	tx.table.put(l)
	tx.Record(audit.Entry{Event: "lease_renew", Secret: l.Secret, LeaseID: l.ID, Holder: l.UID, OK: true, Detail: "ttl " + l.TTL, State: c})
	return l, nil
}

// revokeIDs takes the active leases among ids out of the table; ids that ended already
// are skipped.
func (tx *Tx) revokeIDs(ids []string) ([]lease.Lease, error) {
	var out []lease.Lease
	for _, id := range ids {
		l, ok, err := tx.table.take(id)
		if err != nil {
			return out, err
		}
		if ok {
			out = append(out, l)
		}
	}
	return out, nil
}

// revokeWhere takes every active lease that match selects out of the table.
func (tx *Tx) revokeWhere(match func(lease.Lease) bool) ([]lease.Lease, error) {
	all, err := tx.table.leases()
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, l := range all {
		if match(l) {
			ids = append(ids, l.ID)
		}
	}
	return tx.revokeIDs(ids)
}

// End is the one path that ends leases, whatever ended them (revoke, expiry, rotation,
// rm, cleanup, the killswitch): the caller takes them out of the table; End records each
// with event and reason and applies what ending it means outside the store (its .env
// file removed, its exec supervisor signalled), and likewise for the other leases a
// removed file held. It returns the effects, which are recorded too.
//
// The effects happen here, before the commit forgets the leases. Were the commit first, a
// crash between it and the removal would leave a value on disk that no record points to
// any more, which nothing would ever clean up; in this order a crash leaves a record of a
// file already gone, which the next command drops, and a supervisor told early checks the
// store and finds its lease still there until the commit lands.
func (tx *Tx) End(ended []lease.Lease, event, reason string) []killswitch.Effect {
	var all []killswitch.Effect
	take := func(id string) (lease.Lease, bool) {
		l, ok, err := tx.table.take(id)
		if err != nil {
			tx.v.warn("could not read the leases to end %s: %v", id, err)
		}
		return l, ok
	}
	for len(ended) > 0 {
		for _, l := range ended {
			tx.Record(audit.Entry{Event: event, Secret: l.Secret, LeaseID: l.ID, ClientID: l.ClientID, Holder: l.UID, OK: true, Detail: reason})
		}
		more, effects := killswitch.End(take, &tx.state.EnvFiles, ended)
		tx.effects(effects)
		all = append(all, effects...)
		ended, event, reason = more, "lease_revoke", "its .env file was removed"
	}
	return all
}

// effects records what the killswitch package did outside the store; a removed file's
// entry carries its path, which replay drops from the records.
func (tx *Tx) effects(effects []killswitch.Effect) {
	for _, e := range effects {
		detail := e.Detail
		if e.Path != "" {
			detail = e.Path + ": " + e.Detail
		}
		entry := audit.Entry{Event: e.Event, LeaseID: e.LeaseID, OK: e.OK, Detail: detail}
		if e.Event == "env_remove" && e.OK {
			entry.State = change{Path: e.Path, UID: e.UID}.raw()
		}
		tx.Record(entry)
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

// commit makes the transaction durable. The audit entries are sealed first, so the
// snapshot, when one is due, can pin the position after them; then secrets.age is staged,
// the append (write, fsync) runs while the snapshot is encrypted and staged, and only once
// the append is durable are they renamed into place. If the append fails nothing is
// released. Nothing is written when nothing happened.
func (tx *Tx) commit() error {
	var arrived error
	if tx.broken == nil || tx.mode&failsafe != 0 {
		arrived = tx.intentArrived()
		if arrived != nil && !errors.Is(arrived, killswitch.ErrLockdown) && !errors.Is(arrived, lease.ErrNotFound) {
			return arrived
		}
	}
	if err := tx.commitEntries(); err != nil {
		return err
	}
	if size := int64(tx.st.Config().AuditRotateSize); size > 0 && tx.end.Offset >= size && !tx.legacy && tx.broken == nil {
		tx.sealLog = true
		tx.Record(audit.Entry{Event: "audit_rotate", OK: true, Detail: fmt.Sprintf("the segment reached %d bytes (audit_rotate_size %d): sealed, a new one starts", tx.end.Offset, size)})
		if err := tx.commitEntries(); err != nil {
			return err
		}
	}
	if len(tx.intentPaths) > 0 {
		if err := tx.st.RemoveIntents(tx.intentPaths); err != nil {
			tx.v.warn("a killswitch intent is applied but its file could not be removed (%v); the next command sees it is done", err)
		}
		tx.intentPaths = nil
	}
	if arrived != nil {
		tx.denied = true
		return arrived
	}
	return nil
}

// restartLog moves a damaged log aside (kept, never deleted) and starts a new one whose
// first entry records why, with the old log's sha256: for audit --reset, and for the
// killswitch and revoke --all, which must be recorded whatever the log. The state goes
// on as the snapshot and the log's valid part left it.
func (tx *Tx) restartLog(reason string) (moved string, err error) {
	from := tx.head // what the state reflects of the old log: its valid part
	moved, sealed, start, err := tx.log.Reset()
	if err != nil {
		return "", fmt.Errorf("%w: %w", audit.ErrFailed, err)
	}
	tx.state.ResetFrom = from
	tx.broken, tx.stampErr, tx.head, tx.end, tx.torn, tx.group = nil, nil, start, audit.Position{Hash: start.Hash}, 0, nil
	tx.state.AuditBroken, tx.state.AuditKeySince, tx.state.Sealed, tx.compact = "", 0, nil, true
	detail := fmt.Sprintf("previous log moved to %s (%s); reason: %s", moved, start.Hash, reason)
	if len(sealed) > 0 {
		detail += fmt.Sprintf("; %d sealed segments moved beside it", len(sealed))
	}
	// secrets.age checks out under the store key, whatever the log lost: a write the
	// damaged part recorded is adopted (an older file is still refused as a rollback).
	if gen, version, err := tx.st.SecretsGeneration(); err == nil && version == store.SecretsVersion && gen > tx.state.SecretsGeneration {
		tx.state.SecretsGeneration = gen
		detail += fmt.Sprintf("; secrets.age generation %d adopted", gen)
	}
	queued := tx.pending
	tx.pending = nil
	tx.Record(audit.Entry{Event: audit.EventReset, OK: true, Detail: detail, State: change{ResetFrom: &from}.raw()})
	tx.pending = append(tx.pending, queued...)
	if tx.legacy {
		return moved, nil
	}
	return moved, tx.openLog()
}

// commitEntries appends what the transaction recorded and writes the files it changed.
func (tx *Tx) commitEntries() error {
	if len(tx.pending) == 0 && !tx.secretsDirty && !tx.stateDirty && !tx.compact {
		return nil
	}
	if tx.broken != nil && tx.mode&failsafe != 0 && len(tx.pending) > 0 {
		if _, err := tx.restartLog(tx.broken.Error()); err != nil {
			return err
		}
	}
	if tx.legacy {
		return tx.commitLegacy()
	}
	if tx.broken != nil {
		// Only audit --verify writes to a damaged log's store: its finding, in the
		// snapshot's header, with its position and leases as they were, so that nothing
		// it did can make the damage fit.
		if len(tx.pending) > 0 || tx.secretsDirty {
			return tx.broken
		}
		s := *tx.snap.state
		s.AuditBroken = tx.state.AuditBroken
		plain, err := tx.snap.reheader(&s, tx.keys.state)
		if err != nil {
			return err
		}
		if err := tx.st.Save(store.Commit{State: plain}, nil); err != nil {
			return err
		}
		tx.stateDirty = false
		return nil
	}
	c := store.Commit{}
	if tx.secretsDirty {
		gen := tx.state.SecretsGeneration + 1
		tx.secrets.Generation, tx.state.SecretsGeneration = gen, gen
		tx.recordGeneration(gen)
	}
	batch, head, err := tx.log.Prepare(tx.head, tx.pending...)
	if err != nil {
		return err
	}
	end := audit.Position{Seq: head.Seq, Hash: head.Hash, Offset: tx.end.Offset + batch.Len()}
	sealing := tx.sealLog && len(tx.pending) > 0
	if sealing {
		end.Offset = 0 // the start of the new current segment
	}
	compacting := sealing || tx.compact || tx.stateDirty || tx.tail+len(tx.pending) > compactBound(tx.state.Count)
	for _, e := range tx.pending {
		compacting = compacting || securityEvents[e.Event]
	}
	if sealing {
		pin, err := tx.pinSeal(head, batch)
		if err != nil {
			return err
		}
		tx.state.Sealed = append(slices.Clip(tx.state.Sealed), pin)
	}
	if compacting {
		leases, err := tx.table.leases()
		if err != nil {
			return err
		}
		next := *tx.state
		next.Position, next.KeyCache = end, tx.st.KeyCache()
		plain, err := encodeSnapshot(&next, slices.Clone(leases), tx.keys.state)
		if err != nil {
			return fmt.Errorf("encode %s: %w", store.LeasesFile, err)
		}
		c.State = plain
		*tx.state = next
	}
	if tx.secretsDirty {
		c.Secrets = tx.secrets
	}
	appended := false // set by the gate, which Save has finished with before it returns
	gate := func() error {
		err := batch.Write()
		appended = err == nil
		if err == nil && sealing {
			// The segment ends with this commit; the snapshot written next is at its end,
			// so replay never needs the sealed segment.
			tx.sealed, err = tx.log.Seal(head)
		}
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
	tx.tail += len(tx.pending)
	if compacting {
		tx.tail = 0
		tx.snap = nil // the file on disk is the new one; its leases are in the table
	}
	tx.head, tx.end, tx.pending = head, end, nil
	tx.secretsDirty, tx.stateDirty, tx.compact, tx.sealLog = false, false, false, false
	tx.stamp()
	return nil
}

// pinSeal is the pin of the segment a seal at head, the last line of batch, will make.
func (tx *Tx) pinSeal(head audit.Head, batch *audit.Batch) (SealedPin, error) {
	first, err := tx.log.FirstSeq()
	if err != nil {
		return SealedPin{}, err
	}
	if first == 0 {
		first = tx.head.Seq + 1 // the segment is empty: batch starts it
	}
	return SealedPin{Name: tx.log.SealedName(first, head.Seq), Size: tx.end.Offset + batch.Len(), Last: head.Hash}, nil
}

// checkSealed finds a sealed segment that is gone or changed size since it was sealed.
func (tx *Tx) checkSealed() error {
	dir := filepath.Dir(tx.log.Path())
	for _, p := range tx.state.Sealed {
		fi, err := os.Lstat(filepath.Join(dir, p.Name))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return &audit.TamperError{Seq: tx.state.Position.Seq, Reason: fmt.Sprintf("the sealed segment %s is missing", p.Name)}
		case err != nil:
			return err
		case fi.Size() != p.Size:
			return &audit.TamperError{Seq: tx.state.Position.Seq, Reason: fmt.Sprintf("the sealed segment %s is %d bytes, sealed at %d", p.Name, fi.Size(), p.Size)}
		}
	}
	return nil
}

// verifySealed checks that each sealed segment, as Verify read it, ends where it was sealed.
func (tx *Tx) verifySealed(rep audit.Report) error {
	for _, p := range tx.state.Sealed {
		got, ok := rep.Sealed[p.Name]
		switch {
		case !ok:
			return &audit.TamperError{Seq: tx.state.Position.Seq, Reason: fmt.Sprintf("the sealed segment %s was not read", p.Name)}
		case got != p.Last:
			return &audit.TamperError{Seq: tx.state.Position.Seq, Reason: fmt.Sprintf("the sealed segment %s does not end where it was sealed (%s, sealed at %s)", p.Name, got, p.Last)}
		}
	}
	return nil
}

// recordGeneration puts the new generation of secrets.age in the last entry that wrote
// it, for replay, or in an entry of its own when there is none.
func (tx *Tx) recordGeneration(gen uint64) {
	for i := len(tx.pending) - 1; i >= 0; i-- {
		switch e := &tx.pending[i]; e.Event {
		case "secret_add", "secret_set", "secret_hooks", "secret_remove", "rotate", "convert", "init":
			if e.OK && len(e.State) == 0 {
				e.State = change{Generation: gen}.raw()
				return
			}
		}
	}
	tx.Record(audit.Entry{Event: "secrets_written", OK: true, Detail: fmt.Sprintf("generation %d", gen), State: change{Generation: gen}.raw()})
}

// stamp records the log file as this transaction leaves it (audit.StampV2), so the next
// one can tell that nothing else wrote it without reading it all. It is best effort: a
// stamp that cannot be written costs the next command a full read.
func (tx *Tx) stamp() {
	if tx.torn > 0 || tx.broken != nil || tx.legacy {
		if tx.legacy {
			tx.stampLegacy()
		}
		return
	}
	s, err := tx.log.StampNow(tx.head, tx.cursor)
	if err != nil {
		return
	}
	if tx.st.SetLockNote(s.Encode(tx.keys.stamp)) == nil {
		tx.restamp = false
	}
}

// recordedTamper is a finding of `secrets audit --verify`, read back from leases.age.
type recordedTamper string

func (e recordedTamper) Error() string        { return string(e) + " (found by secrets audit --verify)" }
func (e recordedTamper) Is(target error) bool { return target == audit.ErrTampered }

// active returns the leases that have not expired at the transaction's time, without
// pruning (a View writes nothing).
func (tx *Tx) active() ([]lease.Lease, error) {
	all, err := tx.table.leases()
	if err != nil {
		return nil, err
	}
	out := make([]lease.Lease, 0, len(all))
	for _, l := range all {
		if l.ExpiresAt.After(tx.now) {
			out = append(out, l)
		}
	}
	return out, nil
}

// verify reads the whole log (every segment) and checks it against what pins it: the
// stamp's head, else the snapshot's position. A stamp that was missing or changed is a
// finding too: the log may verify, but its end cannot be checked.
func (tx *Tx) verify() (audit.Report, error) {
	rep, err := tx.log.Verify(tx.pin)
	if err == nil {
		err = tx.verifySealed(rep)
	}
	if err == nil && tx.stampErr != nil {
		err = tx.stampErr
	}
	return rep, err
}

// create starts the first transaction of a store that store.Init just made: it makes the
// store key, and the state is empty, at the start of an empty log.
func (v *Vault) create(st *store.Store, client string) (*Tx, error) {
	tx := &Tx{v: v, mode: write, st: st, now: v.o.Now(), client: client, cfg: st.Config()}
	cfg := tx.cfg
	tx.mgr = lease.Manager{Now: tx.Now, DefaultTTL: time.Duration(cfg.DefaultLeaseTTL), MaxTTL: time.Duration(cfg.MaxLeaseTTL)}
	if err := st.CreateStoreKey(); err != nil {
		return nil, err
	}
	id, err := st.KeyID()
	if err != nil {
		return nil, err
	}
	if _, err := tx.loadKeys(); err != nil {
		return nil, err
	}
	tx.state = &State{StoreKey: id, Config: pinConfig(cfg, tx.now)}
	tx.table = &leaseTable{all: []lease.Lease{}, read: true}
	if err := tx.openLog(); err != nil {
		return nil, err
	}
	return tx, nil
}

// Head returns the head of the log as the transaction sees it: after the lines it read,
// and after its own once it has committed.
func (tx *Tx) Head() audit.Head { return tx.head }
