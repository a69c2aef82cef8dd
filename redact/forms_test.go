package redact_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/agent-secrets/secrets/redact"
)

// The output of the tools people use to look at data, with a value somewhere inside a
// longer stream (issue 12, item 9). Each case failed on the redactor before: it knew the
// encodings of a value on its own line only.

// token is a value of the usual length and alphabet of an API token.
var token = redact.Secret{Name: "API_TOKEN", Value: []byte("FAKE-tok-Zx9_q7Lm2Vb8Nc4Rt6Yh1Ju3Ik5Ol0Pp")}

func redactAll(secrets []redact.Secret, in []byte, chunk int) string {
	var out bytes.Buffer
	w, _ := redact.New(&out, secrets)
	for len(in) > 0 {
		n := min(chunk, len(in))
		w.Write(in[:n])
		in = in[n:]
	}
	w.Close()
	return out.String()
}

func unwrap(s string) string { return strings.NewReplacer("\r\n", "", "\n", "").Replace(s) }

// valueChars is the range of characters of an encoded stream (line breaks left out)
// that depend on the value alone, the value being at byte pos of the plain stream and
// the encoding taking bits bits from each character.
func valueChars(pos, n, bits int) (int, int) {
	return (8*pos + bits - 1) / bits, 8 * (pos + n) / bits
}

// leaksWindow reports a run of 10 characters of enc[from:to] that survived in got (line
// breaks left out): enough of the value to be its own, not a coincidence.
func leaksWindow(got, enc string, from, to int) string {
	got = unwrap(got)
	for i := from; i+10 <= to; i++ {
		if strings.Contains(got, enc[i:i+10]) {
			return enc[i : i+10]
		}
	}
	return ""
}

// stream is a value with pre bytes before it and some after: a config file, a log.
func stream(pre int, value []byte) []byte {
	var b bytes.Buffer
	for b.Len() < pre {
		b.WriteString("log line: all is well; ")
	}
	b.Truncate(pre)
	b.Write(value)
	b.WriteString("\nand the rest of the file, which is longer than a line of base64 output\n")
	return b.Bytes()
}

func tool(t *testing.T, in []byte, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("SKIP: %s is not installed here (CI installs it)", name)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return string(out)
}

func TestCommonToolOutputs(t *testing.T) {
	type tc struct {
		name string
		run  func(t *testing.T, in []byte) string
		bits int // of the value per character: 6 base64, 4 hex
		enc  func([]byte) string
	}
	b64 := base64.StdEncoding.EncodeToString
	cases := []tc{
		{"base64 (coreutils, 76)", func(t *testing.T, in []byte) string { return tool(t, in, "base64") }, 6, b64},
		{"base64 -w 0", func(t *testing.T, in []byte) string { return tool(t, in, "base64", "-w", "0") }, 6, b64},
		{"openssl base64 (64)", func(t *testing.T, in []byte) string { return tool(t, in, "openssl", "base64") }, 6, b64},
		{"xxd -p (60)", func(t *testing.T, in []byte) string { return tool(t, in, "xxd", "-p") }, 4, hex.EncodeToString},
		{"xxd -p -u", func(t *testing.T, in []byte) string { return tool(t, in, "xxd", "-p", "-u") }, 4, func(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }},
		{"base64 with CRLF (MIME)", func(t *testing.T, in []byte) string {
			return wrapAt(b64(in), 76, "\r\n")
		}, 6, b64},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Every offset within a group of three, and enough positions that a line
			// break falls at every place inside the value's characters.
			for pre := 0; pre < 80; pre++ {
				in := stream(pre, token.Value)
				out := c.run(t, in)
				for _, chunk := range []int{1 << 20, 7} {
					got := redactAll([]redact.Secret{token}, []byte(out), chunk)
					from, to := valueChars(pre, len(token.Value), c.bits)
					if w := leaksWindow(got, unwrap(c.enc(in)), from, to); w != "" {
						t.Fatalf("value at byte %d, writes of %d: %q of it survived in:\n%s", pre, chunk, w, got)
					}
					if !strings.Contains(got, "[REDACTED:API_TOKEN]") {
						t.Fatalf("value at byte %d: no redaction in:\n%s", pre, got)
					}
				}
			}
		})
	}
}

func wrapAt(s string, width int, nl string) string {
	var b strings.Builder
	for len(s) > width {
		b.WriteString(s[:width] + nl)
		s = s[width:]
	}
	b.WriteString(s + nl)
	return b.String()
}

