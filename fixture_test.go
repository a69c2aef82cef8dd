package main

import (
	"context"
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

// inspect reads a store's secrets, its active leases (the snapshot's and those of the log
// after it) and its state in a View, as the next command would see them: nothing is
// pruned or written but the audit stamp.
func inspect(dir string) (*store.Secrets, []lease.Lease, *vault.State, error) {
	var sec *store.Secrets
	var leases []lease.Lease
	var state *vault.State
	err := testVault(dir).View(context.Background(), func(tx *vault.Tx) error {
		var err error
		if sec, err = tx.Secrets(); err != nil {
			return err
		}
		leases, err = tx.Leases()
		state = tx.State()
		return err
	})
	return sec, leases, state, err
}

// seedLeases adds n leases of secret k, as n lease calls would have, in one transaction.
func seedLeases(dir string, n int) error {
	return testVault(dir).Update(context.Background(), func(tx *vault.Tx) error {
		for i := 0; i < n; i++ {
			if _, err := tx.Grant(lease.Request{Secret: "k", ClientID: "fixture", TTL: "24h", Kind: lease.KindLease}, "seeded, "); err != nil {
				return err
			}
		}
		return nil
	})
}

// growLog appends entries to a store's audit log until it has n lines, in transactions
// of 10,000.
func growLog(dir string, n int, entry audit.Entry) error {
	v := testVault(dir)
	for {
		var head uint64
		err := v.Update(context.Background(), func(tx *vault.Tx) error {
			head = tx.Head().Seq
			for i := int(head); i < min(n, int(head)+10000); i++ {
				tx.Record(entry)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if int(head)+10000 >= n {
			return nil
		}
	}
}
