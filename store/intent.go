package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

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
func OpenUnlocked(ctx context.Context, o Options) (*Store, error) { return open(ctx, o, false) }

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

// A command that applies an intent first claims it: killswitch.intent is renamed to a name
// of its own (killswitch.intent.claimed-<random>), so an intent written after that, to
// killswitch.intent again, is never removed by a command that did not apply it. The claimed
// file is removed once the state holds what it asked; a claimed file a command left (it
// stopped before its commit) is applied by the next.
const claimedPrefix = IntentFile + ".claimed-"

// IntentWaiting reports, without opening the store, whether the store at o has an intent
// waiting or claimed: a stat and a directory read, for an exec supervisor's poll.
func IntentWaiting(o Options) bool {
	dir := o.stateDir()
	if _, err := os.Lstat(filepath.Join(dir, IntentFile)); err == nil {
		return true
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), claimedPrefix) {
			return true
		}
	}
	return false
}

// HasIntent reports whether an intent is waiting in killswitch.intent: one stat, for the
// check every write makes before it commits.
func (s *Store) HasIntent() bool {
	_, err := os.Lstat(s.Path(IntentFile))
	return err == nil
}

// ClaimIntent renames killswitch.intent to a claimed name and returns that path, or "" when
// there is none. The lock must be held.
func (s *Store) ClaimIntent() (string, error) {
	if s.unlocked {
		return "", errUnlocked
	}
	suffix := make([]byte, 8)
	rand.Read(suffix)
	path := filepath.Join(s.stateDir, claimedPrefix+hex.EncodeToString(suffix))
	if err := os.Rename(s.Path(IntentFile), path); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("%w: claim %s: %w", safefile.ErrWrite, IntentFile, err)
	}
	return path, nil
}

// ClaimedIntents returns the intents claimed by commands that stopped before they
// applied them. The lock must be held.
func (s *Store) ClaimedIntents() ([]string, error) {
	if err := s.list(); err != nil {
		return nil, err
	}
	return s.claimed, nil
}

// Intents returns the paths of every intent not yet removed, claimed or waiting, for a
// reader without the lock (status, an exec supervisor).
func (s *Store) Intents() []string {
	var out []string
	if entries, err := os.ReadDir(s.stateDir); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), claimedPrefix) {
				out = append(out, filepath.Join(s.stateDir, e.Name()))
			}
		}
	}
	if s.HasIntent() {
		out = append(out, s.Path(IntentFile))
	}
	return out
}

// ReadIntent returns the content of the intent at path (killswitch.intent, or a claimed
// one); none is fs.ErrNotExist.
func (s *Store) ReadIntent(path string) ([]byte, error) { return safefile.Read(path) }

// RemoveIntents removes claimed intents, durably, once the state holds what they asked.
// The lock must be held.
func (s *Store) RemoveIntents(paths []string) error {
	if s.unlocked {
		return errUnlocked
	}
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %w", safefile.ErrWrite, err)
		}
	}
	s.claimed = slices.DeleteFunc(s.claimed, func(p string) bool { return slices.Contains(paths, p) })
	return safefile.SyncDir(s.stateDir)
}
