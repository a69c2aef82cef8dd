package killswitch

import (
	"errors"
	"time"

	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/store"
)

// ErrLockdown reports a request refused because the store is in lockdown.
var ErrLockdown = errors.New("lockdown")

// Fire puts the store in lockdown (keeping an earlier lockdown's time and trigger, so a
// rerun after a crash finishes the same job) and, with revokeAll, takes every lease out
// of st. The caller passes the ended leases to End, through its session, and records them.
func Fire(st *store.State, trigger, reason string, revokeAll bool, now time.Time) []lease.Lease {
	if st.Lockdown == nil {
		st.Lockdown = &store.Lockdown{Since: now.UTC(), Trigger: trigger, Reason: reason}
	}
	if !revokeAll {
		return nil
	}
	return lease.RevokeAll(&st.Leases)
}
