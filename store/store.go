// Package store is the store directory and nothing but its files: the configuration,
// the age identity, the two age-encrypted documents (secrets.age, and leases.age, whose
// content is the caller's), the exclusive lock every invocation holds while it works,
// and the atomic writes that keep every file either old or new. It knows no lease, audit
// or .env type; the vault package composes it with those. Open returns a locked handle;
// Close releases it.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/agent-secrets/secrets/internal/safefile"
)

// The files of a store directory.
const (
	IdentityFile = "identity.age"
	SecretsFile  = "secrets.age"
	LeasesFile   = "leases.age"
	AuditFile    = "audit.jsonl"
	ConfigFile   = "config.json"
	LockFile     = ".lock"
)

// Options says where the store is and how to reach its identity.
type Options struct {
	Dir string
	// LockTimeout bounds the wait for the lock; 0 uses config.json's lock_timeout.
	LockTimeout time.Duration
	// IdentityKey is an AGE-SECRET-KEY line (from $SECRETS_IDENTITY) used instead of identity.age.
	IdentityKey string
	// IdentityFile is a path (from $SECRETS_IDENTITY_FILE) used instead of identity.age.
	IdentityFile string
	// Now stamps the identity's creation comment.
	Now func() time.Time
}

// Store is an open, locked store directory. It is not safe for concurrent use by
// goroutines; across processes, the lock makes each holder the only writer.
type Store struct {
	dir      string
	cfg      Config
	id       *identity
	idSource string
	lock     *os.File // holds the flock; closing it releases the lock
}

// Dir returns the store directory.
func (s *Store) Dir() string { return s.dir }

// Path returns the path of a file in the store directory.
func (s *Store) Path(name string) string { return filepath.Join(s.dir, name) }

// Config returns the configuration read at Open.
func (s *Store) Config() Config { return s.cfg }

// PublicKey returns the identity's age recipient.
func (s *Store) PublicKey() string { return s.id.public }

// IdentitySource says where the identity came from: a file path or "$SECRETS_IDENTITY".
func (s *Store) IdentitySource() string { return s.idSource }

// AuditKey returns the audit log's MAC key, derived from the identity.
func (s *Store) AuditKey() []byte { return s.id.macKey() }

// Open checks the directory, reads config.json, takes the exclusive lock (waiting at most
// the lock timeout, then ErrLocked), and loads the identity. It fails with
// ErrNotInitialized when there is no store, and with ErrInsecure for a loose mode, a
// foreign owner or a symlinked file. The caller must Close the store.
func Open(ctx context.Context, o Options) (*Store, error) {
	if err := checkDir(o.Dir); err != nil {
		return nil, err
	}
	cfg, err := readConfig(o.Dir)
	if err != nil {
		return nil, err
	}
	s := &Store{dir: o.Dir, cfg: cfg}
	if err := s.acquire(ctx, o.LockTimeout); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(s.Path(SecretsFile)); errors.Is(err, fs.ErrNotExist) {
		s.Close()
		return nil, fmt.Errorf("%w: %s has no %s", ErrNotInitialized, o.Dir, SecretsFile)
	}
	if err := s.prepare(o); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// prepare removes dead temp files and loads the identity. The lock must be held.
func (s *Store) prepare(o Options) error {
	if err := safefile.RemoveTemps(s.dir, ""); err != nil {
		return fmt.Errorf("remove temp files: %w", err)
	}
	id, src, err := loadIdentity(o, s.Path(IdentityFile))
	if err != nil {
		return err
	}
	s.id, s.idSource = id, src
	return nil
}

// LockNote returns what SetLockNote last left in the lock file (the audit log's stamp),
// or nil. The note is only a hint for the caller to check, never trusted as it is.
func (s *Store) LockNote() []byte {
	if s.lock == nil {
		return nil
	}
	buf := make([]byte, 512)
	n, _ := s.lock.ReadAt(buf, 0)
	return buf[:n]
}

// SetLockNote replaces the lock file's contents with b. The lock file is never renamed
// and is open already, so this is one write; it is not fsynced, because a note lost in a
// crash only costs the next command the work the note saves. The lock must be held.
func (s *Store) SetLockNote(b []byte) error {
	if s.lock == nil {
		return nil
	}
	if _, err := s.lock.WriteAt(b, 0); err != nil {
		return err
	}
	return s.lock.Truncate(int64(len(b)))
}

// Close releases the lock. It is safe to call more than once.
func (s *Store) Close() error {
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close()
	s.lock = nil
	return err
}

func checkDir(dir string) error {
	err := safefile.CheckDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s does not exist", ErrNotInitialized, dir)
	}
	return err
}

func readConfig(dir string) (Config, error) {
	path := filepath.Join(dir, ConfigFile)
	data, err := safefile.Read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return DefaultConfig(dir), nil
	}
	if err != nil {
		return Config{}, err
	}
	return ParseConfig(path, dir, data)
}

// acquire takes the exclusive flock on .lock, never following a symlink.
func (s *Store) acquire(ctx context.Context, timeout time.Duration) error {
	if lockingDisabled {
		return nil
	}
	if timeout <= 0 {
		timeout = time.Duration(s.cfg.LockTimeout)
	}
	f, err := lockFile(ctx, s.Path(LockFile), timeout)
	if err != nil {
		return err
	}
	s.lock = f
	return nil
}

