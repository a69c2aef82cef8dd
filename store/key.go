package store

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/agent-secrets/secrets/internal/crash"
	"github.com/agent-secrets/secrets/internal/safefile"
)

// The store key is 32 random bytes in store.key.age, encrypted to the store's recipients.
// Every MAC the store trusts (the audit log's lines, the state snapshot, secrets.age, the
// lock file's stamp, a killswitch intent, the witness) uses a key derived from it with
// HKDF, one per purpose, rather than from one identity: a second recipient, a recovery
// key or a plugin identity opens the same store key, so they verify the same store.
//
// Stores written before it existed derive their audit MAC key from the identity; they get
// a store key when they are converted (vault), and their log keeps verifying under the
// key each line was written with.

// The purposes of the keys derived from the store key. Each names a format version: a key
// is never reused for another use.
const (
	KeyAudit       = "secrets audit hmac-sha256 v2"
	KeyState       = "secrets state mac v1"
	KeySecrets     = "secrets secrets mac v1"
	KeyStamp       = "secrets stamp mac v1"
	KeyIntent      = "secrets intent mac v1"
	KeyWitness     = "secrets witness v1"
	KeyFingerprint = "secrets value fingerprint v2"
)

// ErrNoStoreKey reports a store that has no store key yet (written by an older release).
var ErrNoStoreKey = errors.New("the store has no store key")

type storeKeyDoc struct {
	Version int    `json:"version"`
	Key     string `json:"key"`
}

// HasStoreKey reports whether store.key.age exists.
func (s *Store) HasStoreKey() bool {
	_, err := os.Lstat(s.Path(StoreKeyFile))
	return err == nil
}

// storeKey decrypts store.key.age once per handle. A missing file is ErrNoStoreKey.
func (s *Store) storeKey() ([]byte, error) {
	if s.key != nil || s.keyErr != nil {
		return s.key, s.keyErr
	}
	data, err := s.decryptFile(StoreKeyFile)
	if errors.Is(err, fs.ErrNotExist) {
		s.keyErr = ErrNoStoreKey
		return nil, s.keyErr
	}
	if err != nil {
		s.keyErr = err
		return nil, err
	}
	var doc storeKeyDoc
	key, derr := []byte(nil), json.Unmarshal(data, &doc)
	if derr == nil && doc.Version == 1 {
		key, derr = base64.StdEncoding.DecodeString(doc.Key)
	}
	clear(data)
	if derr != nil || len(key) != 32 {
		s.keyErr = fmt.Errorf("%w: %s: not a store key", ErrCorrupt, s.Path(StoreKeyFile))
		return nil, s.keyErr
	}
	s.key = key
	return key, nil
}

// Key returns the key derived from the store key for purpose (one of the Key constants).
// It fails with ErrNoStoreKey on a store not converted yet.
func (s *Store) Key(purpose string) ([]byte, error) {
	k, err := s.storeKey()
	if err != nil {
		return nil, err
	}
	return hkdf.Key(sha256.New, k, nil, purpose, 32)
}

// KeyID names the store key without revealing it, for the log and the snapshot: the first
// 8 bytes of a hash of it, in hex.
func (s *Store) KeyID() (string, error) {
	k, err := s.storeKey()
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte("secrets store key id v1"))
	return "sk1:" + hex.EncodeToString(m.Sum(nil)[:8]), nil
}

// CreateStoreKey generates a store key and writes store.key.age, encrypted to the
// identity's recipient, replacing one a crashed conversion left. The lock must be held.
func (s *Store) CreateStoreKey() error {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return err
	}
	plain, err := json.Marshal(storeKeyDoc{Version: 1, Key: base64.StdEncoding.EncodeToString(k)})
	if err != nil {
		return err
	}
	ct, err := s.id.encrypt(plain)
	clear(plain)
	if err != nil {
		return fmt.Errorf("encrypt %s: %w", StoreKeyFile, err)
	}
	if err := safefile.Replace(s.Path(StoreKeyFile), ct); err != nil {
		clear(k)
		return err
	}
	crash.Point("storekey.written", "")
	s.key, s.keyErr = k, nil
	return nil
}

// LegacyAuditKey is the audit MAC key of a store written before the store key: derived
// from the identity. It verifies such a log's lines up to its conversion.
func (s *Store) LegacyAuditKey() []byte { return s.id.macKey() }

// MAC returns HMAC-SHA256 of parts, in order, under the key for purpose, as the
// "hmac-sha256:<hex>" text the store's files carry.
func MAC(key []byte, parts ...[]byte) string {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
}

// CheckMAC reports whether mac is MAC(key, parts...), in constant time.
func CheckMAC(mac string, key []byte, parts ...[]byte) bool {
	return hmac.Equal([]byte(mac), []byte(MAC(key, parts...)))
}
