package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// secretsBinary returns a path that runs this test binary as the secrets command
// (testscript dispatches on argv[0]), so whole-process tests exercise the real run().
func secretsBinary(t testing.TB) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "secrets")
	if err := os.Symlink(self, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// argvWatch polls every process's argv for any of the needles until stopped.
type argvWatch struct {
	needles [][]byte
	scans   atomic.Int64
	mu      sync.Mutex
	hits    []string
	stop    chan struct{}
	done    chan struct{}
}

func watchArgv(needles [][]byte) *argvWatch {
	w := &argvWatch{needles: needles, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
			for _, p := range procs {
				b, err := os.ReadFile(p)
				if err != nil {
					continue
				}
				for _, n := range w.needles {
					if bytes.Contains(b, n) {
						w.mu.Lock()
						w.hits = append(w.hits, p+": "+strings.ReplaceAll(string(b), "\x00", " "))
						w.mu.Unlock()
					}
				}
			}
			w.scans.Add(1)
		}
	}()
	return w
}

func (w *argvWatch) finish() []string {
	close(w.stop)
	<-w.done
	return w.hits
}

// TestNoValueLeaks runs a session of every command with a fake value and looks for the
// value, raw, base64 and hex, in every process's argv while it runs, in stderr, in the
// audit log, in every file of the store directory and in $TMPDIR.
func TestNoValueLeaks(t *testing.T) {
	bin := secretsBinary(t)
	value := "FAKE-leak-value-7d3f9a2c41"
	value2 := "FAKE-leak-other-1b8e55d0c2"
	var forms [][]byte
	for _, v := range []string{value, value2} {
		forms = append(forms, []byte(v), []byte(base64.StdEncoding.EncodeToString([]byte(v))), []byte(hex.EncodeToString([]byte(v))))
	}
	work := t.TempDir()
	dir, tmp := filepath.Join(work, "store"), filepath.Join(work, "tmp")
	os.Mkdir(tmp, 0o700)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + work, "SECRETS_DIR=" + dir, "TMPDIR=" + tmp, "GORACE=atexit_sleep_ms=0"}

	// Control: the watcher must see a value that is in an argv.
	w := watchArgv(forms)
	ctl := exec.Command("sh", "-c", "sleep 0.3", value)
	if err := ctl.Run(); err != nil {
		t.Fatal(err)
	}
	if hits := w.finish(); len(hits) == 0 {
		t.Fatal("control: the argv watcher did not see a value placed in argv")
	}

	w = watchArgv(forms)
	run := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env, cmd.Stdin = env, strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.Run() // failures are part of the session; only what they print matters here
		for _, f := range forms {
			if bytes.Contains(errb.Bytes(), f) {
				t.Errorf("secrets %v: value on stderr", args)
			}
			if args[0] != "lease" && bytes.Contains(out.Bytes(), f) {
				t.Errorf("secrets %v: value on stdout", args)
			}
		}
		return out.String()
	}
	run("", "init")
	run(value+"\n", "add", "k", "--rotate-via", "true")
	if got := run("", "lease", "k"); got != value {
		t.Fatalf("lease printed %q", got)
	}
	var env1 struct {
		Result struct {
			LeaseID string `json:"lease_id"`
		} `json:"result"`
	}
	json.Unmarshal([]byte(run("", "lease", "k", "--json", "--ttl", "5m")), &env1)
	run("", "renew", env1.Result.LeaseID, "--ttl", "10m")
	run("", "leases")
	run("", "list")
	run("", "status")
	run(value2, "set", "k")
	run("", "lease", "k", "--ttl", "99h")
	run("", "lease", "missing")
	run(value, "add", "k")
	run("", "env", "--secret", "k", "--output", filepath.Join(work, "project.env"))
	run("", "exec", "--secret", "k", "--", "sh", "-c", `echo "$K"; echo "$K" | base64; echo "$K" >&2`)
	run("", "cleanup", "--all")
	if _, err := os.Stat(filepath.Join(work, "project.env")); !os.IsNotExist(err) {
		t.Error("cleanup --all left the .env file")
	}
	run("", "revoke", env1.Result.LeaseID)
	run("", "revoke", "--all")
	run("", "audit", "--tail", "100")
	run("", "audit", "--verify")
	run("", "set", "k", "--rotate-via", `read v; printf "%s-rot\n" "$v"`)
	run("", "rotate", "k")
	run("", "lease", "k", "--ttl", "5m")
	run(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"leak","version":"1"}}}
{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"secrets_exec","arguments":{"command":["sh","-c","echo $K"],"secrets":[{"name":"k"}]}}}
{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"secrets_audit","arguments":{}}}
`, "mcp")
	run("", "watch", "--once")
	run("", "status")
	run("", "killswitch", "--reason", "leak test")
	run("", "lease", "k")
	run("", "unlock")
	run("", "cleanup", "--all")
	run("", "rm", "k")
	run("", "version")
	if w.scans.Load() < 10 {
		t.Fatalf("argv watcher made only %d scans", w.scans.Load())
	}
	for _, h := range w.finish() {
		t.Errorf("value in argv: %s", h)
	}
	for _, root := range []string{dir, tmp} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, _ := os.ReadFile(p)
			for _, f := range forms {
				if bytes.Contains(b, f) {
					t.Errorf("value in %s", p)
				}
			}
			return nil
		})
	}
}
