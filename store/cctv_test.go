package store

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"strings"
	"testing"

	agetest "c2sp.org/CCTV/age"
	"filippo.io/age"
	"filippo.io/age/armor"
)

// TestX25519IdentityCCTV runs the age test vectors (c2sp.org/CCTV/age) that use an
// X25519 identity through x25519Identity: every file that age's spec says opens, opens
// to the same payload, and every file it says must fail (bad shares, low-order points,
// non-canonical encodings, wrong tags, no match) fails, as it does with age's own.
func TestX25519IdentityCCTV(t *testing.T) {
	files, err := fs.ReadDir(agetest.Vectors, ".")
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, f := range files {
		data, _ := fs.ReadFile(agetest.Vectors, f.Name())
		head, body, ok := bytes.Cut(data, []byte("\n\n"))
		if !ok {
			t.Fatalf("%s: no header", f.Name())
		}
		fields := map[string]string{}
		var identities []string
		sc := bufio.NewScanner(bytes.NewReader(head))
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ": ")
			if k == "identity" {
				identities = append(identities, v)
			}
			fields[k] = v
		}
		if len(identities) == 0 || fields["compressed"] != "" {
			continue
		}
		var mine, ref []age.Identity
		for _, s := range identities {
			if !strings.HasPrefix(s, "AGE-SECRET-KEY-1") {
				mine, ref = nil, nil
				break
			}
			m, err := parseX25519(s)
			if err != nil {
				t.Fatalf("%s: %v", f.Name(), err)
			}
			r, _ := age.ParseX25519Identity(s)
			mine, ref = append(mine, m), append(ref, r)
		}
		if mine == nil {
			continue
		}
		ran++
		open := func(ids []age.Identity) (string, error) {
			var in io.Reader = bytes.NewReader(body)
			if fields["armored"] == "yes" {
				in = armor.NewReader(in)
			}
			r, err := age.Decrypt(in, ids...)
			if err != nil {
				return "", err
			}
			b, err := io.ReadAll(r)
			sum := sha256.Sum256(b)
			return hex.EncodeToString(sum[:]), err
		}
		got, gerr := open(mine)
		want, werr := open(ref)
		switch {
		case (gerr == nil) != (werr == nil):
			t.Errorf("%s (%s): ours %v, age's %v", f.Name(), fields["expect"], gerr, werr)
		case fields["expect"] == "success" && (gerr != nil || got != fields["payload"]):
			t.Errorf("%s: %v, payload %s, want %s", f.Name(), gerr, got, fields["payload"])
		case fields["expect"] != "success" && gerr == nil:
			t.Errorf("%s: opens, want %s", f.Name(), fields["expect"])
		case got != want:
			t.Errorf("%s: payload %s, age's %s", f.Name(), got, want)
		}
	}
	t.Logf("%d vectors", ran)
	if ran < 50 {
		t.Fatalf("only %d vectors use X25519 identities", ran)
	}
}
