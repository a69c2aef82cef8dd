package vault

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/envfile"
	"github.com/agent-secrets/secrets/internal/safefile"
	"github.com/agent-secrets/secrets/killswitch"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/store"
)

// Stores written before the store key (by the release before this one, or by the earlier
// agent-secrets tool) are read as they are, and converted by their first write: the store
// key is made, secrets.age is written in version 3, leases.age becomes a version 3
// snapshot, and a convert entry, the last line under the identity's key, records it, all
// in one commit (with backups of the old files). From then on an older-format file that
// appears is refused, never read: it can only be a copy put back.

// legacyState is leases.age as the release before the store key wrote it (version 1): the
// whole state, and the audit head pinned.
type legacyState struct {
	Version     int                   `json:"version"`
	Leases      []lease.Lease         `json:"leases"`
	AuditHead   audit.Head            `json:"audit_head"`
	AuditBroken string                `json:"audit_broken,omitempty"`
	EnvFiles    []envfile.Record      `json:"env_files,omitempty"`
	Lockdown    *killswitch.Lockdown  `json:"lockdown,omitempty"`
	Heartbeat   *killswitch.Heartbeat `json:"heartbeat,omitempty"`
}

// legacy is what a transaction on an unconverted store keeps of it.
type legacy struct {
	state *legacyState
	fresh bool // no leases.age: the earlier tool's store, whose log nothing pinned
}

