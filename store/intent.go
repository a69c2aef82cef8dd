package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/agent-secrets/secrets/internal/safefile"
)

// A killswitch must cut access while another process holds the store lock (a stuck
// prompt, a suspended command, a hostile flock). It records its intent in
// killswitch.intent without the lock; every later command applies it, under the lock,
// before it hands anything out (vault). These are the file's primitives; its content and
// MAC are the vault's.

// OpenUnlocked opens the store as Open does, but without the lock: for the killswitch
// when the lock is held, which only reads the state, signals its consumers and writes
// killswitch.intent. A store opened so refuses every other write.
func OpenUnlocked(ctx context.Context, o Options) (*Store, error) {
	if err := checkDir(o.Dir); err != nil {
		return nil, err
	}
	cfg, err := readConfig(o.Dir)
	if err != nil {
		return nil, err
	}
	if err := checkStateDir(o); err != nil {
		return nil, err
	}
	s := &Store{dir: o.Dir, stateDir: o.stateDir(), cfg: cfg, unlocked: true}
	if _, err := os.Lstat(s.Path(SecretsFile)); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no %s", ErrNotInitialized, o.Dir, SecretsFile)
	}
	if err := s.prepare(o); err != nil {
		return nil, err
	}
	return s, nil
}

// errUnlocked refuses a write through a store opened with OpenUnlocked.
var errUnlocked = errors.New("the store is open without its lock: only killswitch.intent may be written")

// WriteIntent writes killswitch.intent durably, with or without the lock. A process that
// holds the lock may remove the temp file before it is renamed (RemoveTemps): the write
// is tried again.
func (s *Store) WriteIntent(b []byte) error {
	var err error
	for range 5 {
		if err = safefile.Replace(s.Path(IntentFile), b); err == nil {
			return nil
		}
	}
	return err
}

// HasIntent reports whether killswitch.intent exists: one stat, for the check every
// write makes before it commits.
func (s *Store) HasIntent() bool {
	_, err := os.Lstat(s.Path(IntentFile))
	return err == nil
}

// ReadIntent returns killswitch.intent's content; no file is fs.ErrNotExist.
func (s *Store) ReadIntent() ([]byte, error) { return safefile.Read(s.Path(IntentFile)) }

// RemoveIntent removes killswitch.intent, durably, once what it asked is in the state. The
// lock must be held.
func (s *Store) RemoveIntent() error {
	if s.unlocked {
		return errUnlocked
	}
	if err := os.Remove(s.Path(IntentFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", safefile.ErrWrite, err)
	}
	return safefile.SyncDir(s.stateDir)
}
