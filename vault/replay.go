package vault

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/envfile"
	"github.com/agent-secrets/secrets/internal/codec"
	"github.com/agent-secrets/secrets/killswitch"
	"github.com/agent-secrets/secrets/lease"
)

// change is an entry's State: what replaying the entry does to the state. Each entry that
// changes the state carries one; the event says how to apply it.
type change struct {
	Lease      *lease.Lease          `json:"lease,omitempty"`      // lease_grant, lease_renew
	EnvFile    *envfile.Record       `json:"env_file,omitempty"`   // env_write
	Path       string                `json:"path,omitempty"`       // env_remove
	UID        *int                  `json:"uid,omitempty"`        // env_remove: whose file (a guarded store's caller), nil the store user's
	Lockdown   *killswitch.Lockdown  `json:"lockdown,omitempty"`   // killswitch
	Heartbeat  *killswitch.Heartbeat `json:"heartbeat,omitempty"`  // heartbeat_failed, heartbeat_recovered
	Witness    *Witness              `json:"witness,omitempty"`    // witness
	Generation uint64                `json:"generation,omitempty"` // a write of secrets.age
	Intent     string                `json:"intent,omitempty"`     // killswitch, revoke_all applied from killswitch.intent
	ResetFrom  *audit.Head           `json:"reset_from,omitempty"` // audit_reset: the last head of the log it replaced
	Use        *UseCount             `json:"use,omitempty"`        // lease_use, policy_reset_uses
	Request    *Approval             `json:"request,omitempty"`    // approval_request, approval_decided, approval_used
	Config     *AppliedConfig        `json:"config,omitempty"`     // config_apply
	Hook       *HookChange           `json:"hook,omitempty"`       // secret_hooks
	Rotation   *Rotation             `json:"rotation,omitempty"`   // hook_run, rotation_end
}

// leaseChange encodes {"lease":…} by hand: a lease's entry is on every lease's path.
func leaseChange(l lease.Lease) (json.RawMessage, error) {
	b := append(make([]byte, 0, 256), `{"lease":`...)
	b, err := appendLease(b, l)
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// useChange encodes {"use":…} by hand, as encoding/json would: a single-use secret's
// lease records one, and replay reads it (decodeChange).
func useChange(u UseCount) json.RawMessage {
	b := append(make([]byte, 0, 128), `{"use":{"secret":`...)
	b = codec.AppendString(b, u.Secret)
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, int64(u.Count), 10)
	b = append(b, `,"value":"`...)
	b = codec.AppendTime(b, u.Value)
	return append(b, `"}}`...)
}

func (c change) raw() json.RawMessage {
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("vault: encode change: %v", err)) // only maps of strings and times
	}
	return b
}

// replayed is what replay needs of one line.
type replayed struct {
	seq, txn               uint64
	event, leaseID, detail string
	ok                     bool
	state                  []byte
}

// parseLine reads the fields replay needs from a line the log has checked.
func parseLine(line []byte) (replayed, error) {
	var r replayed
	d := codec.NewDecoder(line)
	err := d.Object(func(key string) error {
		switch key {
		case "seq":
			v, err := d.Uint()
			r.seq = v
			return err
		case "txn":
			v, err := d.Uint()
			r.txn = v
			return err
		case "event":
			return d.Text(&r.event)
		case "detail":
			return d.Text(&r.detail)
		case "lease_id":
			return d.Text(&r.leaseID)
		case "ok":
			return d.Bool(&r.ok)
		case "state":
			raw, err := d.Raw()
			r.state = raw
			return err
		}
		_, err := d.Raw()
		return err
	})
	return r, err
}

func decodeChange(raw []byte) (change, error) {
	var c change
	if len(raw) == 0 {
		return c, nil
	}
	if bytes.HasPrefix(raw, []byte(`{"lease":{`)) && bytes.HasSuffix(raw, []byte("}}")) {
		l, _, err := decodeLeaseLine(raw[len(`{"lease":`) : len(raw)-1])
		c.Lease = &l
		return c, err
	}
	if bytes.HasPrefix(raw, []byte(`{"use":{`)) && bytes.HasSuffix(raw, []byte("}}")) {
		d := codec.NewDecoder(raw[len(`{"use":`) : len(raw)-1])
		c.Use = &UseCount{}
		err := decodeUse(d, c.Use)
		if err == nil {
			err = d.End()
		}
		return c, err
	}
	err := json.Unmarshal(raw, &c)
	return c, err
}

// apply replays one line onto the state and the lease table. The lines of one commit are
// applied together, once its last line (its txn) is read: a crash can leave the first
// lines of a batch without the rest, and a commit is all of it or nothing. What is left
// of such a batch at the end of the log is cut by the next write (begin).
func (tx *Tx) apply(line audit.Line) error {
	r, err := parseLine(line.Raw)
	if err != nil {
		return fmt.Errorf("replay seq %d: %w", line.Seq, err)
	}
	if len(tx.group) > 0 && tx.group[0].txn != r.txn {
		return &audit.TamperError{Seq: tx.group[0].seq, Reason: fmt.Sprintf("the commit of seq %d-%d stops at seq %d, and seq %d starts another", tx.group[0].seq, tx.group[0].txn, r.seq-1, r.seq)}
	}
	tx.group = append(tx.group, r)
	if r.txn != 0 && r.seq < r.txn {
		return nil // more lines of this commit follow
	}
	for _, g := range tx.group {
		if err := tx.applyOne(g); err != nil {
			return err
		}
	}
	tx.group, tx.applied = tx.group[:0], line.End
	return nil
}

func (tx *Tx) applyOne(r replayed) error {
	c, err := decodeChange(r.state)
	if err != nil {
		return fmt.Errorf("replay seq %d: %w", r.seq, err)
	}
	s := tx.state
	switch {
	case !r.ok && r.event != "heartbeat_failed":
		// A refusal or a failure changed nothing (a failed heartbeat changes its count).
	case r.event == "lease_grant" && c.Lease != nil:
		tx.table.grant(*c.Lease)
	case r.event == "lease_renew" && c.Lease != nil:
		tx.table.put(*c.Lease)
	case r.event == "lease_revoke" || r.event == "lease_expire":
		tx.table.drop(r.leaseID)
	case r.event == "env_write" && c.EnvFile != nil:
		s.EnvFiles = append(s.EnvFiles, *c.EnvFile)
	case r.event == "env_remove" && c.Path != "":
		s.EnvFiles = slices.DeleteFunc(s.EnvFiles, func(e envfile.Record) bool { return e.Path == c.Path && sameUID(e.UID, c.UID) })
	case r.event == "killswitch" && c.Lockdown != nil:
		s.Lockdown = c.Lockdown
	case r.event == "unlock":
		s.Lockdown = nil
	case r.event == "audit_reset" && c.ResetFrom != nil:
		s.ResetFrom = *c.ResetFrom
	case c.Use != nil:
		s.setUses(*c.Use)
	case c.Request != nil:
		s.putRequest(*c.Request)
	case r.event == "config_apply" && c.Config != nil:
		s.Config = c.Config
	case c.Hook != nil:
		s.addHookChange(*c.Hook)
	case c.Rotation != nil:
		s.putRotation(*c.Rotation)
	}
	if c.Heartbeat != nil {
		s.Heartbeat = c.Heartbeat
	}
	if c.Witness != nil {
		s.Witness = c.Witness
	}
	if c.Generation > s.SecretsGeneration {
		s.SecretsGeneration = c.Generation
	}
	if c.Intent != "" && r.ok {
		s.AppliedIntent = c.Intent
	}
	tx.tail++
	return nil
}
