package store

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"testing"

	"filippo.io/age"
)

// unwrapLike reports whether two unwrap results agree: the same file key, or both
// "not for me" (the next stanza or identity is tried), or both another error.
func unwrapLike(k1 []byte, e1 error, k2 []byte, e2 error) bool {
	switch {
	case e1 == nil || e2 == nil:
		return e1 == nil && e2 == nil && bytes.Equal(k1, k2)
	default:
		return errors.Is(e1, age.ErrIncorrectIdentity) == errors.Is(e2, age.ErrIncorrectIdentity)
	}
}

// TestX25519IdentityAsAge: the one-multiplication identity parses every key age parses,
// to the same recipient, and unwraps every stanza exactly as age's X25519Identity does:
// real ones, ones for other keys, and every malformed kind.
func TestX25519IdentityAsAge(t *testing.T) {
	other, _ := age.GenerateX25519Identity()
	for range 50 {
		ref, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		mine, err := parseX25519(ref.String())
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		if got, want := bech32Encode("age", mine.public), ref.Recipient().String(); got != want {
			t.Fatalf("recipient %s, age says %s", got, want)
		}
		if _, err := parseX25519(strings.ToLower(ref.String())); err == nil {
			t.Fatal("a lower-case key parses; age refuses it")
		}
		// Whole files: to this key among others, and not to this key at all.
		for n, to := range [][]age.Recipient{{ref.Recipient()}, {other.Recipient(), ref.Recipient()}, {other.Recipient()}} {
			var ct bytes.Buffer
			w, _ := age.Encrypt(&ct, to...)
			io.WriteString(w, "FAKE-plaintext")
			w.Close()
			for _, id := range []age.Identity{ref, mine} {
				r, err := age.Decrypt(bytes.NewReader(ct.Bytes()), id)
				if n == 2 {
					var nomatch *age.NoIdentityMatchError
					if !errors.As(err, &nomatch) {
						t.Fatalf("%T: a file for another key: %v", id, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%T: %v", id, err)
				}
				if b, _ := io.ReadAll(r); string(b) != "FAKE-plaintext" {
					t.Fatalf("%T: %q", id, b)
				}
			}
		}
	}

	// Stanzas, one at a time, well and badly formed.
	ref, _ := age.GenerateX25519Identity()
	mine, _ := parseX25519(ref.String())
	var ct bytes.Buffer
	w, _ := age.Encrypt(&ct, ref.Recipient())
	w.Close()
	good := firstStanza(t, ct.Bytes())
	zero := base64.RawStdEncoding.EncodeToString(make([]byte, 32))
	cases := map[string]*age.Stanza{
		"good":          good,
		"other type":    {Type: "scrypt", Args: good.Args, Body: good.Body},
		"no args":       {Type: "X25519", Body: good.Body},
		"two args":      {Type: "X25519", Args: []string{good.Args[0], good.Args[0]}, Body: good.Body},
		"padded share":  {Type: "X25519", Args: []string{good.Args[0] + "="}, Body: good.Body},
		"bad base64":    {Type: "X25519", Args: []string{"!!!!"}, Body: good.Body},
		"short share":   {Type: "X25519", Args: []string{good.Args[0][:40]}, Body: good.Body},
		"newline share": {Type: "X25519", Args: []string{good.Args[0][:20] + "\n" + good.Args[0][20:]}, Body: good.Body},
		"low order":     {Type: "X25519", Args: []string{zero}, Body: good.Body},
		"short body":    {Type: "X25519", Args: good.Args, Body: good.Body[:31]},
		"long body":     {Type: "X25519", Args: good.Args, Body: append(bytes.Clone(good.Body), 0)},
		"flipped body":  {Type: "X25519", Args: good.Args, Body: flip(good.Body)},
		"other share":   {Type: "X25519", Args: []string{base64.RawStdEncoding.EncodeToString(mine.public)}, Body: good.Body},
	}
	for name, s := range cases {
		k1, e1 := ref.Unwrap([]*age.Stanza{s})
		k2, e2 := mine.Unwrap([]*age.Stanza{s})
		if !unwrapLike(k1, e1, k2, e2) {
			t.Errorf("%s: age gives (%x, %v), ours (%x, %v)", name, k1, e1, k2, e2)
		}
		// After a stanza for another key the next one is tried; after a malformed one, not.
		k1, e1 = ref.Unwrap([]*age.Stanza{s, good})
		k2, e2 = mine.Unwrap([]*age.Stanza{s, good})
		if !unwrapLike(k1, e1, k2, e2) {
			t.Errorf("%s then good: age gives (%x, %v), ours (%x, %v)", name, k1, e1, k2, e2)
		}
	}
}

func flip(b []byte) []byte {
	c := bytes.Clone(b)
	c[0] ^= 1
	return c
}

// firstStanza reads the first recipient stanza of an age file's text header.
func firstStanza(t *testing.T, file []byte) *age.Stanza {
	t.Helper()
	lines := strings.Split(string(file), "\n")
	f := strings.Fields(strings.TrimPrefix(lines[1], "-> "))
	body, err := base64.RawStdEncoding.DecodeString(lines[2])
	if err != nil {
		t.Fatal(err)
	}
	return &age.Stanza{Type: f[0], Args: f[1:], Body: body}
}

// FuzzParseX25519 holds the bech32 reader to age's: any string one accepts, the other
// accepts as the same key.
func FuzzParseX25519(f *testing.F) {
	k, _ := age.GenerateX25519Identity()
	s := k.String()
	for _, seed := range []string{s, strings.ToLower(s), s[:len(s)-1] + "Q", s[:20], "AGE-SECRET-KEY-1", "AGE-SECRET-KEY-1QQQQQQQ", s + "Q", "AGE-SECRET-KEY-1\u212a" + s[17:]} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, e1 := age.ParseX25519Identity(s)
		mine, e2 := parseX25519(s)
		if (e1 == nil) != (e2 == nil) {
			t.Fatalf("%q: age %v, ours %v", s, e1, e2)
		}
		if e1 == nil && bech32Encode("age", mine.public) != ref.Recipient().String() {
			t.Fatalf("%q: recipients differ", s)
		}
	})
}

