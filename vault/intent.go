package vault

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/envfile"
	"github.com/agent-secrets/secrets/killswitch"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/store"
)

// A killswitch nothing holds back (DESIGN.md section 5). revoke --all and killswitch
// first record what they do in killswitch.intent, MAC'd under the store key and written
// without the lock; then they cut the consumers they can see (exec supervisors are
// signalled, .env files removed) and do the rest under the lock as usual. Every command
// that writes applies a pending intent when it begins, and again before it commits (an
// intent that arrived while it held the lock), so nothing is handed out after it; the
// exec supervisor honours one before it waits for the lock. Once the intent is in the
// state (recorded, and pinned in the snapshot) the file is removed.

// Intent is the content of killswitch.intent.
type Intent struct {
	Version int `json:"version"`
	// ID names this intent, so it is applied once: the state records the last one.
	ID string `json:"id"`
	// Kind is "killswitch" (lockdown, and every lease ends) or "revoke_all" (every lease
	// granted up to At ends).
	Kind     string    `json:"kind"`
	Trigger  string    `json:"trigger,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
	ClientID string    `json:"client_id,omitempty"`
	MAC      string    `json:"mac"`
}

const (
	intentKillswitch = "killswitch"
	intentRevokeAll  = "revoke_all"
)

// errForgedIntent reports a killswitch.intent that does not check out under the store key.
var errForgedIntent = errors.New("killswitch.intent does not check out under the store key")

func newIntent(kind, trigger, reason, client string, now time.Time) Intent {
	id := make([]byte, 8)
	rand.Read(id)
	return Intent{Version: 1, ID: hex.EncodeToString(id), Kind: kind, Trigger: trigger, Reason: reason, At: now.UTC(), ClientID: client}
}

func (in Intent) body() []byte {
	in.MAC = ""
	b, err := json.Marshal(in)
	if err != nil {
		panic(fmt.Sprintf("vault: encode intent: %v", err)) // strings and a time
	}
	return b
}

// seal returns the file content: the intent with its MAC.
func (in Intent) seal(key []byte) []byte {
	in.MAC = store.MAC(key, []byte("secrets intent v1\x00"), in.body())
	b, _ := json.Marshal(in)
	return append(b, '\n')
}

// parseIntent reads an intent file's content. One that does not check out, or could not
// be read (err: a loose mode, a symlink), is returned as a killswitch with errForgedIntent:
// a killswitch fails closed, and anyone who could write the file could run secrets
// killswitch anyway.
func parseIntent(st *store.Store, data []byte, err error) (*Intent, error) {
	key, kerr := st.Key(store.KeyIntent)
	var in Intent
	if err != nil || kerr != nil || json.Unmarshal(data, &in) != nil || in.Version != 1 ||
		(in.Kind != intentKillswitch && in.Kind != intentRevokeAll) ||
		!store.CheckMAC(in.MAC, key, []byte("secrets intent v1\x00"), in.body()) {
		return &Intent{Version: 1, ID: "forged", Kind: intentKillswitch, Trigger: "manual",
			Reason: "killswitch.intent does not check out (forged or damaged): locked down to be safe"}, errForgedIntent
	}
	return &in, nil
}

// readIntent returns the intent that is pending, read without the lock (waiting in
// killswitch.intent, or claimed by a command that has not applied it yet): the strongest
// when there are several (a killswitch before a revoke --all), nil when there is none.
func readIntent(st *store.Store) (*Intent, error) {
	var best *Intent
	var bestErr error
	for _, p := range st.Intents() {
		data, err := st.ReadIntent(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // applied and removed meanwhile
		}
		in, err := parseIntent(st, data, err)
		if best == nil || in.Kind == intentKillswitch && best.Kind != intentKillswitch {
			best, bestErr = in, err
		}
	}
	return best, bestErr
}

// writeIntent seals in and writes killswitch.intent, with or without the lock.
func writeIntent(st *store.Store, in Intent) error {
	key, err := st.Key(store.KeyIntent)
	if err != nil {
		return err
	}
	return st.WriteIntent(in.seal(key))
}

// applyIntents applies the intents claimed by commands that stopped before they applied
// them, and the one waiting in killswitch.intent, claiming it first (store.ClaimIntent), so
// that only files this transaction applied are removed after its commit. It reports
// whether it applied any.
func (tx *Tx) applyIntents() (bool, error) {
	paths, err := tx.st.ClaimedIntents()
	if err != nil {
		return false, err
	}
	paths = slices.Clone(paths)
	claimed, err := tx.st.ClaimIntent()
	if err != nil {
		return false, err
	}
	if claimed != "" {
		paths = append(paths, claimed)
	}
	applied := false
	for _, p := range paths {
		data, rerr := tx.st.ReadIntent(p)
		in, ferr := parseIntent(tx.st, data, rerr)
		did, err := tx.applyIntent(in, errors.Is(ferr, errForgedIntent))
		if err != nil {
			return applied, err
		}
		applied = applied || did
		tx.intentPaths = append(tx.intentPaths, p)
	}
	return applied, nil
}

// applyIntent applies one intent, once: its lockdown and revocations are recorded with
// the entries that say where they came from. An intent the state already holds, or the
// command's own (which it applies itself), is only taken for removal.
func (tx *Tx) applyIntent(in *Intent, forged bool) (bool, error) {
	if in.ID == tx.state.AppliedIntent || in.ID == tx.ownIntent {
		return false, nil
	}
	tx.intent = in
	if in.At.IsZero() {
		in.At = tx.now // a forged intent's time means nothing
	}
	detail := fmt.Sprintf("recorded at %s while another process held the store lock", in.At.Format(time.RFC3339))
	if forged {
		detail = in.Reason
	} else if in.ClientID != "" && in.ClientID != tx.client {
		detail += " by " + in.ClientID
	}
	switch in.Kind {
	case intentKillswitch:
		reason := in.Reason
		if reason == "" {
			reason = detail
		}
		out, err := tx.lockdown(in.Trigger, reason, store.FailAction{RevokeAll: true}, in.ID, in.At)
		if err != nil {
			return false, err
		}
		tx.intentOut = out
	case intentRevokeAll:
		ended, err := tx.revokeWhere(func(l lease.Lease) bool { return !l.CreatedAt.After(in.At) })
		if err != nil {
			return false, err
		}
		tx.End(ended, "lease_revoke", "revoke --all")
		tx.state.AppliedIntent = in.ID
		tx.Record(audit.Entry{Event: "revoke_all", OK: true, ClientID: in.ClientID,
			Detail: fmt.Sprintf("%d leases revoked; %s", len(ended), detail), State: change{Intent: in.ID}.raw()})
		tx.intentEnded = ended
	}
	return true, nil
}

// intentArrived applies an intent that appeared while fn ran, before the commit: the
// request fails (ErrLockdown or a revoked lease) instead of handing anything out.
func (tx *Tx) intentArrived() error {
	if !tx.st.HasIntent() {
		return nil
	}
	claimed, err := tx.st.ClaimIntent()
	if err != nil || claimed == "" {
		return err
	}
	tx.intentPaths = append(tx.intentPaths, claimed)
	data, rerr := tx.st.ReadIntent(claimed)
	in, ferr := parseIntent(tx.st, data, rerr)
	applied, err := tx.applyIntent(in, errors.Is(ferr, errForgedIntent))
	if err != nil || !applied {
		return err
	}
	if in.Kind == intentRevokeAll {
		return fmt.Errorf("%w: revoke --all ran while this command ran; nothing was handed out", lease.ErrNotFound)
	}
	return fmt.Errorf("%w: the killswitch fired while this command ran; nothing was handed out", killswitch.ErrLockdown)
}

// firstTry is how long revoke --all and the killswitch wait for the lock before they cut
// access without it: a command holds it for milliseconds, unless it is stuck.
const firstTry = 250 * time.Millisecond

// PendingCut is what revoke --all or the killswitch did while another process held the
// store lock: the consumers it could see are cut.
type PendingCut struct {
	LeasesEnded          int
	SupervisorsSignalled int
	EnvFilesRemoved      int
}

// cutAccess runs revoke --all or the killswitch, whose work under the lock is fn (which
// applies in itself). in is written to killswitch.intent first, without the lock; then fn
// runs in a failsafe transaction. When the lock stays held past firstTry, the consumers of
// the state as it can be read are cut at once, and fn waits for the rest of the lock
// timeout; if the lock is still held, the cut stands and is returned as pending. When fn's
// commit fails (nothing can be written), the consumers are stopped all the same.
func (v *Vault) cutAccess(ctx context.Context, client string, in *Intent, fn func(*Tx) error) error {
	written, kind := false, in.Kind
	if st, err := store.OpenUnlocked(ctx, v.failsafeOptions()); err == nil {
		if data, err := st.ReadIntent(st.Path(store.IntentFile)); err == nil {
			if pending, err := parseIntent(st, data, nil); err == nil {
				*in = merge(*pending, *in)
			}
		}
		// Without the intent, the work under the lock does the same, only nothing can
		// hold it back; the failure is reported if the lock is held (below).
		written = writeIntent(st, *in) == nil
	}
	o := txOptions{lockTimeout: firstTry, ownIntent: in.ID}
	if in.Kind != kind {
		// A revoke --all merged into a pending killswitch: the transaction applies the
		// killswitch as any command would, and fn then does its own work.
		o.ownIntent = ""
	}
	err := v.updateWith(ctx, write|failsafe, client, o, fn)
	if !errors.Is(err, store.ErrLocked) {
		if err != nil && !errors.Is(err, ErrUsage) {
			if cut, cerr := v.cutWithoutLock(ctx, *in, !written); cerr == nil && (cut.SupervisorsSignalled > 0 || cut.EnvFilesRemoved > 0) {
				v.warn("nothing could be recorded (%v): %d exec supervisors were stopped and %d .env files removed directly", err, cut.SupervisorsSignalled, cut.EnvFilesRemoved)
			}
		}
		return err
	}
	cut, cerr := v.cutWithoutLock(ctx, *in, !written)
	if cerr != nil {
		return fmt.Errorf("%w; and the state could not be read without it: %v", err, cerr)
	}
	if !written {
		return fmt.Errorf("%w; killswitch.intent could not be written, so only the %d supervisors and %d .env files found were stopped", err, cut.SupervisorsSignalled, cut.EnvFilesRemoved)
	}
	v.warn("the store lock is held by another process: access is cut (%d leases ended, %d exec supervisors signalled, %d .env files removed) and recorded in %s; waiting for the lock to record it in the state",
		cut.LeasesEnded, cut.SupervisorsSignalled, cut.EnvFilesRemoved, store.IntentFile)
	timeout := v.o.LockTimeout
	if timeout <= 0 {
		if st, err := store.OpenUnlocked(ctx, v.failsafeOptions()); err == nil {
			timeout = time.Duration(st.Config().LockTimeout)
		}
	}
	o.lockTimeout = max(timeout-firstTry, time.Millisecond)
	err = v.updateWith(ctx, write|failsafe, client, o, fn)
	if errors.Is(err, store.ErrLocked) {
		// Access is cut, but the state does not say so yet: that is a failure to report,
		// not a success (a process of this user could delete the file before a command
		// takes it in).
		return &PendingError{Cut: *cut, Err: err}
	}
	return err
}

// PendingError is a revoke --all or killswitch that cut access while another process held
// the store lock, but could not record it in the state: it waits in killswitch.intent.
type PendingError struct {
	Cut PendingCut
	Err error // store.ErrLocked
}

func (e *PendingError) Error() string {
	return fmt.Sprintf("%v: access is cut (%d leases ended, %d exec supervisors signalled, %d .env files removed) and recorded in %s, which every command applies before it hands anything out; the state holds it only once a command takes it in",
		e.Err, e.Cut.LeasesEnded, e.Cut.SupervisorsSignalled, e.Cut.EnvFilesRemoved, store.IntentFile)
}

func (e *PendingError) Unwrap() error { return e.Err }

// Fix says what to do about it.
func (e *PendingError) Fix() string {
	return "find what holds the store lock (fuser .lock) and end it; the next command then takes the killswitch in (secrets status shows it pending until then)"
}

// merge is the intent that does what a pending one and a new one both ask: a second
// killswitch keeps the first's time and adds its reason; a killswitch covers a revoke
// --all; of two revoke --all, the later covers the earlier.
func merge(pending, next Intent) Intent {
	switch {
	case pending.Kind == intentKillswitch && next.Kind == intentKillswitch:
		if next.Reason != "" && next.Reason != pending.Reason {
			pending.Reason = strings.TrimPrefix(pending.Reason+"; then: "+next.Reason, "; then: ")
		}
		return pending
	case pending.Kind == intentKillswitch:
		return pending
	}
	return next
}

// cutWithoutLock ends what in ends in the state as it can be read without the lock: exec
// supervisors are told (stopped outright with terminate, for when no intent could be
// written for them to find), .env files removed. Nothing is recorded: the command that
// applies the intent records it.
func (v *Vault) cutWithoutLock(ctx context.Context, in Intent, terminate bool) (*PendingCut, error) {
	st, err := store.OpenUnlocked(ctx, v.failsafeOptions())
	if err != nil {
		return nil, err
	}
	tx, err := v.begin(st, 0, "", txOptions{})
	if tx != nil {
		defer tx.release()
	}
	if err != nil {
		return nil, err
	}
	all, err := tx.Leases()
	if err != nil {
		return nil, err
	}
	rest := map[string]lease.Lease{}
	var ended []lease.Lease
	for _, l := range all {
		if in.Kind == intentKillswitch || !l.CreatedAt.After(in.At) {
			ended = append(ended, l)
		} else {
			rest[l.ID] = l
		}
	}
	for _, l := range tx.salvage() {
		if in.Kind == intentKillswitch || !l.CreatedAt.After(in.At) {
			ended = append(ended, l)
		}
	}
	take := func(id string) (lease.Lease, bool) {
		l, ok := rest[id]
		delete(rest, id)
		return l, ok
	}
	files := slices.Clone(tx.state.EnvFiles)
	cut := &PendingCut{}
	for len(ended) > 0 {
		cut.LeasesEnded += len(ended)
		more, effects := killswitch.End(take, &files, ended)
		for _, e := range effects {
			switch {
			case e.Event == "exec_signal" && e.OK:
				cut.SupervisorsSignalled++
			case e.Event == "env_remove" && e.OK:
				cut.EnvFilesRemoved++
			}
		}
		if terminate {
			killswitch.Stop(ended)
		}
		ended = more
	}
	return cut, nil
}

// pendingIntent returns the intent in killswitch.intent, read without the lock, or nil.
func (v *Vault) pendingIntent(ctx context.Context) *Intent {
	st, err := store.OpenUnlocked(ctx, v.failsafeOptions())
	if err != nil {
		return nil
	}
	in, _ := readIntent(st)
	return in
}

// salvage returns the exec leases granted in the damaged part of the log, after the
// valid prefix the state reflects: unverified, so they are used only to tell their
// supervisors (by pid and start time, which a forged line cannot make another process
// match) that the killswitch fired. Files a damaged line names are not removed: that
// line may be forged.
func (tx *Tx) salvage() []lease.Lease {
	if tx.broken == nil || tx.log == nil {
		return nil
	}
	f, err := os.Open(tx.log.Path())
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(tx.end.Offset, io.SeekStart); err != nil {
		return nil
	}
	var out []lease.Lease
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		r, err := parseLine(sc.Bytes())
		if err != nil || r.event != "lease_grant" || !r.ok {
			continue
		}
		if c, err := decodeChange(r.state); err == nil && c.Lease != nil && c.Lease.Supervised() {
			out = append(out, *c.Lease)
		}
	}
	return out
}

// stopSalvaged tells the supervisors of the exec leases of the log's damaged part, and
// records what it did.
func (tx *Tx) stopSalvaged() {
	salvaged := tx.salvage()
	if len(salvaged) == 0 {
		return
	}
	var none []envfile.Record
	_, effects := killswitch.End(func(string) (lease.Lease, bool) { return lease.Lease{}, false }, &none, salvaged)
	for i := range effects {
		effects[i].Detail += " (an exec lease of the damaged part of the log)"
	}
	tx.effects(effects)
}
