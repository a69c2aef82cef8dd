package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/agent-secrets/secrets/internal/safefile"
)

// InitOptions are Options plus what only init decides.
type InitOptions struct {
	Options
	PQ bool // generate a hybrid post-quantum (ML-KEM-768 + X25519) identity
}

// Init creates the store directory (0700) and its identity and config.json, and returns
// the store locked, so that the caller can write the first audit entry, leases.age and,
// last of all, secrets.age, whose presence marks the store initialized. It fails with
// ErrAlreadyInitialized, changing nothing, when secrets.age exists. An identity left by
// an init that crashed is reused, never overwritten; other leftovers are moved aside.
func Init(ctx context.Context, o InitOptions) (*Store, error) {
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", o.Dir, err)
	}
	if err := checkDir(o.Dir); err != nil {
		return nil, err
	}
	if err := checkStateDir(o.Options); err != nil {
		return nil, err
	}
	s := &Store{dir: o.Dir, stateDir: o.stateDir(), cfg: DefaultConfig(o.Dir)}
	if err := s.acquire(ctx, o.LockTimeout); err != nil {
		return nil, err
	}
	if err := s.create(o); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) create(o InitOptions) error {
	if _, err := os.Lstat(s.Path(SecretsFile)); err == nil {
		return fmt.Errorf("%w: %s exists", ErrAlreadyInitialized, s.Path(SecretsFile))
	}
	if err := s.RemoveTemps(); err != nil {
		return err
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	_, err := os.Lstat(s.Path(IdentityFile))
	if o.IdentityKey == "" && o.IdentityFile == "" && errors.Is(err, fs.ErrNotExist) {
		_, text, err := newIdentity(o.PQ, now())
		if err != nil {
			return fmt.Errorf("generate identity: %w", err)
		}
		if err := safefile.Replace(s.Path(IdentityFile), text); err != nil {
			return err
		}
	}
	if err := s.prepare(o.Options); err != nil {
		return err
	}
	stamp := now().UTC().Format("20060102T150405Z")
	for _, name := range []string{LeasesFile, AuditFile, StoreKeyFile, IntentFile} {
		if _, err := os.Lstat(s.Path(name)); err == nil {
			if err := os.Rename(s.Path(name), s.Path(name)+".orphan-"+stamp); err != nil {
				return fmt.Errorf("move aside %s: %w", name, err)
			}
		}
	}
	cfg, err := marshal(s.cfg)
	if err != nil {
		return err
	}
	return safefile.Replace(s.Path(ConfigFile), cfg)
}

// NewSecrets returns an empty secrets document for a new store.
func NewSecrets() *Secrets {
	return &Secrets{Version: SecretsVersion, Secrets: map[string]*Secret{}, readVersion: SecretsVersion}
}

// IsPQ reports whether the identity is a hybrid post-quantum one.
func (s *Store) IsPQ() bool {
	return len(s.id.public) > 6 && s.id.public[:6] == "age1pq"
}