// loadIdentity reads the identity from $SECRETS_IDENTITY, $SECRETS_IDENTITY_FILE or
// identity.age, in that order, and returns it with a description of its source.
func loadIdentity(o Options, defaultPath string) (*identity, string, error) {
	if o.IdentityKey != "" {
		id, err := parseIdentity("$SECRETS_IDENTITY", []byte(o.IdentityKey))
		return id, "$SECRETS_IDENTITY", err
	}
	path := defaultPath
	if o.IdentityFile != "" {
		path = o.IdentityFile
	}
	data, err := safefile.Read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("%w: identity %s is missing", ErrNotInitialized, path)
	}
	if err != nil {
		return nil, "", err
	}
	id, err := parseIdentity(path, data)
	return id, path, err
}

// LoadSecrets decrypts and parses secrets.age. It never returns an empty store for a file
// that failed: ErrDecrypt or ErrCorrupt leave the caller nothing to write back.
func (s *Store) LoadSecrets() (*Secrets, error) {
	data, err := s.decryptFile(SecretsFile)
	if err != nil {
		return nil, err
	}
	defer clear(data)
	return parseSecrets(s.Path(SecretsFile), data)
}

// ReadState decrypts leases.age and returns its plaintext, which is the caller's
// document. A missing leases.age (a store written by the earlier tool, or one whose
// leases.age was lost) is fs.ErrNotExist; a file that will not decrypt is ErrDecrypt.
func (s *Store) ReadState() ([]byte, error) { return s.decryptFile(LeasesFile) }

// Commit is what one transaction writes: the plaintext of leases.age and the secrets,
// either nil to leave that file as it is.
type Commit struct {
	State   []byte
	Secrets *Secrets
}

// Save writes c. Each file is encrypted and written and fsynced under a temp name while
// gate runs (the caller's audit append); only if gate succeeds are they renamed into
// place, with one directory fsync for both. secrets.age goes first: a crash between the
// two renames then leaves a stored value with its old leases (which expire), never
// revoked leases with the new value lost, which after a rotation whose hook retired the
// old credential would lose the credential (make before break; TestStressCrash found the
// other order's hole). The one exception is a store's first secrets.age: its presence
// is what marks the store initialized, so it goes last, and a crash before it leaves a
// store that init finishes. If gate fails, no file changes and its error is returned. A
// secrets document read in version 1 format is first backed up as secrets.age.v1.bak.
// The lock must be held.
func (s *Store) Save(c Commit, gate func() error) error {
	sec := c.Secrets
	if sec != nil && sec.readVersion == 1 {
		old, err := safefile.Read(s.Path(SecretsFile))
		if err != nil {
			return fmt.Errorf("back up version 1 store: %w", err)
		}
		if err := safefile.Replace(s.Path(SecretsFile+".v1.bak"), old); err != nil {
			return err
		}
		sec.readVersion = SecretsVersion
	}
	gateErr := make(chan error, 1)
	go func() {
		if gate == nil {
			gateErr <- nil
			return
		}
		gateErr <- gate()
	}()
	var secStaged *safefile.Staged
	var secErr error
	secDone := make(chan struct{})
	go func() {
		defer close(secDone)
		if sec != nil {
			sec.Version = SecretsVersion
			sec.Generation++
			plain, err := json.Marshal(sec)
			if err != nil {
				secErr = fmt.Errorf("encode %s: %w", SecretsFile, err)
				return
			}
			secStaged, secErr = s.stage(SecretsFile, plain)
		}
	}()
	var stStaged *safefile.Staged
	var stErr error
	if c.State != nil {
		stStaged, stErr = s.stage(LeasesFile, c.State)
	}
	<-secDone
	err := <-gateErr
	for _, e := range []error{stErr, secErr} {
		if err == nil {
			err = e
		}
	}
	files := []*safefile.Staged{secStaged, stStaged}
	if _, missing := os.Lstat(s.Path(SecretsFile)); errors.Is(missing, fs.ErrNotExist) {
		files[0], files[1] = stStaged, secStaged
	}
	var staged []*safefile.Staged
	for _, f := range files {
		if f != nil {
			staged = append(staged, f)
		}
	}
	if err != nil {
		for _, f := range staged {
			f.Discard()
		}
		return err
	}
	if len(staged) == 0 {
		return nil
	}
	return safefile.Publish(s.dir, staged...)
}

// stage encrypts one document and stages it; the plaintext is cleared.
func (s *Store) stage(name string, plain []byte) (*safefile.Staged, error) {
	ct, err := s.id.encrypt(plain)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("encrypt %s: %w", name, err)
	}
	return safefile.Stage(s.Path(name), func(w io.Writer) error {
		_, err := w.Write(ct)
		return err
	})
}

func (s *Store) decryptFile(name string) ([]byte, error) {
	data, err := safefile.Read(s.Path(name))
	if err != nil {
		return nil, err
	}
	return s.id.decrypt(s.Path(name), data)
}
