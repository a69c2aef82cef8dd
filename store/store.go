// Package store is the store directory and nothing but its files: the configuration,
// the age identity, the two age-encrypted documents (secrets.age, and leases.age, whose
// content is the caller's), the exclusive lock every invocation holds while it works,
// and the atomic writes that keep every file either old or new. It knows no lease, audit
// or .env type; the vault package composes it with those. Open returns a locked handle;
// Close releases it.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"filippo.io/age"
	"github.com/agent-secrets/secrets/internal/crash"
	names "github.com/agent-secrets/secrets/internal/name"
	"github.com/agent-secrets/secrets/internal/safefile"
)

// The files of a store. The shared part (secrets.age, store.key.age, config.json, and
// the identity by default) is in the store directory; the local part, what one machine or
// one CI run does with it (leases.age, the audit log, the lock and a pending killswitch),
// is in the state directory, which is the store directory unless set apart.
const (
	IdentityFile = "identity.age"
	SecretsFile  = "secrets.age"
	StoreKeyFile = "store.key.age"
	ConfigFile   = "config.json"
	LeasesFile   = "leases.age"
	AuditFile    = "audit.jsonl"
	LockFile     = ".lock"
	IntentFile   = "killswitch.intent"
	// PendingFile holds the values of pending-secret requests (a guarded store's agent
	// user asked for a secret to be added) until an admin decides them.
	PendingFile = "pending.age"
)

// local reports whether name belongs to the state directory.
func local(name string) bool {
	switch name {
	case LeasesFile, AuditFile, LockFile, IntentFile, PendingFile:
		return true
	}
	return false
}

// Options says where the store is and how to reach its identity.
type Options struct {
	Dir string
	// StateDir holds the local part of the store; "" is Dir.
	StateDir string
	// LockTimeout bounds the wait for the lock; 0 uses config.json's lock_timeout.
	LockTimeout time.Duration
	// IdentityKey is an AGE-SECRET-KEY line (from $SECRETS_IDENTITY) used instead of identity.age.
	IdentityKey string
	// IdentityFile is a path (from $SECRETS_IDENTITY_FILE) used instead of identity.age.
	IdentityFile string
	// Now stamps the identity's creation comment.
	Now func() time.Time
	// Failsafe opens the store for a command that only cuts access (revoke --all, the
	// killswitch, the heartbeat's fail action): a config.json that does not parse or has
	// a loose mode is replaced by the defaults (the vault holds them to the pinned
	// values), and a loose mode on the directories or the identity is reported
	// (Problems) rather than refused. One bad write to a file must not keep access from
	// being cut.
	Failsafe bool
}

func (o Options) stateDir() string {
	if o.StateDir == "" {
		return o.Dir
	}
	return o.StateDir
}

// checkStateDir makes sure a state directory set apart from the store exists (a new
// machine or CI run starts its local part empty) and is private.
func checkStateDir(o Options) error {
	if o.StateDir == "" || o.StateDir == o.Dir {
		return nil
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", o.StateDir, err)
	}
	return safefile.CheckDir(o.StateDir)
}

// Store is an open, locked store directory. It is not safe for concurrent use by
// goroutines; across processes, the lock makes each holder the only writer.
type Store struct {
	dir, stateDir string
	cfg           Config
	problems      []error // what a failsafe open tolerated
	id            *identity
	idSource      string
	lock          *os.File // holds the flock; closing it releases the lock
	key           []byte   // the store key, once read
	keyFileSum    [32]byte // the sha256 of the store.key.age it was read from
	keyErr        error
	temps         []string // the temp files of the store's directories, once listed
	claimed       []string // the claimed killswitch intents, once listed
	listed        bool
	noteLen       int  // the lock file's length as LockNote found it (0 before)
	unlocked      bool // opened without the lock (OpenUnlocked): no writes
}

// Dir returns the store directory.
func (s *Store) Dir() string { return s.dir }

// StateDir returns the directory of the store's local part.
func (s *Store) StateDir() string { return s.stateDir }

