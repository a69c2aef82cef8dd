package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/vault"
	"github.com/gofrs/flock"
)

// call runs one invocation in-process against dir and returns its exit code, stdout and stderr.
func call(t *testing.T, dir, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := []string{"SECRETS_DIR=" + dir, "HOME=" + t.TempDir()}
	code := newApp(strings.NewReader(stdin), &out, &errb, env, time.Now).run(append([]string{"secrets"}, args...))
	return code, out.String(), errb.String()
}

func mustCall(t *testing.T, dir, stdin string, args ...string) {
	t.Helper()
	if code, out, errs := call(t, dir, stdin, args...); code != 0 {
		t.Fatalf("secrets %v: exit %d\n%s%s", args, code, out, errs)
	}
}

// TestExitCodes holds every error code to its exit status, through the real command path.
func TestExitCodes(t *testing.T) {
	initialized := func(t *testing.T, dir string) {
		mustCall(t, dir, "", "init")
		mustCall(t, dir, "FAKE-exit-0001", "add", "k")
	}
	cases := []struct {
		code  string
		exit  int
		setup func(t *testing.T, dir string)
		stdin string
		args  []string
	}{
		{"", 0, nil, "", []string{"version"}},
		{"usage", 2, nil, "", []string{"frobnicate"}},
		{"usage", 2, initialized, "", []string{"lease", "k", "--json", "--nope"}},
		{"invalid_name", 2, initialized, "FAKE-x", []string{"add", "bad name"}},
		{"invalid_value", 2, initialized, "", []string{"add", "empty"}},
		{"invalid_ttl", 2, initialized, "", []string{"lease", "k", "--ttl", "0", "--json"}},
		{"ttl_exceeds_max", 2, initialized, "", []string{"lease", "k", "--ttl", "25h", "--json"}},
		{"not_initialized", 3, nil, "", []string{"list"}},
		{"already_initialized", 3, initialized, "", []string{"init"}},
		{"invalid_config", 3, func(t *testing.T, dir string) {
			initialized(t, dir)
			write(t, filepath.Join(dir, "config.json"), `{"max_lease_ttl":"nope"}`)
		}, "", []string{"list"}},
		{"secret_not_found", 4, initialized, "", []string{"lease", "nope", "--json"}},
		{"lease_not_found", 4, initialized, "", []string{"revoke", "lease_NOPE"}},
		{"secret_exists", 5, initialized, "FAKE-again", []string{"add", "k"}},
		{"file_exists", 5, func(t *testing.T, dir string) {
			initialized(t, dir)
			write(t, filepath.Join(filepath.Dir(dir), "taken.env"), "MINE=1\n")
		}, "", []string{"env", "--secret", "k", "--output", "STORE/../taken.env"}},
		{"path_in_store", 2, initialized, "", []string{"env", "--secret", "k", "--output", "STORE/identity.age", "--force"}},
		{"invalid_project_file", 2, initialized, "", []string{"env", "--secret", "k=not-a-var"}},
		{"lockdown", 9, func(t *testing.T, dir string) {
			initialized(t, dir)
			mustCall(t, dir, "", "killswitch")
		}, "", []string{"lease", "k", "--json"}},
		{"rotation_failed", 10, func(t *testing.T, dir string) {
			initialized(t, dir)
			mustCall(t, dir, "", "set", "k", "--rotate-via", "exit 1")
		}, "", []string{"rotate", "k"}},
		{"store_locked", 6, func(t *testing.T, dir string) {
			initialized(t, dir)
			lk := flock.New(filepath.Join(dir, ".lock"))
			if ok, err := lk.TryLock(); !ok || err != nil {
				t.Fatal("could not take the lock", err)
			}
			t.Cleanup(func() { lk.Close() })
		}, "", []string{"list", "--lock-timeout", "50ms"}},
		{"decrypt_failed", 7, func(t *testing.T, dir string) {
			initialized(t, dir)
			write(t, filepath.Join(dir, "secrets.age"), "garbage")
		}, "", []string{"list"}},
		{"store_corrupt", 7, func(t *testing.T, dir string) {
			initialized(t, dir)
			write(t, filepath.Join(dir, "identity.age"), "# no key here\n")
		}, "", []string{"list"}},
		{"insecure_permissions", 7, func(t *testing.T, dir string) {
			initialized(t, dir)
			os.Chmod(filepath.Join(dir, "identity.age"), 0o644)
		}, "", []string{"list"}},
		{"audit_tampered", 8, func(t *testing.T, dir string) {
			initialized(t, dir)
			p := filepath.Join(dir, "audit.jsonl")
			b, _ := os.ReadFile(p)
			write(t, p, strings.Replace(string(b), `"ok":true`, `"ok":false`, 1))
			if code, _, _ := call(t, dir, "", "audit", "--verify"); code != 8 {
				t.Fatal("verify did not flag the edit")
			}
		}, "", []string{"lease", "k", "--json"}},
		{"audit_failed", 8, func(t *testing.T, dir string) {
			initialized(t, dir)
			p := filepath.Join(dir, "audit.jsonl")
			os.Remove(p)
			os.Mkdir(p, 0o700)
		}, "", []string{"lease", "k", "--json"}},
		{"write_failed", 11, func(t *testing.T, dir string) {
			// A directory where config.json goes makes init's atomic rename fail.
			os.MkdirAll(filepath.Join(dir, "config.json", "x"), 0o700)
			os.Chmod(dir, 0o700)
		}, "", []string{"init"}},
	}
	for _, tc := range cases {
		name := tc.code
		if name == "" {
			name = "ok"
		}
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "store")
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			args := make([]string, len(tc.args))
			for i, a := range tc.args {
				args[i] = strings.ReplaceAll(a, "STORE", dir)
			}
			exit, stdout, stderr := call(t, dir, tc.stdin, args...)
			if exit != tc.exit {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", exit, tc.exit, stdout, stderr)
			}
			var env struct {
				OK    bool   `json:"ok"`
				Fix   string `json:"fix"`
				Error struct {
					Code string `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(stdout), &env); err != nil {
				t.Fatalf("stdout is not one envelope: %v\n%s", err, stdout)
			}
			if env.Error.Code != tc.code || env.OK != (tc.code == "") {
				t.Errorf("code %q ok %v, want %q", env.Error.Code, env.OK, tc.code)
			}
			if tc.code != "" {
				if env.Fix == "" {
					t.Error("no fix")
				}
				// One error line, then the fix as a hint, as age prints its hints.
				lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
				if len(lines) != 2 || !strings.HasPrefix(lines[0], "secrets: error: ") || lines[1] != "secrets: hint: "+env.Fix {
					t.Errorf("stderr is not an error line and its hint: %q (fix %q)", stderr, env.Fix)
				}
			}
		})
	}
	if p := classify(errors.New("something unforeseen")); p.code != "generic_error" || p.exit != exitGeneric {
		t.Errorf("unknown error classified as %+v", p)
	}
}

// TestProblemsCoverCodes: main's table has a row for every code the vault can return,
// and no row for a code it cannot.
func TestProblemsCoverCodes(t *testing.T) {
	rows := map[string]bool{}
	for _, p := range problems {
		if rows[p.code] {
			t.Errorf("code %s has two rows", p.code)
		}
		rows[p.code] = true
		if p.fix == "" || p.exit == 0 {
			t.Errorf("code %s: exit %d, fix %q", p.code, p.exit, p.fix)
		}
	}
	codes := vault.Codes()
	for _, c := range codes {
		if !rows[c] {
			t.Errorf("the vault returns %s, which main.go's table lacks", c)
		}
	}
	if len(rows) != len(codes) {
		t.Errorf("main.go's table has %d codes, the vault returns %d", len(rows), len(codes))
	}
}

// TestREADMEExitCodes keeps the README's table of codes and exit statuses equal to main.go's.
func TestREADMEExitCodes(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| ([0-9]+) \\|")
	documented := map[string]int{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		documented[m[1]], _ = strconv.Atoi(m[2])
	}
	want := map[string]int{"generic_error": exitGeneric}
	for _, p := range problems {
		want[p.code] = p.exit
	}
	for code, exit := range want {
		if got, ok := documented[code]; !ok || got != exit {
			t.Errorf("README: code %s documented with exit %d (present %v), main.go says %d", code, got, ok, exit)
		}
	}
	for code := range documented {
		if _, ok := want[code]; !ok {
			t.Errorf("README documents code %s that main.go does not have", code)
		}
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
