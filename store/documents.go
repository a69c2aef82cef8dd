package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
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
	// HooksChangedAt is when RotateVia or VerifyVia last changed.
	HooksChangedAt *time.Time `json:"hooks_changed_at,omitempty"`
	// Policy is the secret's rule (package policy), kept as JSON and covered by the
	// entry's MAC; empty is none.
	Policy json.RawMessage `json:"policy,omitempty"`
}

// Secrets is the decrypted content of secrets.age.
type Secrets struct {
	Version    int                `json:"version"`
	Generation uint64             `json:"generation"`
	Secrets    map[string]*Secret `json:"secrets"`
	// Policy is the default rule, covered by the header's MAC; empty is none.
	Policy json.RawMessage `json:"policy,omitempty"`

	readVersion int // the version found on disk; an older one is backed up on save
}

// secretV1 is a secret as the earlier agent-secrets tool wrote it: a string value.
type secretV1 struct {
	Name        string     `json:"name"`
	Value       string     `json:"value"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	RotateVia   string     `json:"rotate_via"`
	LastRotated *time.Time `json:"last_rotated"`
}

// parseSecrets decodes any format: version 3 (MAC'd with key, which is nil on a store
// that has no store key yet), version 2 (this tool before the store key) or version 1
// (or none: the earlier tool's).
func parseSecrets(name string, data, key []byte) (*Secrets, error) {
	if bytes.HasPrefix(data, []byte(secretsHeaderPrefix)) {
		if key == nil {
			return nil, fmt.Errorf("%w: %s is in version 3 but the store has no store key (store.key.age is missing)", ErrCorrupt, name)
		}
		return decodeSecretsV3(name, data, key)
	}
	var head struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	switch head.Version {
	case 2:
		s := &Secrets{}
		if err := json.Unmarshal(data, s); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
		}
		if s.Secrets == nil {
			s.Secrets = map[string]*Secret{}
		}
		s.readVersion = 2
		return s, nil
	case 0, 1:
		var v1 struct {
			Secrets map[string]secretV1 `json:"secrets"`
		}
		if err := json.Unmarshal(data, &v1); err != nil {
			return nil, fmt.Errorf("%w: %s (version 1): %v", ErrCorrupt, name, err)
		}
		s := &Secrets{Version: 1, Secrets: make(map[string]*Secret, len(v1.Secrets)), readVersion: 1}
		for n, old := range v1.Secrets {
			s.Secrets[n] = &Secret{Value: []byte(old.Value), CreatedAt: old.CreatedAt, UpdatedAt: old.UpdatedAt,
				RotateVia: old.RotateVia, RotatedAt: old.LastRotated}
		}
		return s, nil
	}
	return nil, fmt.Errorf("%w: %s: version %d is newer than this secrets binary understands", ErrCorrupt, name, head.Version)
}

// ReadVersion returns the format version the document was read in (1, 2 or 3; 3 for a
// new one).
func (s *Secrets) ReadVersion() int { return s.readVersion }
