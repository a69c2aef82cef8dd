package vault

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/store"
)

// The witness. A process that puts back older copies of every store file together
// (snapshot, log, stamp, secrets.age) makes a consistent older store: nothing on this
// machine can tell. The heartbeat endpoint can: each check (secrets watch) sends it the
// log's head, MAC'd under a key derived for the witness, and an endpoint that keeps the
// last head it was sent returns it with its next answer. A head the endpoint saw that
// this log does not have (a later seq, or another hash at that seq) means the log went
// backwards or forked: audit_rollback, the heartbeat's fail action, shown by status.

// ErrAuditRollback reports a log head the witness saw that the log no longer has.
var ErrAuditRollback = errors.New("audit log rolled back")

// witnessLine is the head as the witness header carries it: "v1 <seq> <hash> <mac>".
func witnessLine(h audit.Head, key []byte) string {
	body := strconv.FormatUint(h.Seq, 10) + " " + h.Hash
	return "v1 " + body + " " + store.MAC(key, []byte("secrets witness v1\x00"), []byte(body))
}

// parseWitness reads a witness line and checks its MAC: only a head this store sent
// (under its witness key) is taken.
func parseWitness(line string, key []byte) (audit.Head, error) {
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "v1" {
		return audit.Head{}, errors.New("not a witness line")
	}
	seq, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return audit.Head{}, errors.New("not a witness line")
	}
	if !store.CheckMAC(f[3], key, []byte("secrets witness v1\x00"), []byte(f[1]+" "+f[2])) {
		return audit.Head{}, errors.New("its MAC does not check out under this store's witness key")
	}
	return audit.Head{Seq: seq, Hash: f[2]}, nil
}

// witnessHead returns the witness line of the log's head now, for a heartbeat check.
func (v *Vault) witnessHead(ctx context.Context) (string, []byte, error) {
	var line string
	var key []byte
	err := v.View(ctx, func(tx *Tx) error {
		if tx.broken != nil {
			// A head that no check could record would teach the witness this log: none is
			// sent, and watch fails as every writing command would.
			return tx.broken
		}
		k, err := tx.st.Key(store.KeyWitness)
		if err != nil {
			return err
		}
		key, line = k, witnessLine(tx.head, k)
		return nil
	})
	return line, key, err
}

// witness checks the endpoint's reply against the log and records what it saw. It
// returns why the head the witness saw does not fit the log, or "".
func (tx *Tx) witness(reply string, key []byte) string {
	if reply == "" {
		if w := tx.state.Witness; w != nil && !w.Silent {
			// It answered with a head before: it lost what it saw (a restart), or another
			// endpoint answers. Shown, not acted on: a witness that restarts is common.
			tx.v.warn("the heartbeat endpoint sent no witness head, though it did before: it no longer vouches for this log")
			silent := *w
			silent.Silent = true
			tx.state.Witness, tx.stateDirty = &silent, true
		}
		return "" // an endpoint that keeps no head, or the first check
	}
	seen, err := parseWitness(reply, key)
	if err != nil {
		tx.v.warn("the heartbeat endpoint's %s reply is ignored: %v", "witness", err)
		return ""
	}
	why := ""
	switch {
	case seen.Seq > tx.head.Seq:
		why = fmt.Sprintf("the witness saw seq %d, but the log ends at seq %d: it went backwards (older copies of the store's files were put back)", seen.Seq, tx.head.Seq)
	default:
		h, err := tx.log.Find(seen.Seq)
		switch {
		case err == nil && h.Hash != seen.Hash:
			why = fmt.Sprintf("the witness saw seq %d as %s, but the log has %s there: it forked", seen.Seq, seen.Hash, h.Hash)
		case err != nil && (tx.state.ResetFrom.Seq == 0 || seen.Seq > tx.state.ResetFrom.Seq):
			why = fmt.Sprintf("the witness saw seq %d, which is in no segment of the log", seen.Seq)
		}
	}
	w := &Witness{Seen: seen, Checked: tx.now.UTC()}
	if old := tx.state.Witness; old != nil && old.Rollback != "" {
		w.Rollback = old.Rollback // stands until a person unlocks the store
	}
	if why != "" {
		w.Rollback = why
		tx.Record(audit.Entry{Event: "audit_rollback", OK: false, Code: Code(ErrAuditRollback), Detail: why, State: change{Witness: w}.raw()})
	} else {
		tx.stateDirty = true // no entry: the head seen is a hint, kept in the snapshot
	}
	tx.state.Witness = w
	return why
}

// WitnessKeyResult is the key the heartbeat endpoint checks witness lines with.
type WitnessKeyResult struct {
	Key    string `json:"key"`
	Header string `json:"header"`
	Format string `json:"format"`
}

// WitnessKey returns the witness key, for the heartbeat endpoint: it lets the endpoint
// check that a head came from this store, and nothing else (it is derived from the store
// key, which it does not reveal). Showing it is recorded.
func (v *Vault) WitnessKey(ctx context.Context, clientFlag string) (*WitnessKeyResult, error) {
	client, err := v.client(clientFlag)
	if err != nil {
		return nil, err
	}
	var out *WitnessKeyResult
	err = v.update(ctx, write, client, func(tx *Tx) error {
		k, err := tx.st.Key(store.KeyWitness)
		if err != nil {
			return err
		}
		tx.Record(audit.Entry{Event: "witness_key", OK: true, Detail: "the witness key was shown"})
		out = &WitnessKeyResult{Key: hex.EncodeToString(k), Header: "X-Secrets-Witness",
			Format: `v1 <seq> <hash> hmac-sha256:<hex of HMAC-SHA256(key, "secrets witness v1\x00" + "<seq> <hash>")>`}
		return nil
	})
	return out, err
}
