package envfile_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/envfile"
	"github.com/joho/godotenv"
)

// nasty are values that break naive .env writers. All are fake.
var nasty = []string{
	"FAKE-plain-0001",
	"FAKE with spaces",
	"  FAKE leading and trailing  ",
	"FAKE$(touch pwned-dollar)",
	"FAKE`touch pwned-backtick`",
	"FAKE$HOME and ${HOME} and $$",
	`FAKE"double"quotes`,
	"FAKE'single'quotes",
	`FAKE'both"kinds`,
	"FAKE'both\"kinds`and backtick",
	"FAKE#not-a-comment",
	"FAKE # also not a comment",
	"FAKE\nsecond line\nthird",
	"FAKE trailing newline\n",
	`FAKE\nliteral backslash-n`,
	`FAKE\\double backslash`,
	`FAKE ends with backslash\`,
	"FAKE=equals=signs",
	"FAKE-ünïcödé-🔑",
	"FAKE\ttab",
	"FAKE\rcarriage",
	"FAKE\r\ncrlf",
	"FAKE\xff\xfeinvalid-utf8",
	"export FAKE=1",
	"'FAKE starts with quote",
	"FAKE!bang!history",
	"FAKE;semicolon&&amp|pipe>redirect",
	"-----BEGIN FAKE KEY-----\nAAAA\n-----END FAKE KEY-----\n",
}

// writeEnv writes FAKE_i for each nasty value that keep accepts, and reports which
// values Quote called portable.
// The file is rendered as secrets env writes it, managed header included.
func writeEnv(t *testing.T, dir string, keep func(portable bool) bool) (path string, portable []bool) {
	t.Helper()
	var vars []envfile.Var
	for i, v := range nasty {
		_, ok, err := envfile.Quote([]byte(v))
		if err != nil {
			t.Fatalf("value %d: %v", i, err)
		}
		portable = append(portable, ok)
		if keep(ok) {
			vars = append(vars, envfile.Var{Name: fmt.Sprintf("FAKE_%d", i), Value: []byte(v)})
		}
	}
	content, bashOnly, err := envfile.Render(vars, []string{"lease_01TEST", "lease_02TEST"}, time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range bashOnly {
		var i int
		fmt.Sscanf(name, "FAKE_%d", &i)
		if portable[i] {
			t.Errorf("Render and Quote disagree about %s", name)
		}
	}
	path = filepath.Join(dir, ".env")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, portable
}

// TestDotenvParsers: bash reads every value back exactly and executes nothing; every
// value Quote calls portable is also read back exactly by godotenv, python-dotenv and
// Node's dotenv. (A file holding one bash-only value can stop godotenv and python-dotenv
// reading the whole file, which is why secrets env warns about such a value.)
func TestDotenvParsers(t *testing.T) {
	dir := t.TempDir()
	_, portable := writeEnv(t, dir, func(bool) bool { return true })

	// bash: source it the way users do, print each value NUL-terminated.
	var script strings.Builder
	script.WriteString("set -a; . ./.env; set +a\n")
	for i := range nasty {
		fmt.Fprintf(&script, "printf '%%s\\0' \"$FAKE_%d\"\n", i)
	}
	cmd := exec.Command("bash", "-c", script.String())
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bash: %v", err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	for i, v := range nasty {
		if i >= len(got) || got[i] != v {
			t.Errorf("bash: FAKE_%d = %q, want %q", i, at(got, i), v)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "pwned*")); len(m) > 0 {
		t.Fatalf("sourcing the file executed a command: %v", m)
	}

	pdir := t.TempDir()
	path, _ := writeEnv(t, pdir, func(portable bool) bool { return portable })
	parsers := map[string]func() (map[string]string, error){
		"godotenv": func() (map[string]string, error) { return godotenv.Read(path) },
		"python-dotenv": func() (map[string]string, error) {
			return runJSON(t, "python-dotenv", pdir, "/usr/bin/python3", "-c",
				"import json,sys; from dotenv import dotenv_values; json.dump(dotenv_values('.env'), sys.stdout)")
		},
		"node dotenv": func() (map[string]string, error) {
			mod, _ := filepath.Abs("testdata/node/node_modules/dotenv")
			return runJSON(t, "node dotenv", pdir, "node", "-e",
				"const d=require("+jsString(mod)+"); process.stdout.write(JSON.stringify(d.parse(require('fs').readFileSync('.env'))))")
		},
	}
	for name, read := range parsers {
		vals, err := read()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		n := 0
		for i, v := range nasty {
			if !portable[i] {
				continue
			}
			n++
			if g := vals[fmt.Sprintf("FAKE_%d", i)]; g != v {
				t.Errorf("%s: FAKE_%d = %q, want %q (Quote said portable)", name, i, g, v)
			}
		}
		t.Logf("%s read %d portable values exactly", name, n)
	}
	var unportable []string
	for i, ok := range portable {
		if !ok {
			unportable = append(unportable, fmt.Sprintf("%q", nasty[i]))
		}
	}
	t.Logf("bash only: %s", strings.Join(unportable, ", "))
}

// runJSON runs an interop parser that prints a JSON object of strings. A missing parser
// skips the check locally and fails in CI, which installs them all.
func runJSON(t *testing.T, name, dir string, argv ...string) (map[string]string, error) {
	t.Helper()
	if _, err := exec.LookPath(argv[0]); err != nil {
		missing(t, name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if strings.Contains(stderr.String(), "No module named") || strings.Contains(stderr.String(), "Cannot find module") {
			missing(t, name, fmt.Errorf("%s", stderr.String()))
		}
		return nil, fmt.Errorf("%v: %s", err, stderr.String())
	}
	vals := map[string]*string{}
	if err := json.Unmarshal(out, &vals); err != nil {
		return nil, err
	}
	m := map[string]string{}
	for k, v := range vals {
		if v != nil {
			m[k] = *v
		}
	}
	return m, nil
}

func missing(t *testing.T, name string, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed in CI: %v", name, err)
	}
	t.Skipf("%s is not installed: %v", name, err)
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "<missing>"
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestQuoteRefusesNUL(t *testing.T) {
	if _, _, err := envfile.Quote([]byte("FAKE\x00nul")); err == nil {
		t.Fatal("a NUL byte was accepted")
	}
}

// FuzzQuote: whatever Quote accepts, bash reads back byte for byte, and sourcing the file
// runs nothing.
func FuzzQuote(f *testing.F) {
	for _, v := range nasty {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		form, _, err := envfile.Quote(value)
		if err != nil {
			return
		}
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, ".env"), []byte("V="+form+"\n"), 0o600)
		cmd := exec.Command("bash", "-c", `PATH=/nonexistent; set -a; . ./.env; printf %s "$V"`)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bash failed on %q: %v", form, err)
		}
		if !bytes.Equal(out, value) {
			t.Fatalf("bash read %q back from %q, want %q", out, form, value)
		}
	})
}

// FuzzParseProject: .secrets.json parsing never panics, every failure is
// invalid_project_file, and what it accepts has valid, unique variable names.
func FuzzParseProject(f *testing.F) {
	f.Add([]byte(`{"secrets":[{"name":"github_token","env_var":"GITHUB_TOKEN","ttl":"30m"}],"client_id":"p"}`))
	f.Add([]byte(`{"secrets":[{"name":"a","env_var":"X"},{"name":"b","env_var":"X"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := envfile.ParseProject(".secrets.json", data)
		if err != nil {
			if !errors.Is(err, envfile.ErrInvalid) {
				t.Fatalf("error %v is not invalid_project_file", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, m := range p.Secrets {
			if !envfile.ValidVar(m.EnvVar) || seen[m.EnvVar] || m.Name == "" {
				t.Fatalf("accepted %+v", m)
			}
			seen[m.EnvVar] = true
		}
	})
}
