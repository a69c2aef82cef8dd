package vault

import (
	"context"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/store"
)

// StatusResult describes the store. secrets_count and active_leases keep the earlier
// tool's names.
type StatusResult struct {
	SecretsCount int           `json:"secrets_count"`
	ActiveLeases int           `json:"active_leases"`
	Dir          string        `json:"dir"`
	Identity     IdentityInfo  `json:"identity"`
	Audit        AuditInfo     `json:"audit"`
	Heartbeat    HeartbeatInfo `json:"heartbeat"`
	Lockdown     *LockdownInfo `json:"lockdown"`
	// Pending is a revoke --all or killswitch recorded in killswitch.intent that the
	// state has not taken in yet: the next command that writes applies it first.
	Pending *PendingIntent `json:"pending,omitempty"`
	// Witness is what the heartbeat endpoint last said of the log's head.
	Witness *WitnessInfo `json:"witness,omitempty"`
	// Config says which of config.json's changes wait for secrets config apply.
	Config ConfigInfo `json:"config"`
	// HookChanges are the latest changes of a rotation or verify hook, newest last.
	HookChanges []HookChange `json:"hook_changes"`
	// PendingApprovals counts the requests waiting for a person (secrets approve).
	PendingApprovals int `json:"pending_approvals"`
}

// WitnessInfo is the head the witness saw and whether it fits the log.
type WitnessInfo struct {
	Seen     audit.Head `json:"seen"`
	Checked  string     `json:"checked"`
	Status   string     `json:"status"` // ok, silent (the last answer had no head) or rollback
	Rollback string     `json:"rollback,omitempty"`
}

// PendingIntent is a killswitch.intent not yet applied.
type PendingIntent struct {
	Kind   string `json:"kind"` // killswitch or revoke_all
	At     string `json:"at"`
	Reason string `json:"reason,omitempty"`
	Valid  bool   `json:"valid"` // false: it does not check out, and is applied as a killswitch
}

// IdentityInfo is where the identity came from and its public key.
type IdentityInfo struct {
	Source    string `json:"source"`
	PublicKey string `json:"public_key"`
}

// AuditInfo is the audit log's health.
type AuditInfo struct {
	Path    string     `json:"path"`
	Entries uint64     `json:"entries"`
	Head    audit.Head `json:"head"`
	Status  string     `json:"status"` // ok, tampered, or unpinned (the earlier tool's store)
	Problem string     `json:"problem,omitempty"`
}

// HeartbeatInfo is the heartbeat's configuration and, once watch has run, its last result.
type HeartbeatInfo struct {
	Enabled              bool   `json:"enabled"`
	URL                  string `json:"url"`
	FailuresBeforeAction int    `json:"failures_before_action"`
	*HeartbeatLast
}

// HeartbeatLast is the last heartbeat check.
type HeartbeatLast struct {
	LastCheck string `json:"last_check"`
	LastOK    bool   `json:"last_ok"`
	LastError string `json:"last_error"`
	Failures  int    `json:"failures"`
	Fired     bool   `json:"fired"`
}