// Path returns the path of one of the store's files, in the directory of its part.
func (s *Store) Path(name string) string {
	if local(name) {
		return filepath.Join(s.stateDir, name)
	}
	return filepath.Join(s.dir, name)
}

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
func Open(ctx context.Context, o Options) (*Store, error) { return open(ctx, o, true) }

// open is Open, and OpenUnlocked without the lock.
func open(ctx context.Context, o Options, lock bool) (*Store, error) {
	var problems []error
	tolerate := func(err error) error {
		var pe *safefile.PermError
		if o.Failsafe && (errors.As(err, &pe) && pe.Reason == "mode" || errors.Is(err, ErrInvalidConfig)) {
			problems = append(problems, err)
			return nil
		}
		return err
	}
	if err := checkDir(o.Dir); tolerate(err) != nil {
		return nil, err
	}
	cfg, err := readConfig(o.Dir)
	if err != nil {
		if tolerate(err) != nil {
			return nil, err
		}
		cfg = DefaultConfig(o.Dir)
	}
	if err := checkStateDir(o); tolerate(err) != nil {
		return nil, err
	}
	s := &Store{dir: o.Dir, stateDir: o.stateDir(), cfg: cfg, unlocked: !lock, problems: problems}
	if lock {
		if err := s.acquire(ctx, o.LockTimeout); err != nil {
			return nil, err
		}
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

// prepare loads the identity. The lock must be held.
func (s *Store) prepare(o Options) error {
	id, src, err := loadIdentity(o, s.Path(IdentityFile))
	var pe *safefile.PermError
	if o.Failsafe && errors.As(err, &pe) && pe.Reason == "mode" {
		s.problems = append(s.problems, err)
		id, src, err = loadLooseIdentity(pe.Path)
	}
	if err != nil {
		return err
	}
	s.id, s.idSource = id, src
	return nil
}

// RemoveTemps deletes the temp files that writers which died between create and rename
// left in both directories. It must run under the lock, by a command that writes, after
// anything that may be rolled forward from them has been (vault.Update does both).
func (s *Store) RemoveTemps() error {
	if s.unlocked {
		return errUnlocked
	}
	temps, err := s.listTemps()
	if err != nil {
		return fmt.Errorf("remove temp files: %w", err)
	}
	for _, p := range temps {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove temp files: %w", err)
		}
	}
	s.temps = nil
	return nil
}

// listTemps lists the temp files of the store's directories once per handle: the lock is
// held, so only this process adds or removes any after that.
func (s *Store) listTemps() ([]string, error) {
	if err := s.list(); err != nil {
		return nil, err
	}
	return s.temps, nil
}

// list reads the store's directories once per handle, for the temp files and the claimed
// killswitch intents (intent.go) in them.
func (s *Store) list() error {
	if s.listed {
		return nil
	}
	dirs := []string{s.dir}
	if s.stateDir != s.dir {
		dirs = append(dirs, s.stateDir)
	}
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			return err
		}
		for _, e := range entries {
			switch name := e.Name(); {
			case safefile.IsTemp(name):
				s.temps = append(s.temps, filepath.Join(d, name))
			case d == s.stateDir && strings.HasPrefix(name, claimedPrefix):
				s.claimed = append(s.claimed, filepath.Join(d, name))
			}
		}
	}
	s.listed = true
	return nil
}

// LockNote returns what SetLockNote last left in the lock file (the audit log's stamp),
// or nil. The note is only a hint for the caller to check, never trusted as it is.
func (s *Store) LockNote() []byte {
	if s.unlocked {
		b, _ := safefile.Read(s.Path(LockFile)) // a hint, read without the lock
		return b
	}
	if s.lock == nil {
		return nil
	}
	buf := make([]byte, 512)
	n, _ := s.lock.ReadAt(buf, 0)
	s.noteLen = n
	return buf[:n]
}

