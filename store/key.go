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
	"strings"

	"github.com/agent-secrets/secrets/internal/codec"
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
	ct, err := safefile.Read(s.Path(StoreKeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		s.keyErr = ErrNoStoreKey
		return nil, s.keyErr
	}
	if err != nil {
		s.keyErr = err
		return nil, err
	}
	data, err := s.id.decrypt(s.Path(StoreKeyFile), ct)
	if err != nil {
		s.keyErr = err
		return nil, err
	}
	key, derr := decodeStoreKey(data)
	clear(data)
	if derr != nil || len(key) != 32 {
		s.keyErr = fmt.Errorf("%w: %s: not a store key", ErrCorrupt, s.Path(StoreKeyFile))
		return nil, s.keyErr
	}
	s.key, s.keyFileSum = key, sha256.Sum256(ct)
	return key, nil
}

// The key cache spares a command the age decryption of store.key.age, a quarter of what
// a lease does beyond starting up: the snapshot carries the store key, wrapped (XOR) under
// a pad derived with HKDF from the identity's secret and the sha256 of store.key.age's
// bytes. It is no new trust: the snapshot, like store.key.age, is an age file anyone
// with the public key could write, and what either yields counts only if the snapshot,
// the log and secrets.age check out under it. A cache that was not written for this
// store.key.age and this identity unwraps to a key whose id is not the one named, and is
// not used; store.key.age is decrypted as before. The pad keeps the store key out of
// sight of someone shown a decrypted leases.age.

const keyCachePrefix = "skc1:"

// keyPad is the pad for the store key of the store.key.age whose bytes hash to sum.
func (s *Store) keyPad(sum [32]byte) ([]byte, error) {
	return hkdf.Key(sha256.New, []byte(s.id.secret), sum[:], "secrets store key cache v1", 32)
}

// KeyCache returns the store key wrapped for this identity and store.key.age, for the
// snapshot, or "" when the store key was not read.
func (s *Store) KeyCache() string {
	if s.key == nil {
		return ""
	}
	pad, err := s.keyPad(s.keyFileSum)
	if err != nil {
		return ""
	}
	for i := range pad {
		pad[i] ^= s.key[i]
	}
	return keyCachePrefix + hex.EncodeToString(pad)
}

// UseKeyCache takes the store key from cache (KeyCache) when it unwraps, under the pad of
// store.key.age as it is now, to the key named id (KeyID); otherwise it does nothing and
// the store key is decrypted when first needed. It reports whether it took it.
func (s *Store) UseKeyCache(cache, id string) bool {
	if s.key != nil || s.keyErr != nil {
		return false
	}
	wrapped, err := hex.DecodeString(strings.TrimPrefix(cache, keyCachePrefix))
	if err != nil || len(wrapped) != 32 || !strings.HasPrefix(cache, keyCachePrefix) {
		return false
	}
	ct, err := safefile.Read(s.Path(StoreKeyFile))
	if err != nil {
		return false
	}
	sum := sha256.Sum256(ct)
	pad, err := s.keyPad(sum)
	if err != nil {
		return false
	}
	for i := range pad {
		pad[i] ^= wrapped[i]
	}
	if keyID(pad) != id {
		return false
	}
	s.key, s.keyFileSum = pad, sum
	return true
}

// decodeStoreKey reads {"version":1,"key":"<base64>"} as encoding/json would, without
// reflection (its first use costs a fresh process more than the rest of this file).
func decodeStoreKey(data []byte) ([]byte, error) {
	var doc storeKeyDoc
	d := codec.NewDecoder(data)
	err := d.Object(func(key string) error {
		switch key {
		case "version":
			return d.Integer(&doc.Version)
		case "key":
			return d.Text(&doc.Key)
		}
		_, err := d.Raw()
		return err
	})
	if err == nil {
		err = d.End()
	}
	if err != nil {
		return nil, err
	}
	if doc.Version != 1 {
		return nil, fmt.Errorf("store key version %d", doc.Version)
	}
	return base64.StdEncoding.DecodeString(doc.Key)
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
	return keyID(k), nil
}

func keyID(k []byte) string {
	m := hmac.New(sha256.New, k)
	m.Write([]byte("secrets store key id v1"))
	return "sk1:" + hex.EncodeToString(m.Sum(nil)[:8])
}

// CreateStoreKey generates a store key and writes store.key.age, encrypted to the
// identity's recipient, replacing one a crashed conversion left. The lock must be held.
func (s *Store) CreateStoreKey() error {
	if s.unlocked {
		return errUnlocked
	}
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
	s.key, s.keyErr, s.keyFileSum = k, nil, sha256.Sum256(ct)
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
