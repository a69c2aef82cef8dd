package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/agent-secrets/secrets/internal/crash"
	"github.com/agent-secrets/secrets/internal/safefile"
)

// Shred crypto-shreds the store: secrets.age and its backups of older versions, leases.age
// and its backup, pending.age, store.key.age and identity.age (when the identity lives there) are each
// overwritten with random bytes, fsynced and removed. The audit log and config.json stay, so the record of what happened survives.
// It returns the files it shredded. The lock must be held.
func (s *Store) Shred() ([]string, error) {
	if s.unlocked {
		return nil, errUnlocked
	}
	var done []string
	for _, name := range []string{SecretsFile, SecretsFile + ".v1.bak", SecretsFile + ".v2.bak", LeasesFile, LeasesFile + ".v1.bak", PendingFile, StoreKeyFile, IdentityFile} {
		p := s.Path(name)
		if base, ok := strings.CutSuffix(name, ".v1.bak"); ok && base == LeasesFile {
			p = s.Path(LeasesFile) + ".v1.bak" // beside leases.age, in the local part
		}
		if name == IdentityFile && s.idSource != p {
			continue // the identity came from the environment: there is no file of ours
		}
		err := overwrite(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return done, fmt.Errorf("%w: shred %s: %w", safefile.ErrWrite, p, err)
		}
		crash.Point("shred.overwritten", name)
		if err := os.Remove(p); err != nil {
			return done, fmt.Errorf("%w: remove %s: %w", safefile.ErrWrite, p, err)
		}
		done = append(done, p)
	}
	if s.stateDir != s.dir {
		if err := safefile.SyncDir(s.stateDir); err != nil {
			return done, err
		}
	}
	return done, safefile.SyncDir(s.dir)
}

func overwrite(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, fi.Size()); err != nil {
		return err
	}
	return f.Sync()
}

// UnlockCode is what a person types to lift a lockdown: eight hex digits derived from
// the store's public key, shown by secrets status. It is not secret.
func (s *Store) UnlockCode() string {
	sum := sha256.Sum256([]byte(s.id.public))
	h := hex.EncodeToString(sum[:4])
	return h[:4] + "-" + h[4:]
}

// ShredDir finishes a wipe that a crash interrupted, on a store that can no longer be
// opened (secrets.age already gone, or a key file half overwritten): under the lock, it
// shreds whichever of identity.age, secrets.age, its v1 backup and leases.age remain. It
// needs no identity. The audit log and config stay.
func ShredDir(ctx context.Context, o Options) ([]string, error) {
	if err := checkDir(o.Dir); err != nil {
		return nil, err
	}
	s := &Store{dir: o.Dir, stateDir: o.stateDir(), cfg: DefaultConfig(o.Dir)}
	if err := s.acquire(ctx, o.LockTimeout); err != nil {
		return nil, err
	}
	defer s.Close()
	s.idSource = s.Path(IdentityFile)
	if o.IdentityKey != "" || o.IdentityFile != "" {
		s.idSource = "" // the identity lives outside the store: not ours to shred
	}
	return s.Shred()
}