// SetLockNote replaces the lock file's contents with b. The lock file is never renamed
// and is open already, so this is one write; it is not fsynced, because a note lost in a
// crash only costs the next command the work the note saves. The lock must be held.
func (s *Store) SetLockNote(b []byte) error {
	if s.lock == nil || s.unlocked {
		return nil
	}
	if _, err := s.lock.WriteAt(b, 0); err != nil {
		return err
	}
	if s.noteLen == len(b) {
		return nil // written over in place: the file is as long as the note already
	}
	s.noteLen = len(b)
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

// loadLooseIdentity reads an identity file whose mode is too open, for a failsafe open
// only: never through a symlink, and only a regular file of ours.
func loadLooseIdentity(path string) (*identity, string, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, "", err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !fi.Mode().IsRegular() || ok && int(st.Uid) != os.Getuid() {
		return nil, "", &safefile.PermError{Path: path, Mode: fi.Mode(), Reason: "owner"}
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, "", err
	}
	id, err := parseIdentity(path, data)
	return id, path, err
}

// Problems are what a failsafe open tolerated (Options.Failsafe), for a warning.
func (s *Store) Problems() []error { return s.problems }

// LoadSecrets decrypts and parses all of secrets.age, in any format (version 3 checked
// under the store key). It never returns an empty store for a file that failed:
// ErrDecrypt or ErrCorrupt leave the caller nothing to write back.
func (s *Store) LoadSecrets() (*Secrets, error) { return s.loadSecretsFrom(s.Path(SecretsFile)) }

// LoadSecretsFile is LoadSecrets of another file of the store's (a staged secrets.age).
func (s *Store) LoadSecretsFile(path string) (*Secrets, error) { return s.loadSecretsFrom(path) }

func (s *Store) loadSecretsFrom(path string) (*Secrets, error) {
	data, err := s.decryptPath(path)
	if err != nil {
		return nil, err
	}
	defer clear(data)
	key, err := s.secretsKey()
	if err != nil {
		return nil, err
	}
	return parseSecrets(path, data, key)
}

// secretsKey is the key secrets.age version 3 is MAC'd with, or nil on a store that has
// no store key yet.
func (s *Store) secretsKey() ([]byte, error) {
	key, err := s.Key(KeySecrets)
	if errors.Is(err, ErrNoStoreKey) {
		return nil, nil
	}
	return key, err
}

// LookupSecret returns one secret, and the generation and format version of secrets.age.
// A version 3 file is read only as far as the secret: age decrypts the chunks the binary
// search over its name-ordered lines touches, and the header and that entry are checked.
// An older file is read whole. An unknown name is ErrSecretNotFound, with the generation.
func (s *Store) LookupSecret(name string) (*Secret, uint64, int, error) {
	l, err := s.LookupSecrets(name)
	if err != nil {
		return nil, l.Generation, l.Version, err
	}
	if sec := l.Found[name]; sec != nil {
		return sec, l.Generation, l.Version, nil
	}
	return nil, l.Generation, l.Version, fmt.Errorf("%w: %s", ErrSecretNotFound, names.Shown(name))
}

// Lookup is what LookupSecrets read: the secrets found, and of the file its generation,
// format version and default policy.
type Lookup struct {
	Found      map[string]*Secret
	Generation uint64
	Version    int
	Policy     []byte
}

// LookupSecrets is LookupSecret for several names, with one decryption of secrets.age:
// the names it holds map to their secrets, the others are absent from Found.
func (s *Store) LookupSecrets(names ...string) (Lookup, error) {
	path := s.Path(SecretsFile)
	r, size, closer, err := s.openDecrypted(path)
	if err != nil {
		return Lookup{}, err
	}
	defer closer.Close()
	found := make(map[string]*Secret, len(names))
	head := make([]byte, len(secretsHeaderPrefix))
	if n, _ := r.ReadAt(head, 0); n == len(head) && string(head) == secretsHeaderPrefix {
		key, err := s.secretsKey()
		if err != nil {
			return Lookup{}, err
		}
		if key == nil {
			return Lookup{}, fmt.Errorf("%w: %s is in version 3 but the store has no store key (store.key.age is missing)", ErrCorrupt, path)
		}
		var h secretsHeader
		for i, name := range append([]string{""}, names...)[min(1, len(names)):] {
			// The first lookup ("" when there are no names: the header alone) gives the
			// header; every lookup checks the header it reads.
			sec, got, err := lookupSecretV3(path, r, size, name, key)
			if err != nil && !errors.Is(err, ErrSecretNotFound) {
				return Lookup{}, err
			}
			if i == 0 {
				h = got
			}
			if sec != nil {
				found[name] = sec
			}
		}
		return Lookup{Found: found, Generation: h.generation, Version: SecretsVersion, Policy: h.policy}, nil
	}
	all, err := s.LoadSecrets()
	if err != nil {
		return Lookup{}, err
	}
	for _, name := range names {
		if sec, err := all.Get(name); err == nil {
			found[name] = sec
		}
	}
	return Lookup{Found: found, Generation: all.Generation, Version: all.readVersion, Policy: all.Policy}, nil
}

// SecretsGeneration returns the generation and format version of secrets.age, reading
// of a version 3 file only its header.
func (s *Store) SecretsGeneration() (uint64, int, error) {
	_, gen, version, err := s.LookupSecret("")
	if errors.Is(err, ErrSecretNotFound) {
		err = nil
	}
	return gen, version, err
}

// openDecrypted opens an age file of the store for reads at any offset.
func (s *Store) openDecrypted(path string) (io.ReaderAt, int64, io.Closer, error) {
	f, err := safefile.Open(path)
	if err != nil {
		return nil, 0, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, nil, err
	}
	r, size, err := age.DecryptReaderAt(f, fi.Size(), s.id.id)
	if err != nil {
		f.Close()
		return nil, 0, nil, fmt.Errorf("%w: %s: %v", ErrDecrypt, path, err)
	}
	return &chunkReader{r: r, size: size}, size, f, nil
}

// StagedSecrets looks for a complete secrets.age that a command staged and did not
// publish before it stopped, at generation. The log records a write of secrets.age before
// the file is renamed into place, and the file is staged before that record: so when the
// log names a newer generation than secrets.age holds, a staged file of that generation
// that checks out is the one to roll forward to. It returns its path, or "".
func (s *Store) StagedSecrets(generation uint64) (string, error) {
	temps, err := s.listTemps()
	if err != nil {
		return "", err
	}
	for _, p := range temps {
		if filepath.Dir(p) != filepath.Clean(s.dir) || !strings.HasPrefix(filepath.Base(p), "."+SecretsFile+".secrets-tmp-") {
			continue
		}
		sec, err := s.loadSecretsFrom(p)
		if err == nil && sec.readVersion == SecretsVersion && sec.Generation == generation {
			return p, nil
		}
	}
	return "", nil
}

// PublishStaged renames a staged secrets.age (StagedSecrets) into place, durably.
func (s *Store) PublishStaged(path string) error {
	if err := os.Rename(path, s.Path(SecretsFile)); err != nil {
		return fmt.Errorf("%w: %w", safefile.ErrWrite, err)
	}
	s.temps = slices.DeleteFunc(s.temps, func(p string) bool { return p == path })
	return safefile.SyncDir(s.dir)
}

// ReadState decrypts leases.age and returns its plaintext, which is the caller's
// document. A missing leases.age (a store written by the earlier tool, or one whose
// leases.age was lost) is fs.ErrNotExist; a file that will not decrypt is ErrDecrypt.
func (s *Store) ReadState() ([]byte, error) { return s.decryptFile(LeasesFile) }

// OpenState returns leases.age decrypted on demand, for a caller that reads only part of
// it (the snapshot's header), and the plaintext size; close the file when done. A missing
// leases.age is fs.ErrNotExist.
func (s *Store) OpenState() (io.ReaderAt, int64, io.Closer, error) {
	return s.openDecrypted(s.Path(LeasesFile))
}

// Commit is what one transaction writes: the plaintext of leases.age and the secrets at
// the generation the caller set, either nil to leave that file as it is.
type Commit struct {
	State   []byte
	Secrets *Secrets
}

// Save writes c. secrets.age is encrypted and staged (written and fsynced under a temp
// name) first, then gate runs (the caller's audit append, which records the generation),
// while leases.age is staged beside it; only if gate succeeds are the files renamed into
// place, with one directory fsync for each directory. So a crash after the append leaves
// a complete staged secrets.age for the next command to roll forward to (StagedSecrets),
// never a log that names a generation no file holds. secrets.age is renamed first: a
// crash between the renames leaves a stored value with its old leases (which expire),
// never revoked leases with the new value lost, which after a rotation whose hook retired
// the old credential would lose the credential (make before break; TestStressCrash found
// the other order's hole). The one exception is a store's first secrets.age: its presence
// marks the store initialized, so it goes last, and a crash before it leaves a store that
// init finishes. If gate fails, no file changes and its error is returned. A secrets
// document read in an older format is first backed up as secrets.age.v<N>.bak. The lock
// must be held.
func (s *Store) Save(c Commit, gate func() error) error {
	if s.unlocked {
		return errUnlocked
	}
	sec := c.Secrets
	if sec != nil && sec.readVersion < SecretsVersion && sec.readVersion > 0 {
		old, err := safefile.Read(s.Path(SecretsFile))
		if err != nil {
			return fmt.Errorf("back up version %d store: %w", sec.readVersion, err)
		}
		if err := safefile.Replace(fmt.Sprintf("%s.v%d.bak", s.Path(SecretsFile), sec.readVersion), old); err != nil {
			return err
		}
	}
	var secStaged *safefile.Staged
	if sec != nil {
		key, err := s.secretsKey()
		if err != nil {
			return err
		}
		if key == nil {
			return fmt.Errorf("write %s: %w", SecretsFile, ErrNoStoreKey)
		}
		sec.Version = SecretsVersion
		if secStaged, err = s.stage(SecretsFile, encodeSecretsV3(sec, key)); err != nil {
			return err
		}
		crash.Point("secrets.staged", "")
	}
	var stStaged *safefile.Staged
	stErr := make(chan error, 1)
	go func() {
		var err error
		if c.State != nil {
			stStaged, err = s.stage(LeasesFile, c.State)
		}
		stErr <- err
	}()
	err := error(nil)
	if gate != nil {
		err = gate()
	}
	if serr := <-stErr; err == nil {
		err = serr
	}
	if err != nil {
		for _, f := range []*safefile.Staged{secStaged, stStaged} {
			if f != nil {
				f.Discard()
			}
		}
		return err
	}
	first := false
	if _, missing := os.Lstat(s.Path(SecretsFile)); errors.Is(missing, fs.ErrNotExist) {
		first = true
	}
	if secStaged != nil && !first {
		if err := safefile.Publish(s.dir, secStaged); err != nil {
			if stStaged != nil {
				stStaged.Discard()
			}
			return err
		}
		sec.readVersion = SecretsVersion
	}
	if stStaged != nil {
		if err := safefile.Publish(s.stateDir, stStaged); err != nil {
			if secStaged != nil && first {
				secStaged.Discard()
			}
			return err
		}
	}
	if secStaged != nil && first {
		if err := safefile.Publish(s.dir, secStaged); err != nil {
			return err
		}
		sec.readVersion = SecretsVersion
	}
	return nil
}

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

func (s *Store) decryptFile(name string) ([]byte, error) { return s.decryptPath(s.Path(name)) }

// ReadPending returns the decrypted pending.age, or nil when there is none. The lock must
// be held.
func (s *Store) ReadPending() ([]byte, error) {
	b, err := s.decryptFile(PendingFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// WritePending replaces pending.age with plain, encrypted, atomically; nil removes it.
// The lock must be held.
func (s *Store) WritePending(plain []byte) error {
	if s.unlocked {
		return errUnlocked
	}
	if plain == nil {
		if err := os.Remove(s.Path(PendingFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: remove %s: %w", safefile.ErrWrite, PendingFile, err)
		}
		return nil
	}
	f, err := s.stage(PendingFile, plain)
	if err != nil {
		return err
	}
	return safefile.Publish(s.stateDir, f)
}

func (s *Store) decryptPath(path string) ([]byte, error) {
	data, err := safefile.Read(path)
	if err != nil {
		return nil, err
	}
	return s.id.decrypt(path, data)
}