// Status describes the store: counts, identity, the audit log's health (a damaged log is
// reported, not refused), the heartbeat and any lockdown. It changes nothing.
func (v *Vault) Status(ctx context.Context) (*StatusResult, error) {
	var out *StatusResult
	err := v.update(ctx, withSecrets, "", func(tx *Tx) error {
		sec, err := tx.Secrets()
		if err != nil {
			return err
		}
		st := tx.st
		a := AuditInfo{Path: tx.log.Path(), Entries: tx.head.Seq, Head: tx.head, Status: "ok"}
		switch {
		case tx.broken != nil:
			a.Status, a.Problem = "tampered", tx.broken.Error()
		case tx.legacy && tx.old.fresh:
			a.Status, a.Problem = "unpinned", "the log, if any, is the earlier tool's: nothing pins it, and the first write moves it aside"
		}
		hb := tx.cfg.Heartbeat
		h := HeartbeatInfo{Enabled: hb.Enabled, URL: hb.URL, FailuresBeforeAction: hb.FailuresBeforeAction}
		if s := tx.state.Heartbeat; s != nil {
			h.HeartbeatLast = &HeartbeatLast{LastCheck: rfc3339(s.LastCheck), LastOK: s.LastOK, LastError: s.LastError, Failures: s.Failures, Fired: s.Fired}
		}
		active, err := tx.active()
		if err != nil {
			return err
		}
		out = &StatusResult{
			SecretsCount: len(sec.Secrets), ActiveLeases: len(active), Dir: st.Dir(),
			Identity: IdentityInfo{Source: st.IdentitySource(), PublicKey: st.PublicKey()},
			Audit:    a, Heartbeat: h, Lockdown: lockdownInfo(tx.state.Lockdown, st.UnlockCode(), tx.lockdownReason),
			Config: tx.configInfo(), HookChanges: nonNil(tx.state.HookChanges),
		}
		for _, r := range tx.state.Requests {
			if r.Status == "pending" && r.Expires.After(tx.now) {
				out.PendingApprovals++
			}
		}
		if w := tx.state.Witness; w != nil {
			out.Witness = &WitnessInfo{Seen: w.Seen, Checked: rfc3339(w.Checked), Status: "ok", Rollback: w.Rollback}
			switch {
			case w.Rollback != "":
				out.Witness.Status = "rollback"
			case w.Silent:
				out.Witness.Status = "silent"
			}
		}
		if in, err := readIntent(st); in != nil && in.ID != tx.state.AppliedIntent {
			out.Pending = &PendingIntent{Kind: in.Kind, At: rfc3339(in.At), Reason: tx.lockdownReason(in.Reason), Valid: err == nil}
			if in.Kind == intentKillswitch && out.Lockdown == nil {
				out.Lockdown = &LockdownInfo{Since: rfc3339(in.At), Trigger: in.Trigger, Reason: tx.lockdownReason(in.Reason), Pending: true,
					Unlock: "the next command that writes takes the lockdown in; then run secrets unlock on a terminal"}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// InitInput creates a store.
type InitInput struct {
	PQ bool // a hybrid post-quantum (ML-KEM-768 + X25519) identity
}

// InitResult is the store created.
type InitResult struct {
	Dir       string `json:"dir"`
	Identity  string `json:"identity"`
	PublicKey string `json:"public_key"`
	KeyType   string `json:"key_type"`
	Config    string `json:"config"`
}

// Init creates the store and writes each of its files once: the identity and config.json
// (store.Init), the init entry of the audit log, leases.age, and last secrets.age, whose
// presence marks the store initialized, so a crash before it leaves a store that init
// finishes. An existing store is store.ErrAlreadyInitialized, and nothing changes.
func (v *Vault) Init(ctx context.Context, in InitInput) (*InitResult, error) {
	client, err := v.client("")
	if err != nil {
		return nil, err
	}
	st, err := store.Init(ctx, store.InitOptions{Options: v.storeOptions(), PQ: in.PQ})
	if err != nil {
		return nil, err
	}
	tx, err := v.create(st, client)
	if err != nil {
		st.Close()
		return nil, err
	}
	kind := "x25519"
	if st.IsPQ() {
		kind = "mlkem768-x25519"
	}
	tx.Record(audit.Entry{Event: "init", OK: true, Detail: "identity " + kind + " from " + st.IdentitySource()})
	tx.secrets, tx.secretsDirty, tx.compact = store.NewSecrets(), true, true
	if err := tx.close(nil); err != nil {
		return nil, err
	}
	return &InitResult{Dir: st.Dir(), Identity: st.IdentitySource(), PublicKey: st.PublicKey(), KeyType: kind, Config: st.Path(store.ConfigFile)}, nil
}
