package vault

import (
	"errors"
	"io/fs"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/envfile"
	"github.com/agent-secrets/secrets/killswitch"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/store"
)

// State is the content of leases.age: everything that changes as access is granted and
// ended, and the audit head pinned where the log's writer cannot forge it.
type State struct {
	Version   int           `json:"version"`
	Leases    []lease.Lease `json:"leases"`
	AuditHead audit.Head    `json:"audit_head"`
	// AuditBroken is set when a full verification found the log damaged; every command that
	// would append refuses until `secrets audit --reset --yes`.
	AuditBroken string `json:"audit_broken,omitempty"`
	// EnvFiles are the .env files secrets env wrote and has not removed yet.
	EnvFiles []envfile.Record `json:"env_files,omitempty"`
	// Lockdown is set by the killswitch; lease, env and exec refuse until secrets unlock.
	Lockdown *killswitch.Lockdown `json:"lockdown,omitempty"`
	// Heartbeat is what secrets watch has seen.
	Heartbeat *killswitch.Heartbeat `json:"heartbeat,omitempty"`

	fresh bool // no leases.age existed (a new or version 1 store)
}

// StateVersion is the leases.age format this binary writes.
const StateVersion = 1

// readState decrypts and decodes leases.age. A missing file (a store written by the
// earlier tool, or one whose leases.age was lost) gives an empty, fresh State.
func readState(st *store.Store) (*State, error) {
	data, err := st.ReadState()
	if errors.Is(err, fs.ErrNotExist) {
		return &State{Version: StateVersion, fresh: true}, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeState(st.Path(store.LeasesFile), data)
}