// A value with characters outside ASCII, as JSON encoders and URL encoders write it.
func TestNonASCIIEscapes(t *testing.T) {
	v := "FAKE-pässwörd-ключ-🔑-\"q\"/x"
	sec := redact.Secret{Name: "INTL", Value: []byte(v)}
	forms := map[string]string{}
	if _, err := exec.LookPath("python3"); err == nil {
		out, err := exec.Command("python3", "-c", `import json,sys,urllib.parse as u
v=sys.argv[1]
print("dumps", json.dumps({"k":v}))
print("dumps-noascii", json.dumps({"k":v}, ensure_ascii=False))
print("quote", u.quote(v))
print("quote-safe", u.quote(v, safe=""))
print("quote_plus", u.quote_plus(v))`, v).Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			name, text, _ := strings.Cut(line, " ")
			forms["python "+name] = text
		}
	} else {
		t.Log("SKIP: python3 is not installed here: its own output is not checked (CI installs it)")
	}
	// What the others write: upper case \u (Jackson, many C encoders), lower case %xx.
	forms["json upper \\u"] = `{"k": "FAKE-p\u00E4ssw\u00F6rd-\u043A\u043B\u044E\u0447-\uD83D\uDD11-\"q\"/x"}`
	forms["percent lower"] = `https://h/?k=FAKE-p%c3%a4ssw%c3%b6rd-%d0%ba%d0%bb%d1%8e%d1%87-%f0%9f%94%91-%22q%22%2fx&z=1`
	forms["percent iri"] = `https://h/FAKE-p%C3%A4ssw%C3%B6rd-%D0%BA%D0%BB%D1%8E%D1%87-%F0%9F%94%91-%22q%22/x`
	for name, text := range forms {
		got := redactAll([]redact.Secret{sec}, []byte("before "+text+" after\n"), 5)
		if !strings.Contains(got, "[REDACTED:INTL]") || strings.Contains(got, "FAKE") {
			t.Errorf("%s: %s\n  became %s", name, text, got)
		}
	}
}

// Line breaks are skipped inside an encoding, one at a time, and only where they end a
// dump's line (MinWrap encoding characters or more): a run of them, or the end of an
// ordinary line, does not make the redactor hold output back.
func TestLineBreaksDoNotHoldOutput(t *testing.T) {
	var out bytes.Buffer
	w, _ := redact.New(&out, []redact.Secret{token})
	enc := base64.StdEncoding.EncodeToString(token.Value)
	w.Write([]byte("first " + enc[:3] + "\n\n"))
	if got := out.String(); got != "first "+enc[:3]+"\n\n" {
		t.Fatalf("held back after a blank line: %q", got)
	}
	w.Write([]byte(enc[:20] + "\r\n"))
	if got := out.String(); strings.Contains(got, enc[:20]) {
		t.Fatalf("wrote the start of a wrapped encoding before it could tell: %q", got)
	}
	w.Write([]byte(enc[20:] + "\n"))
	w.Close()
	if got := out.String(); got != "first "+enc[:3]+"\n\n[REDACTED:API_TOKEN]\n" {
		t.Fatalf("got %q", got)
	}
	// The last line of an answer, ending in a character a form begins with ("R" its
	// base64, "4" its hex, "F" the value): written at once, with nothing more to come.
	for _, line := range []string{"result = 4\n", "grade: F\n", "code R\r\n", "progress 4\r", "RkF\n", "a line of text that is long, ends in 46\n"} {
		var out bytes.Buffer
		w, _ := redact.New(&out, []redact.Secret{token})
		w.Write([]byte(line))
		if out.String() != line {
			t.Errorf("%q: only %q written", line, out.String())
		}
	}
	// Narrower than MinWrap is an ordinary text's line, not a dump's.
	if got := redactAll([]redact.Secret{token}, []byte(wrapAt(enc, redact.MinWrap-1, "\n")), 1<<20); strings.Contains(got, "REDACTED") {
		t.Errorf("matched across lines of %d: %q", redact.MinWrap-1, got)
	}
}

// Ordinary output with line breaks passes unchanged, whatever the writes.
func TestOrdinaryTextUnchanged(t *testing.T) {
	var b bytes.Buffer
	for i := range 2000 {
		fmt.Fprintf(&b, "%x\n%s\r\nline %d FAKE-tok\n", i*7919, base64.StdEncoding.EncodeToString([]byte(fmt.Sprint(i))), i)
	}
	for _, chunk := range []int{1, 3, 64, 1 << 20} {
		if got := redactAll([]redact.Secret{token}, b.Bytes(), chunk); got != b.String() {
			t.Fatalf("writes of %d changed ordinary text", chunk)
		}
	}
}
