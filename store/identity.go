package store

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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
	if strings.HasPrefix(keys[0], "AGE-SECRET-KEY-1") {
		k, err := parseX25519(keys[0])
		if err != nil {
			return nil, fmt.Errorf("%w: %s: not an age identity", ErrCorrupt, source)
		}
		public := bech32Encode("age", k.public)
		r, err := age.ParseX25519Recipient(public)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: not an age identity", ErrCorrupt, source)
		}
		return &identity{id: k, recipient: r, public: public, secret: keys[0]}, nil
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
	r, size, err := age.DecryptReaderAt(bytes.NewReader(ciphertext), int64(len(ciphertext)), id.id)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrDecrypt, name, err)
	}
	// One read of the whole plaintext: age's streaming reader buffers 136 KiB and its
	// ReaderAt allocates a chunk per call, each a fresh page fault per 4 KiB in a process
	// that lives for milliseconds.
	out := make([]byte, size)
	if _, err := readAtFull(r, out, 0); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrDecrypt, name, err)
	}
	return out, nil
}

// chunkSize is age's payload chunk: the unit its ReaderAt decrypts and authenticates.
const chunkSize = 64 << 10

// chunkReader serves reads of an age payload from whole chunks, one age ReadAt per chunk
// it needs: age's ReaderAt allocates a chunk buffer on every call, however small.
type chunkReader struct {
	r     io.ReaderAt
	size  int64
	start int64 // the plaintext offset of buf
	buf   []byte
}

func (c *chunkReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	n := 0
	for len(p) > 0 {
		if off >= c.size {
			return n, io.EOF
		}
		if off < c.start || off >= c.start+int64(len(c.buf)) || c.buf == nil {
			start := off / chunkSize * chunkSize
			size := min(chunkSize, c.size-start)
			if cap(c.buf) < int(size) {
				c.buf = make([]byte, size)
			}
			c.buf = c.buf[:size]
			if _, err := readAtFull(c.r, c.buf, start); err != nil {
				c.buf = nil
				return n, err
			}
			c.start = start
		}
		k := copy(p, c.buf[off-c.start:])
		p, off, n = p[k:], off+int64(k), n+k
	}
	return n, nil
}

// readAtFull is io.ReadFull for a ReaderAt: an EOF with p filled is no error.
func readAtFull(r io.ReaderAt, p []byte, off int64) (int, error) {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return n, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
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
