package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/envfile"
	"github.com/agent-secrets/secrets/lease"
)

// Secret is one stored credential. Value holds the exact bytes given to add or set.
type Secret struct {
	Value     []byte     `json:"value"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	RotateVia string     `json:"rotate_via,omitempty"`
	VerifyVia string     `json:"verify_via,omitempty"`
	RotatedAt *time.Time `json:"rotated_at,omitempty"`
	Canary    bool       `json:"canary,omitempty"`
}

// Secrets is the decrypted content of secrets.age.
type Secrets struct {
	Version    int                `json:"version"`
	Generation uint64             `json:"generation"`
	Secrets    map[string]*Secret `json:"secrets"`

	readVersion int // the version found on disk; 1 is migrated (with a backup) on save
}

// SecretsVersion is the secrets.age format this binary writes.
const SecretsVersion = 2

// secretV1 is a secret as the earlier agent-secrets tool wrote it: a string value.
type secretV1 struct {
	Name        string     `json:"name"`
	Value       string     `json:"value"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	RotateVia   string     `json:"rotate_via"`
	LastRotated *time.Time `json:"last_rotated"`
}

// parseSecrets decodes either format. Version 1 (or no version) is the earlier tool's.
func parseSecrets(name string, data []byte) (*Secrets, error) {
	var head struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	switch head.Version {
	case SecretsVersion:
		s := &Secrets{}
		if err := json.Unmarshal(data, s); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
		}
		if s.Secrets == nil {
			s.Secrets = map[string]*Secret{}
		}
		s.readVersion = SecretsVersion
		return s, nil
	case 0, 1:
		var v1 struct {
			Secrets map[string]secretV1 `json:"secrets"`
		}
		if err := json.Unmarshal(data, &v1); err != nil {
			return nil, fmt.Errorf("%w: %s (version 1): %v", ErrCorrupt, name, err)
		}
		s := &Secrets{Version: SecretsVersion, Secrets: make(map[string]*Secret, len(v1.Secrets)), readVersion: 1}
		for n, old := range v1.Secrets {
			s.Secrets[n] = &Secret{Value: []byte(old.Value), CreatedAt: old.CreatedAt, UpdatedAt: old.UpdatedAt,
				RotateVia: old.RotateVia, RotatedAt: old.LastRotated}
		}
		return s, nil
	}
	return nil, fmt.Errorf("%w: %s: version %d is newer than this secrets binary understands", ErrCorrupt, name, head.Version)
}

// State is the decrypted content of leases.age: everything that changes as access is
// granted and ended, and the audit head pinned where the log's writer cannot forge it.
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
	Lockdown *Lockdown `json:"lockdown,omitempty"`
	// Heartbeat is what secrets watch has seen.
	Heartbeat *HeartbeatState `json:"heartbeat,omitempty"`

	fresh bool // no leases.age existed (a new or version 1 store)
}

// Lockdown records why and when the killswitch fired.
type Lockdown struct {
	Since   time.Time `json:"since"`
	Trigger string    `json:"trigger"` // manual, heartbeat or canary
	Reason  string    `json:"reason,omitempty"`
}

// HeartbeatState is the last heartbeat check and the run of failures it belongs to.
type HeartbeatState struct {
	LastCheck time.Time `json:"last_check"`
	LastOK    bool      `json:"last_ok"`
	LastError string    `json:"last_error,omitempty"`
	Failures  int       `json:"failures"` // consecutive
	Fired     bool      `json:"fired"`    // the fail action ran for this outage
}

// StateVersion is the leases.age format this binary writes.
const StateVersion = 1

// Fresh reports whether the state was not read from disk because leases.age did not exist.
func (s *State) Fresh() bool { return s.fresh }