// TestChunkReader: reads at any offset and length through the chunk cache give the
// plaintext, across chunk boundaries and at the end, for files of one and many chunks.
func TestChunkReader(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	for _, size := range []int{1, 100, chunkSize - 1, chunkSize, chunkSize + 1, 3*chunkSize + 77} {
		plain := make([]byte, size)
		for i := range plain {
			plain[i] = byte(i*7 + i/chunkSize)
		}
		var ct bytes.Buffer
		w, _ := age.Encrypt(&ct, id.Recipient())
		w.Write(plain)
		w.Close()
		r, n, err := age.DecryptReaderAt(bytes.NewReader(ct.Bytes()), int64(ct.Len()), id)
		if err != nil || n != int64(size) {
			t.Fatalf("%d: %v %d", size, err, n)
		}
		c := &chunkReader{r: r, size: n}
		for _, rg := range [][2]int{{0, size}, {size - 1, 1}, {0, 1}, {size / 2, size - size/2}, {max(0, chunkSize-3), 6}, {size / 3, 4096}, {0, size}} {
			off, l := rg[0], min(rg[1], size-rg[0])
			if off >= size || l <= 0 {
				continue
			}
			got := make([]byte, l)
			if k, err := c.ReadAt(got, int64(off)); k != l || (err != nil && err != io.EOF) || !bytes.Equal(got, plain[off:off+l]) {
				t.Fatalf("size %d: read %d at %d: %d, %v", size, l, off, k, err)
			}
		}
		if k, err := c.ReadAt(make([]byte, 10), int64(size)); k != 0 || err != io.EOF {
			t.Fatalf("size %d: read at the end: %d, %v", size, k, err)
		}
		if k, err := c.ReadAt(make([]byte, 10), -1); k != 0 || err == nil {
			t.Fatalf("a negative offset: %d, %v", k, err)
		}
		if k, err := c.ReadAt(make([]byte, 10), int64(max(size-4, 0))); k != min(size, 4) || err != io.EOF {
			t.Fatalf("size %d: read past the end: %d, %v", size, k, err)
		}
	}
}

// TestOverlappingMACField: a header or entry line whose MAC field runs into its end (a
// crafted file, encrypted to the public key) is corrupt, not a panic.
func TestOverlappingMACField(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	if _, err := parseHeader("s", []byte(`{"version":3,"generation":0,"mac":","secrets":{`), key); !errors.Is(err, ErrCorrupt) {
		t.Errorf("header: %v", err)
	}
	if _, _, err := parseEntry("s", []byte(`{"name":"k","mac":"}`), 1, key); !errors.Is(err, ErrCorrupt) {
		t.Errorf("entry: %v", err)
	}
}
