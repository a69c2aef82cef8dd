package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/store"
	"github.com/agent-secrets/secrets/vault"
)

// Fixtures for tests and benchmarks that need a store in a given shape. They go through
// the vault's own transactions, as any command would, so what they write is what the
// binary writes.

func testVault(dir string) *vault.Vault {
	return vault.New(vault.Options{Dir: dir, LockTimeout: 10 * time.Second, ClientID: "fixture"})
}

// rawState decrypts a store's secrets and lease state as they are on disk, taking the
// lock but checking nothing else and writing nothing (not even the audit stamp), so a
// test can look at what a command left without changing it. The lease state is read with
// encoding/json, which FuzzStateCodec holds to the vault's own decoder.
func rawState(dir string) (*store.Secrets, *vault.State, error) {
	st, err := store.Open(context.Background(), store.Options{Dir: dir, LockTimeout: 10 * time.Second})
	if err != nil {
		return nil, nil, err
	}
	defer st.Close()
	sec, err := st.LoadSecrets()
	if err != nil {
		return nil, nil, err
	}
	plain, err := st.ReadState()
	if err != nil {
		return nil, nil, err
	}
	var state vault.State
	if err := json.Unmarshal(plain, &state); err != nil {
		return nil, nil, fmt.Errorf("%w: leases.age: %v", store.ErrCorrupt, err)
	}
	return sec, &state, nil
}

// seedLeases adds n leases of secret k, as n lease calls would have, in one transaction.
func seedLeases(dir string, n int) error {
	return testVault(dir).Update(context.Background(), func(tx *vault.Tx) error {
		m := lease.Manager{Now: tx.Now, DefaultTTL: time.Hour, MaxTTL: 24 * time.Hour}
		for i := 0; i < n; i++ {
			if _, err := m.Grant(&tx.State().Leases, lease.Request{Secret: "k", ClientID: "fixture", TTL: "24h", Kind: lease.KindLease}); err != nil {
				return err
			}
		}
		tx.Record(audit.Entry{Event: "fixture", OK: true, Detail: "seeded leases"})
		return nil
	})
}

// growLog appends entries to a store's audit log until it has n lines, pinning each batch.
func growLog(dir string, n int, entry audit.Entry) error {
	v := testVault(dir)
	for {
		var head uint64
		if err := v.View(context.Background(), func(tx *vault.Tx) error { head = tx.State().AuditHead.Seq; return nil }); err != nil {
			return err
		}
		if int(head) >= n {
			return nil
		}
		err := v.Update(context.Background(), func(tx *vault.Tx) error {
			for i := int(head); i < min(n, int(head)+10000); i++ {
				tx.Record(entry)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
}
