package store

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"filippo.io/age"
)

// identity is the store's age key pair.
type identity struct {
	id        age.Identity
	recipient age.Recipient
	public    string
	secret    string // the AGE-SECRET-KEY-… line, used only to derive the audit MAC key
}

// parseIdentity reads age-keygen format: comment lines and exactly one key line.
// The key text never appears in an error.
func parseIdentity(source string, data []byte) (*identity, error) {
	var keys []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		keys = append(keys, line)
	}
	if len(keys) != 1 {
		return nil, fmt.Errorf("%w: %s: want exactly one identity, found %d", ErrCorrupt, source, len(keys))
	}
	ids, err := age.ParseIdentities(strings.NewReader(keys[0]))
	if err != nil || len(ids) != 1 {
		return nil, fmt.Errorf("%w: %s: not an age identity", ErrCorrupt, source)
	}
	id := &identity{id: ids[0], secret: keys[0]}
	switch k := ids[0].(type) {
	case *age.X25519Identity:
		id.recipient, id.public = k.Recipient(), k.Recipient().String()
	case *age.HybridIdentity:
		id.recipient, id.public = k.Recipient(), k.Recipient().String()
	default:
		return nil, fmt.Errorf("%w: %s: unsupported identity type", ErrCorrupt, source)
	}
	return id, nil
}

// newIdentity generates an X25519 identity, or a hybrid ML-KEM-768 + X25519 one with pq,
// and returns it with its age-keygen format file content.
func newIdentity(pq bool, now time.Time) (*identity, []byte, error) {
	var key interface{ String() string }
	if pq {
		k, err := age.GenerateHybridIdentity()
		if err != nil {
			return nil, nil, err
		}
		key = k
	} else {
		k, err := age.GenerateX25519Identity()
		if err != nil {
			return nil, nil, err
		}
		key = k
	}
	id, err := parseIdentity("new identity", []byte(key.String()))
	if err != nil {
		return nil, nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# created: %s\n# public key: %s\n%s\n", now.UTC().Format(time.RFC3339), id.public, key.String())
	return id, b.Bytes(), nil
}

// encrypt seals plaintext to the identity's own recipient as a plain (binary) age file.
func (id *identity) encrypt(plaintext []byte) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(len(plaintext) + 256)
	w, err := age.Encrypt(&b, id.recipient)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plaintext); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// decrypt opens an age file. Any failure, in the header or in the payload, is ErrDecrypt.
func (id *identity) decrypt(name string, ciphertext []byte) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(ciphertext), id.id)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrDecrypt, name, err)
	}
	// The plaintext is shorter than the ciphertext: size the buffer once instead of
	// letting it double (every fresh page is a fault in a short-lived process).
	var out bytes.Buffer
	out.Grow(len(ciphertext))
	if _, err := out.ReadFrom(r); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrDecrypt, name, err)
	}
	return out.Bytes(), nil
}

// Fingerprint identifies a value in the audit log without revealing it: a keyed hash
// (HMAC-SHA256 under a key derived from the store key, or from the identity on a store
// that has none yet), cut to 64 bits.
func (s *Store) Fingerprint(value []byte) string {
	k, err := s.Key(KeyFingerprint)
	if err != nil {
		k, err = hkdf.Key(sha256.New, []byte(s.id.secret), nil, "secrets value fingerprint v1", 32)
		if err != nil {
			panic(err)
		}
	}
	m := hmac.New(sha256.New, k)
	m.Write(value)
	return "hmac:" + hex.EncodeToString(m.Sum(nil)[:8])
}

// macKey derives the audit log's HMAC key from the identity, so whoever can decrypt the
// store can extend the log and nobody else can forge a line.
func (id *identity) macKey() []byte {
	k, err := hkdf.Key(sha256.New, []byte(id.secret), nil, "secrets audit hmac-sha256 v1", 32)
	if err != nil {
		panic(err) // only for a key length hkdf cannot produce; 32 always works
	}
	return k
}
