package redact_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"

	"github.com/agent-secrets/secrets/redact"
)

var secrets = []redact.Secret{
	{Name: "GITHUB_TOKEN", Value: []byte("FAKE-ghp-0123456789abcdef")},
	{Name: "SA_JSON", Value: []byte("{\"key\": \"FAKE-line-one\"}\nFAKE second line here\nok")},
	{Name: "URLISH", Value: []byte("FAKE pass/word&x=y+z")},
}

func run(t testing.TB, writes [][]byte) string {
	var out bytes.Buffer
	w, _ := redact.New(&out, secrets)
	for _, p := range writes {
		if _, err := w.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	return out.String()
}

// leaks lists every form of every secret that appears in s.
func leaks(s string) []string {
	var found []string
	for _, sec := range secrets {
		for _, f := range redact.Forms(sec.Value) {
			if len(f.Text) >= redact.MinLen && strings.Contains(s, string(f.Text)) {
				found = append(found, fmt.Sprintf("%s:%q", sec.Name, f.Text))
			}
		}
	}
	return found
}

func sample() []byte {
	var b bytes.Buffer
	for _, s := range secrets {
		v := s.Value
		fmt.Fprintf(&b, "raw=%s\n", v)
		fmt.Fprintf(&b, "b64=%s std\n", base64.StdEncoding.EncodeToString(v))
		fmt.Fprintf(&b, "b64url=%s\n", base64.RawURLEncoding.EncodeToString(v))
		fmt.Fprintf(&b, "hex=%s HEX=%s\n", hex.EncodeToString(v), strings.ToUpper(hex.EncodeToString(v)))
		fmt.Fprintf(&b, "url=%s path=%s\n", url.QueryEscape(string(v)), url.PathEscape(string(v)))
		fmt.Fprintf(&b, "json=%q\n", v)
		fmt.Fprintf(&b, "twice=%s%s end\n", v, v)
	}
	b.WriteString("log line: FAKE second line here (a line of SA_JSON alone)\n")
	return b.Bytes()
}

func TestEveryFormIsRedacted(t *testing.T) {
	got := run(t, [][]byte{sample()})
	if l := leaks(got); len(l) > 0 {
		t.Fatalf("leaked %v in:\n%s", l, got)
	}
	for _, want := range []string{"raw=[REDACTED:GITHUB_TOKEN]\n", "hex=[REDACTED:URLISH] HEX=[REDACTED:URLISH]", "twice=[REDACTED:GITHUB_TOKEN][REDACTED:GITHUB_TOKEN] end", "log line: [REDACTED:SA_JSON] (a line"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "raw=[REDACTED:SA_JSON]\n") == false {
		t.Errorf("the whole multi-line value should be one redaction:\n%s", got)
	}
}

// TestSplitAtEveryOffset: however the stream is cut into two writes, or written a byte
// at a time, the output is the same as one write, and nothing leaks.
func TestSplitAtEveryOffset(t *testing.T) {
	in := sample()
	want := run(t, [][]byte{in})
	for i := 0; i <= len(in); i++ {
		if got := run(t, [][]byte{in[:i], in[i:]}); got != want {
			t.Fatalf("split at %d differs:\n%s\nwant:\n%s", i, got, want)
		}
	}
	var bytewise [][]byte
	for i := range in {
		bytewise = append(bytewise, in[i:i+1])
	}
	if got := run(t, bytewise); got != want {
		t.Fatalf("byte-by-byte differs:\n%s", got)
	}
}

// TestFlushesPromptly: output that cannot be the start of a value is written at once,
// before any newline; only a possible start of a value waits for the next write.
func TestFlushesPromptly(t *testing.T) {
	var out bytes.Buffer
	w, short := redact.New(&out, append(secrets, redact.Secret{Name: "PIN", Value: []byte("1234")}))
	if len(short) != 1 || short[0] != "PIN" {
		t.Errorf("short values: %v", short)
	}
	w.Write([]byte("Password: "))
	if out.String() != "Password: " {
		t.Fatalf("prompt held back: %q", out.String())
	}
	w.Write([]byte("token FAKE-ghp-01"))
	if out.String() != "Password: token " {
		t.Fatalf("after a partial value: %q", out.String())
	}
	w.Write([]byte("23456789abcdef!"))
	if out.String() != "Password: token [REDACTED:GITHUB_TOKEN]!" {
		t.Fatalf("after the rest: %q", out.String())
	}
	w.Write([]byte("FAKE-ghp"))
	w.Close()
	if !strings.HasSuffix(out.String(), "!FAKE-ghp") {
		t.Fatalf("a partial value at the end of the stream must be written by Close: %q", out.String())
	}
}

func FuzzRedact(f *testing.F) {
	f.Add([]byte("x FAKE-ghp-0123456789abcdef y"), uint16(5), uint16(9))
	f.Add(sample(), uint16(100), uint16(7))
	f.Add([]byte("config: a=1\nb=2\n"), uint16(3), uint16(0x4c01))
	f.Fuzz(func(t *testing.T, data []byte, cut, seed uint16) {
		// Embed a value at a position the fuzzer chooses, then write in random pieces.
		pos := int(cut) % (len(data) + 1)
		in := append(append(append([]byte{}, data[:pos]...), secrets[0].Value...), data[pos:]...)
		// Half the inputs are that stream as a base64 or hex dump, wrapped at a width
		// (MinWrap or more) and with a line ending the fuzzer chooses.
		dump, width := seed&1 == 1, redact.MinWrap+int(seed>>1)%100
		if dump {
			enc := base64.StdEncoding.EncodeToString(in)
			if seed&2 != 0 {
				enc = hex.EncodeToString(in)
			}
			nl := "\n"
			if seed&4 != 0 {
				nl = "\r\n"
			}
			var b strings.Builder
			for ; len(enc) > width; enc = enc[width:] {
				b.WriteString(enc[:width] + nl)
			}
			in = []byte(b.String() + enc + nl)
		}
		want := run(t, [][]byte{in})
		rng := rand.New(rand.NewPCG(uint64(seed), 1))
		var pieces [][]byte
		for rest := in; len(rest) > 0; {
			n := 1 + rng.IntN(len(rest))
			pieces, rest = append(pieces, rest[:n]), rest[n:]
		}
		if got := run(t, pieces); got != want {
			t.Fatalf("pieces differ from one write")
		}
		if !dump && strings.Contains(want, string(secrets[0].Value)) {
			t.Fatalf("value leaked: %q", want)
		}
		if dump && !strings.Contains(want, "[REDACTED:") {
			t.Fatalf("a dump with the value inside was not redacted: %q", want)
		}
	})
}

// BenchmarkRedact measures throughput with 1 and 20 secrets of an API token's length, on
// log-like text and on a base64 dump (every byte in the alphabet the encoded forms use,
// wrapped at 76: the redactor's worst ordinary input).
func BenchmarkRedact(b *testing.B) {
	var text bytes.Buffer
	for text.Len() < 1<<20 {
		fmt.Fprintf(&text, "2026-11-28T12:00:%02d INFO request id=%d path=/api/v1/items status=200 bytes=%d\n", text.Len()%60, text.Len(), text.Len()*7)
	}
	raw := make([]byte, 3<<18)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range raw {
		raw[i] = byte(rng.Uint32())
	}
	var dump bytes.Buffer
	for enc := base64.StdEncoding.EncodeToString(raw); len(enc) > 0; enc = enc[min(76, len(enc)):] {
		dump.WriteString(enc[:min(76, len(enc))] + "\n")
	}
	for _, in := range []struct {
		name string
		data []byte
	}{{"log", text.Bytes()}, {"base64", dump.Bytes()}} {
		for _, n := range []int{1, 20} {
			ss := benchSecrets(n)
			b.Run(fmt.Sprintf("%s/%dsecrets", in.name, n), func(b *testing.B) {
				w, _ := redact.New(discard{}, ss)
				b.SetBytes(int64(len(in.data)))
				for i := 0; i < b.N; i++ {
					for off := 0; off < len(in.data); off += 32 << 10 {
						w.Write(in.data[off:min(off+32<<10, len(in.data))])
					}
				}
			})
		}
	}
}

// BenchmarkRedactNew is what building the redactor adds to every secrets exec.
func BenchmarkRedactNew(b *testing.B) {
	ss := benchSecrets(20)
	for i := 0; i < b.N; i++ {
		redact.New(discard{}, ss)
	}
}

func benchSecrets(n int) []redact.Secret {
	var ss []redact.Secret
	for i := 0; i < n; i++ {
		ss = append(ss, redact.Secret{Name: fmt.Sprint("S", i), Value: []byte(fmt.Sprintf("FAKE-%02d-%034x", i, uint64(i)*7919+104729))})
	}
	return ss
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestFormAtTheEnd is the second review's N2: a form that ends the stream (or a line
// before it) is redacted when a longer form of the value begins there too (the padded
// base64 of a value whose length is not a multiple of 3 hid its unpadded form).
func TestFormAtTheEnd(t *testing.T) {
	value := []byte("ghp_FAKEsecondFAKEsecondFAKEsecond0000") // 38 bytes: base64 has padding
	for _, enc := range []*base64.Encoding{base64.StdEncoding.WithPadding(base64.NoPadding), base64.URLEncoding.WithPadding(base64.NoPadding)} {
		form := enc.EncodeToString(value)
		for _, tail := range []string{"", "\n", "\r\n"} {
			var out bytes.Buffer
			w, _ := redact.New(&out, []redact.Secret{{Name: "gh", Value: value}})
			io.WriteString(w, "token="+form+tail)
			w.Close()
			if strings.Contains(out.String(), form) || out.String() != "token=[REDACTED:gh]"+tail {
				t.Errorf("%q: %q", form+tail, out.String())
			}
		}
	}
}