// readLegacy reads a version 1 leases.age, or reports a store with none.
func readLegacy(st *store.Store) (*legacyState, bool, error) {
	data, err := st.ReadState()
	if errors.Is(err, fs.ErrNotExist) {
		return &legacyState{Version: 1}, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	s, err := decodeLegacy(st.Path(store.LeasesFile), data)
	return s, false, err
}

// loadLegacy reads a store that has no store key, as the release before did: the log's
// end checked against the pinned head, the rest against the older stamp. A write then
// converts it, before anything else.
func (tx *Tx) loadLegacy() error {
	if err := tx.readLegacyStore(); err != nil {
		return err
	}
	if tx.writes() && tx.mode&damaged == 0 && tx.broken == nil {
		return tx.convert()
	}
	return nil
}

func (tx *Tx) readLegacyStore() error {
	st := tx.st
	ls, fresh, err := readLegacy(st)
	if err != nil {
		return err
	}
	tx.legacy, tx.old = true, &legacy{state: ls, fresh: fresh}
	tx.log = audit.New(st.Path(store.AuditFile), audit.Keys{Current: st.LegacyAuditKey()}, tx.Now)
	tx.state = &State{AuditBroken: ls.AuditBroken, EnvFiles: ls.EnvFiles, Lockdown: ls.Lockdown, Heartbeat: ls.Heartbeat}
	tx.table = &leaseTable{all: ls.Leases, read: true}
	if tx.table.all == nil {
		tx.table.all = []lease.Lease{}
	}
	if fresh {
		// The earlier tool's store: its log, if it has one, is not ours and nothing pins
		// it; the first write moves it aside (convert).
		return nil
	}
	head, torn, err := tx.log.Check(ls.AuditHead)
	if err != nil {
		if derr := tx.damage(err); derr != nil {
			return derr
		}
		head = ls.AuditHead // what was pinned, never the head of a damaged log
	}
	if tx.broken == nil && ls.AuditBroken != "" {
		tx.broken = recordedTamper(ls.AuditBroken)
	}
	if tx.broken == nil && tx.mode&damaged == 0 && !tx.log.Stamped(st.LockNote(), head) {
		// Written since the last command stamped it (or never): Check saw only the end.
		if _, err := tx.log.Verify(head); err != nil {
			if derr := tx.damage(err); derr != nil {
				return derr
			}
		}
		tx.restamp = !fresh && tx.broken == nil
	}
	tx.head, tx.torn, tx.pin = head, torn, ls.AuditHead
	if fi, err := os.Lstat(tx.log.Path()); err == nil {
		tx.end = audit.Position{Seq: head.Seq, Hash: head.Hash, Offset: fi.Size() - int64(torn)}
	}
	tx.state.Position = tx.end
	return nil
}

// convert converts an unconverted store in one commit. A torn last line is cut first (no
// line may follow one) and recorded after; the earlier tool's log, which nothing pinned, is
// moved aside, and the new log starts under the store key.
func (tx *Tx) convert() error {
	st := tx.st
	var repair *audit.Repair
	if tx.torn > 0 {
		r, err := tx.log.CutTorn(tx.torn)
		if err != nil {
			return fmt.Errorf("%w: %w", audit.ErrFailed, err)
		}
		repair, tx.torn = r, 0
	}
	sec, err := st.LoadSecrets()
	if err != nil {
		return err
	}
	from := "secrets v2"
	if sec.ReadVersion() == 1 {
		from = "agent-secrets v1"
	}
	moved := ""
	if tx.old.fresh {
		if fi, err := os.Lstat(tx.log.Path()); err == nil && fi.Size() > 0 {
			m, _, start, err := tx.log.Reset()
			if err != nil {
				return fmt.Errorf("%w: move aside unpinned log: %w", audit.ErrFailed, err)
			}
			moved = fmt.Sprintf("no leases.age pinned the existing log; it was moved to %s (%s)", m, start.Hash)
			tx.head, tx.end = start, audit.Position{Hash: start.Hash}
		}
	} else if data, err := safefile.Read(st.Path(store.LeasesFile)); err == nil {
		if err := safefile.Replace(st.Path(store.LeasesFile)+".v1.bak", data); err != nil {
			return err
		}
	}
	if err := st.CreateStoreKey(); err != nil {
		return err
	}
	id, err := st.KeyID()
	if err != nil {
		return err
	}
	if _, err := tx.loadKeys(); err != nil {
		return err
	}
	since := uint64(0) // a new log is all under the store key
	if moved == "" && !tx.old.fresh || tx.head.Seq > 0 {
		since = tx.head.Seq + 1 // the convert entry is the last line under the old key
	}
	tx.state.StoreKey, tx.state.AuditKeySince, tx.state.SecretsGeneration = id, since, sec.Generation
	if err := tx.openLog(); err != nil {
		return err
	}
	tx.legacy = false
	tx.secrets, tx.secretsDirty, tx.compact = sec, true, true
	if moved != "" {
		tx.Record(audit.Entry{Event: audit.EventReset, OK: true, Detail: moved})
	}
	tx.Record(audit.Entry{Event: "convert", OK: true, Detail: "store converted from " + from + ": store key " + id + " made; old files kept as .bak"})
	tx.state.Converted = &Conversion{From: from, At: tx.now.UTC(), Seq: tx.head.Seq + uint64(len(tx.pending))}
	if err := tx.commit(); err != nil {
		return err
	}
	if repair != nil {
		tx.Record(audit.Entry{Event: "repair", OK: true,
			Detail: fmt.Sprintf("cut a torn last line of %d bytes; the log as found is kept at %s", repair.Dropped, repair.Backup)})
	}
	return nil
}

// loadConverting reads a store that has a store key but no version 3 leases.age (cause
// says which). Either a conversion stopped after the convert entry and before the snapshot
// that follows it (its last line is that entry): then the conversion is finished, from the
// older leases.age and the entry; or the older leases.age was put back after a conversion
// (lines under the store key follow the entry), which is refused; or the key is what a
// conversion left that stopped before its entry, and the store is converted again.
func (tx *Tx) loadConverting(cause error) error {
	st := tx.st
	if errors.Is(cause, fs.ErrNotExist) {
		return tx.loadWithoutSnapshot()
	}
	if err := tx.readLegacyStore(); err != nil {
		return err
	}
	last, seq, err := lastLine(tx.log.Path())
	if err != nil {
		return err
	}
	auditKey, err := st.Key(store.KeyAudit)
	if err != nil {
		return err
	}
	legacyLog := audit.New(tx.log.Path(), audit.Keys{Current: st.LegacyAuditKey()}, tx.Now)
	newLog := audit.New(tx.log.Path(), audit.Keys{Current: auditKey}, tx.Now)
	switch {
	case last != nil && isConvert(last) && opens(legacyLog, last):
		tx.broken = nil // the older stamp's mismatch is the conversion's
		return tx.finishConversion(seq, last)
	case last != nil && opens(newLog, last):
		return fmt.Errorf("%w: %s is in the format of an older release, but this store was converted: an older copy was put back (restore the current leases.age; the older one is refused, never read)", store.ErrCorrupt, st.Path(store.LeasesFile))
	}
	if tx.writes() && tx.mode&damaged == 0 && tx.broken == nil {
		return tx.convert() // the key a conversion left that stopped before its entry
	}
	return nil
}

// finishConversion writes the snapshot of a conversion that stopped after its convert
// entry (at seq, the log's last line): the older state, the position after the entry,
// and the generation of secrets.age the entry records, rolling a staged secrets.age
// forward if the stop came before it was renamed. A View computes the same in memory.
func (tx *Tx) finishConversion(seq uint64, line []byte) error {
	st := tx.st
	r, err := parseLine(line)
	if err != nil {
		return err
	}
	c, err := decodeChange(r.state)
	if err != nil {
		return err
	}
	id, err := st.KeyID()
	if err != nil {
		return err
	}
	if _, err := tx.loadKeys(); err != nil {
		return err
	}
	fi, err := os.Lstat(tx.log.Path())
	if err != nil {
		return err
	}
	var ok bool
	keys := audit.Keys{Current: st.LegacyAuditKey()}
	if tx.old.fresh {
		auditKey, err := st.Key(store.KeyAudit)
		if err != nil {
			return err
		}
		keys = audit.Keys{Current: auditKey}
	}
	if tx.head, ok = audit.New(tx.log.Path(), keys, tx.Now).Open(line); !ok {
		return fmt.Errorf("%w: the convert entry does not check out", audit.ErrTampered)
	}
	tx.end = audit.Position{Seq: seq, Hash: tx.head.Hash, Offset: fi.Size()}
	from := "secrets v2"
	if strings.Contains(r.detail, "agent-secrets v1") {
		from = "agent-secrets v1"
	}
	since := seq
	if tx.old.fresh {
		since = 0 // the earlier tool's store: its new log is all under the store key
	}
	tx.state.StoreKey, tx.state.Position, tx.state.AuditKeySince = id, tx.end, since
	tx.state.SecretsGeneration = c.Generation
	tx.state.Converted = &Conversion{From: from, At: tx.now.UTC(), Seq: seq}
	tx.legacy = false
	if err := tx.openLog(); err != nil {
		return err
	}
	tx.table = &leaseTable{all: tx.old.state.Leases, read: true}
	if tx.table.all == nil {
		tx.table.all = []lease.Lease{}
	}
	if err := tx.findStagedSecrets(); err != nil {
		return err
	}
	if tx.writes() {
		tx.compact, tx.restamp = true, true
		return tx.commit()
	}
	return nil
}

// loadWithoutSnapshot reads a store with a store key and no leases.age: a conversion of
// the earlier tool's store (which has none) that stopped after its entry is finished; a
// converted store whose leases.age was lost is refused, with the fix.
func (tx *Tx) loadWithoutSnapshot() error {
	st := tx.st
	last, seq, err := lastLine(st.Path(store.AuditFile))
	if err != nil {
		return err
	}
	auditKey, err := st.Key(store.KeyAudit)
	if err != nil {
		return err
	}
	newLog := audit.New(st.Path(store.AuditFile), audit.Keys{Current: auditKey}, tx.Now)
	if last != nil && isConvert(last) && opens(newLog, last) && seq <= 2 {
		tx.legacy, tx.old = true, &legacy{state: &legacyState{Version: 1}, fresh: true}
		tx.log = newLog
		tx.state = &State{}
		return tx.finishConversion(seq, last)
	}
	return fmt.Errorf("%w: %s is missing from a store that has a store key: restore it from a backup (the log alone cannot rebuild the leases it held)", store.ErrCorrupt, st.Path(store.LeasesFile))
}

// commitLegacy is the one write of an unconverted store that does not convert it: audit
// --verify's finding on a damaged log, in version 1.
func (tx *Tx) commitLegacy() error {
	if len(tx.pending) > 0 || tx.secretsDirty {
		if tx.broken != nil {
			return tx.broken
		}
		return errors.New("vault: a write to an unconverted store that does not convert it")
	}
	ls := *tx.old.state
	ls.AuditBroken = tx.state.AuditBroken
	plain, err := encodeLegacy(&ls)
	if err != nil {
		return err
	}
	if err := tx.st.Save(store.Commit{State: plain}, nil); err != nil {
		return err
	}
	tx.stateDirty = false
	return nil
}

// stampLegacy stamps an unconverted store's log as the release before did.
func (tx *Tx) stampLegacy() {
	if tx.torn > 0 || tx.broken != nil || tx.old.fresh {
		return
	}
	if b, err := tx.log.Stamp(tx.head); err == nil && tx.st.SetLockNote(b) == nil {
		tx.restamp = false
	}
}

// lastLine returns the log's last complete line and the seq it claims (unchecked).
func lastLine(path string) ([]byte, uint64, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	data = bytes.TrimSuffix(data, []byte("\n"))
	if len(data) == 0 {
		return nil, 0, nil
	}
	line := data[bytes.LastIndexByte(data, '\n')+1:]
	r, err := parseLine(line)
	if err != nil {
		return nil, 0, nil
	}
	return line, r.seq, nil
}

func isConvert(line []byte) bool {
	r, err := parseLine(line)
	return err == nil && r.event == "convert" && r.ok
}

func opens(l *audit.Log, line []byte) bool {
	_, ok := l.Open(line)
	return ok
}
