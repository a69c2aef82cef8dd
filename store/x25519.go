package store

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
)

// x25519Identity is an age X25519 identity that unwraps a file key with one scalar
// multiplication. age's own X25519Identity does two (golang.org/x/crypto/curve25519
// derives the public key again on every call), and every command opens two or three age
// files: in a process that lives 2 ms, that is a share of it worth keeping. It follows
// the age spec's X25519 recipient type exactly (c2sp.org/age, "X25519 recipient
// stanza"); TestX25519IdentityAsAge holds it to age's own on every kind of stanza.
type x25519Identity struct {
	key    *ecdh.PrivateKey
	public []byte // the recipient's point, part of the wrap key's salt
}

const x25519Label = "age-encryption.org/v1/X25519"

// parseX25519 reads an AGE-SECRET-KEY-1… line. The key never appears in an error.
func parseX25519(s string) (*x25519Identity, error) {
	hrp, data, err := bech32Decode(s)
	if err != nil {
		return nil, fmt.Errorf("malformed secret key: %v", err)
	}
	if hrp != "AGE-SECRET-KEY-" {
		return nil, fmt.Errorf("malformed secret key: unknown type %q", hrp)
	}
	key, err := ecdh.X25519().NewPrivateKey(data)
	if err != nil {
		return nil, errors.New("malformed secret key: not an X25519 scalar")
	}
	return &x25519Identity{key: key, public: key.PublicKey().Bytes()}, nil
}

// Unwrap implements age.Identity: the first X25519 stanza that opens under this key
// gives the file key; stanzas of other types, or for other keys, are skipped.
func (i *x25519Identity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	for _, s := range stanzas {
		fileKey, err := i.unwrap(s)
		if errors.Is(err, age.ErrIncorrectIdentity) {
			continue
		}
		return fileKey, err
	}
	return nil, age.ErrIncorrectIdentity
}

func (i *x25519Identity) unwrap(s *age.Stanza) ([]byte, error) {
	if s.Type != "X25519" {
		return nil, age.ErrIncorrectIdentity
	}
	if len(s.Args) != 1 || strings.ContainsAny(s.Args[0], "\r\n") {
		return nil, errors.New("invalid X25519 recipient block")
	}
	share, err := base64.RawStdEncoding.Strict().DecodeString(s.Args[0])
	if err != nil {
		return nil, fmt.Errorf("failed to parse X25519 recipient: %v", err)
	}
	peer, err := ecdh.X25519().NewPublicKey(share)
	if err != nil {
		return nil, errors.New("invalid X25519 recipient block")
	}
	shared, err := i.key.ECDH(peer) // fails for a low-order point (an all-zero secret)
	if err != nil {
		return nil, fmt.Errorf("invalid X25519 recipient: %v", err)
	}
	salt := make([]byte, 0, 64)
	salt = append(append(salt, share...), i.public...)
	wrap, err := hkdf.Key(sha256.New, shared, salt, x25519Label, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.New(wrap)
	if err != nil {
		return nil, err
	}
	const fileKeySize = 16
	if len(s.Body) != fileKeySize+aead.Overhead() {
		return nil, errors.New("invalid X25519 recipient block: incorrect file key size")
	}
	fileKey, err := aead.Open(nil, make([]byte, chacha20poly1305.NonceSize), s.Body, nil)
	if err != nil {
		return nil, age.ErrIncorrectIdentity
	}
	return fileKey, nil
}

// bech32Decode decodes a BIP 173 string into its human-readable part, as written, and
// its data converted to 8-bit bytes. Like age, it takes an all-upper or all-lower string
// of any length (a key line is longer than BIP 173's 90 characters).
func bech32Decode(s string) (string, []byte, error) {
	if strings.ToLower(s) != s && strings.ToUpper(s) != s {
		return "", nil, errors.New("mixed case")
	}
	pos := strings.LastIndexByte(s, '1')
	if pos < 1 || pos+7 > len(s) {
		return "", nil, errors.New("separator '1' at invalid position")
	}
	hrp := s[:pos]
	for _, c := range []byte(hrp) {
		if c < 33 || c > 126 {
			return "", nil, errors.New("invalid character in human-readable part")
		}
	}
	values := make([]byte, 0, len(s)-pos-1)
	for _, c := range []byte(s[pos+1:]) {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A' // ASCII only: Unicode folding could make a charset letter
		}
		v := strings.IndexByte(bech32Charset, c)
		if v < 0 {
			return "", nil, errors.New("invalid character in data part")
		}
		values = append(values, byte(v))
	}
	if bech32Polymod(strings.ToLower(hrp), values) != 1 {
		return "", nil, errors.New("invalid checksum")
	}
	// 5-bit groups to bytes, without padding: leftover bits must be fewer than five and zero.
	values = values[:len(values)-6]
	out := make([]byte, 0, len(values)*5/8)
	acc, bits := uint32(0), uint(0)
	for _, v := range values {
		acc = acc<<5 | uint32(v)
		bits += 5
		for bits >= 8 {
			bits -= 8
			out = append(out, byte(acc>>bits))
		}
	}
	if bits >= 5 || acc&(1<<bits-1) != 0 {
		return "", nil, errors.New("illegal zero padding")
	}
	return hrp, out, nil
}

// bech32Encode encodes data under a lower-case human-readable part.
func bech32Encode(hrp string, data []byte) string {
	values := make([]byte, 0, len(data)*8/5+7)
	acc, bits := uint32(0), uint(0)
	for _, b := range data {
		acc = acc<<8 | uint32(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			values = append(values, byte(acc>>bits)&31)
		}
	}
	if bits > 0 {
		values = append(values, byte(acc<<(5-bits))&31)
	}
	mod := bech32Polymod(hrp, append(values, 0, 0, 0, 0, 0, 0)) ^ 1
	var b strings.Builder
	b.WriteString(hrp)
	b.WriteByte('1')
	for _, v := range values {
		b.WriteByte(bech32Charset[v])
	}
	for p := range 6 {
		b.WriteByte(bech32Charset[mod>>(5*(5-p))&31])
	}
	return b.String()
}

// bech32Polymod is BIP 173's checksum over a lower-case hrp and 5-bit values.
func bech32Polymod(hrp string, values []byte) uint32 {
	chk := uint32(1)
	step := func(v byte) {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i, g := range [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3} {
			if top>>i&1 == 1 {
				chk ^= g
			}
		}
	}
	for _, c := range []byte(hrp) {
		step(c >> 5)
	}
	step(0)
	for _, c := range []byte(hrp) {
		step(c & 31)
	}
	for _, v := range values {
		step(v)
	}
	return chk
}

const bech32Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
