package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/store"
)

// Pending secrets (DESIGN.md section 10): in a guarded store an agent user may ask for a
// secret to be added, a value a person gave it (MCP's secret entry, or its own add). The
// request creates nothing: the value waits, encrypted, in pending.age, and an approval
// request in the state names it; an admin's secrets approve adds the secret, deny (or
// the request's expiry) drops the value.

// MaxPendingValue bounds a pending secret's value: a credential, not a file; every
// request rewrites pending.age under the lock.
const MaxPendingValue = 64 << 10

// DeliveryNew is the delivery of a pending-secret request: a new secret, not a value out.
const DeliveryNew = "new"

// pendingValue is one value in pending.age.
type pendingValue struct {
	ID    string `json:"id"` // the approval request's
	Name  string `json:"name"`
	Value []byte `json:"value"`
}

// readPending returns pending.age's values that still have a pending request; the rest
// (decided, expired, or whose request a crash kept from committing) are dropped.
func (tx *Tx) readPending() ([]pendingValue, error) {
	b, err := tx.st.ReadPending()
	if err != nil || b == nil {
		return nil, err
	}
	defer clear(b)
	var all []pendingValue
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", store.ErrCorrupt, store.PendingFile, err)
	}
	return slices.DeleteFunc(all, func(p pendingValue) bool {
		i := slices.IndexFunc(tx.state.Requests, func(r Approval) bool { return r.ID == p.ID })
		return i < 0 || tx.state.Requests[i].Status != "pending" || tx.state.Requests[i].Done || !tx.state.Requests[i].Expires.After(tx.now)
	}), nil
}

// writePending replaces pending.age with vals.
func (tx *Tx) writePending(vals []pendingValue) error {
	if len(vals) == 0 {
		return tx.st.WritePending(nil)
	}
	b, err := json.Marshal(vals)
	if err != nil {
		return err
	}
	return tx.st.WritePending(b)
}

// RequestInput asks for a new secret.
type RequestInput struct {
	Name     string
	Value    []byte
	ClientID string
}

// RequestSecret records a pending-secret request for a guarded store's caller: the value
// in pending.age, the request (delivery new) in the state, for an admin to decide. It
// fails with ErrApprovalRequired naming the request, since nothing was added: the error
// is the answer. A name the store holds already is refused; asking again for the same
// name replaces the waiting value, under a new request.
func (v *Vault) RequestSecret(ctx context.Context, in RequestInput) error {
	if v.o.Caller == nil {
		return Usagef("a pending-secret request is a guarded store's")
	}
	client, err := v.client(in.ClientID)
	if err != nil {
		return err
	}
	var id string
	err = v.update(ctx, write, client, func(tx *Tx) error {
		e := audit.Entry{Event: "secret_request", Secret: in.Name}
		if err := store.CheckName(in.Name); err != nil {
			e.Secret = ""
			return tx.Deny(e, err)
		}
		if err := tx.refuseInLockdown(e); err != nil {
			return err
		}
		if err := store.CheckValue(in.Value); err != nil {
			return tx.Deny(e, err)
		}
		if len(in.Value) > MaxPendingValue {
			return tx.Deny(e, Usagef("the value is %d bytes; a pending secret holds at most %d (an admin adds a larger one: sudo secrets add)", len(in.Value), MaxPendingValue))
		}
		found, err := tx.lookup(in.Name)
		if err != nil {
			return err
		}
		if found[in.Name] != nil {
			return tx.Deny(e, fixed{fmt.Errorf("%w: %q", store.ErrSecretExists, in.Name), "ask for another name; only an admin replaces a value (sudo secrets set " + in.Name + ")"})
		}
		vals, err := tx.readPending()
		if err != nil {
			return err
		}
		want := Approval{Secret: in.Name, Delivery: DeliveryNew, Client: client, TTL: "-", Approve: "once"}
		want.Caller, want.Command, want.Cwd, want.Parent = tx.v.caller().User, tx.v.o.Command, tx.v.cwd(), tx.v.parent()
		i := slices.IndexFunc(tx.state.Requests, func(r Approval) bool {
			return r.Delivery == DeliveryNew && r.Secret == in.Name && r.Caller == want.Caller && r.Status == "pending" && !r.Done && r.Expires.After(tx.now)
		})
		if i >= 0 {
			// A new value is a new request: an admin who read the old one (its prompt
			// open at a terminal) must not approve a value swapped in meanwhile.
			old := tx.state.Requests[i]
			old.Done = true
			tx.state.putRequest(old)
			tx.Record(audit.Entry{Event: "approval_expire", Secret: old.Secret, Holder: old.UID, OK: true, Detail: old.ID + " pending: replaced by a new value", State: change{Request: &old}.raw()})
		}
		{
			if err := tx.requestRoom(); err != nil {
				return tx.Deny(e, err)
			}
			want.ID, want.Status, want.UID = newRequestID(), "pending", tx.v.o.Caller.UID
			want.Created, want.Expires = tx.now.UTC(), tx.now.Add(requestTTL).UTC()
			tx.state.putRequest(want)
			id = want.ID
			tx.Record(audit.Entry{Event: "approval_request", Secret: in.Name, Holder: want.UID, OK: true,
				Detail: fmt.Sprintf("%s: %s as a new secret by %s, client %s: %s", id, in.Name, want.Caller, client, want.Command),
				State:  change{Request: &want}.raw()})
		}
		vals = slices.DeleteFunc(vals, func(p pendingValue) bool { return p.ID == id })
		vals = append(vals, pendingValue{ID: id, Name: in.Name, Value: in.Value})
		// The value is on disk before the request is durable: a crash between leaves a
		// value no request names, which the next write drops.
		if err := tx.writePending(vals); err != nil {
			return err
		}
		tx.Record(audit.Entry{Event: "secret_request", Secret: in.Name, Holder: tx.v.o.Caller.UID, OK: true, Detail: id + ": waits for an admin (secrets approve " + id + ")"})
		return nil
	})
	if err != nil {
		return err
	}
	return fixed{&approvalError{ids: []string{id}}, fmt.Sprintf("nothing is stored until an admin adds it: sudo secrets approve %s (or refuses it: sudo secrets deny %s)", id, id)}
}

// addPending adds the secret request r waits with, approved, in the transaction (which
// holds the secrets): secret_add, recorded as the admin's act on the caller's request.
func (tx *Tx) addPending(r Approval) error {
	vals, err := tx.readPending()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(vals, func(p pendingValue) bool { return p.ID == r.ID })
	if i < 0 {
		return Usagef("the value of %s is gone (a crash, or a store restored); ask the requester to send it again", r.ID)
	}
	sec, err := tx.Secrets()
	if err != nil {
		return err
	}
	if _, err := sec.Add(r.Secret, vals[i].Value, "", tx.now); err != nil {
		return err
	}
	tx.secretsDirty = true
	tx.Record(audit.Entry{Event: "secret_add", Secret: r.Secret, OK: true, Detail: fmt.Sprintf("requested by %s (%s), approved", r.Caller, r.ID)})
	tx.OnCommit(tx.v.dropPending)
	return nil
}

// dropPending rewrites pending.age without the values no pending request names, after a
// decision has committed.
func (v *Vault) dropPending() {
	err := v.update(context.Background(), write, "", func(tx *Tx) error {
		vals, err := tx.readPending()
		if err != nil {
			return err
		}
		return tx.writePending(vals)
	})
	if err != nil {
		v.warn("pending.age keeps a decided value until the next request: %v", err)
	}
}
