package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/guard"
	"github.com/agent-secrets/secrets/internal/sandbox"
	"github.com/gofrs/flock"
	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	sandbox.Main() // the in-process MCP server's tool commands re-exec this test binary
	testscript.Main(m, map[string]func(){
		"secrets": func() { os.Exit(runForTest()) },
	})
}

// runForTest is main with a clock that $SECRETS_TEST_CLOCK (a duration such as 2h) moves
// forward, so scripts can expire leases without sleeping. It lives in a _test.go file:
// the released binary cannot be steered by that variable.
func runForTest() int {
	now := time.Now
	if off := os.Getenv("SECRETS_TEST_CLOCK"); off != "" {
		d, err := time.ParseDuration(off)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad SECRETS_TEST_CLOCK:", err)
			return 99
		}
		now = func() time.Time { return time.Now().Add(d) }
	}
	harden()
	if len(os.Args) == 2 && os.Args[1] == guard.OwnerArg {
		return ownerSide(os.Stdin, os.Stdout, os.Stderr) // the guarded store tests install this binary
	}
	return newApp(os.Stdin, os.Stdout, os.Stderr, os.Environ(), now).run(os.Args)
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("SECRETS_DIR", filepath.Join(env.WorkDir, "store"))
			env.Setenv("HOME", filepath.Join(env.WorkDir, "home"))
			// Under -race every process would otherwise sleep 1s at exit.
			env.Setenv("GORACE", "atexit_sleep_ms=0")
			env.Values["snapshots"] = map[string]map[string]fileState{}
			env.Values["lock"] = &lockSlot{}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"mode":      cmdMode,
			"snapshot":  cmdSnapshot,
			"unchanged": cmdUnchanged,
			"flipbyte":  cmdFlipByte,
			"truncate":  cmdTruncate,
			"holdlock":  cmdHoldLock,
			"nofile":    cmdNoFile,
		},
		RequireExplicitExec: true,
	})
}

// mode PATH OCTAL: the file's permission bits are exactly OCTAL.
func cmdMode(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: mode PATH OCTAL")
	}
	fi, err := os.Lstat(ts.MkAbs(args[0]))
	ts.Check(err)
	want, err := strconv.ParseUint(args[1], 8, 32)
	ts.Check(err)
	if got := fi.Mode().Perm(); (got == fs.FileMode(want)) == neg {
		ts.Fatalf("%s: mode %#o, want %s%#o", args[0], got, map[bool]string{true: "not ", false: ""}[neg], want)
	}
}

type fileState struct {
	data []byte
	mode fs.FileMode
}

func readTree(ts *testscript.TestScript, dir string) map[string]fileState {
	out := map[string]fileState{}
	ts.Check(filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		var data []byte
		if fi.Mode().IsRegular() {
			if data, err = os.ReadFile(p); err != nil {
				return err
			}
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = fileState{data: data, mode: fi.Mode()}
		return nil
	}))
	return out
}

// snapshot NAME [DIR]: remember every file's bytes and mode under DIR ($SECRETS_DIR).
func cmdSnapshot(ts *testscript.TestScript, neg bool, args []string) {
	dir := ts.Getenv("SECRETS_DIR")
	if len(args) == 2 {
		dir = ts.MkAbs(args[1])
	}
	ts.Value("snapshots").(map[string]map[string]fileState)[args[0]] = readTree(ts, dir)
}

// unchanged NAME [DIR]: every file has the bytes and mode it had at snapshot NAME, and
// no file was added or removed.
func cmdUnchanged(ts *testscript.TestScript, neg bool, args []string) {
	dir := ts.Getenv("SECRETS_DIR")
	if len(args) == 2 {
		dir = ts.MkAbs(args[1])
	}
	before := ts.Value("snapshots").(map[string]map[string]fileState)[args[0]]
	if before == nil {
		ts.Fatalf("no snapshot %q", args[0])
	}
	after := readTree(ts, dir)
	var diffs []string
	for name, b := range before {
		a, ok := after[name]
		switch {
		case !ok:
			diffs = append(diffs, name+" removed")
		case !bytes.Equal(a.data, b.data):
			diffs = append(diffs, name+" content changed")
		case a.mode != b.mode:
			diffs = append(diffs, fmt.Sprintf("%s mode %v -> %v", name, b.mode, a.mode))
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			diffs = append(diffs, name+" added")
		}
	}
	sort.Strings(diffs)
	if (len(diffs) == 0) == neg {
		ts.Fatalf("changes since snapshot %s: %v", args[0], diffs)
	}
}

// flipbyte PATH OFFSET: xor one byte with 0x01; a negative OFFSET counts from the end.
func cmdFlipByte(ts *testscript.TestScript, neg bool, args []string) {
	p := ts.MkAbs(args[0])
	data, err := os.ReadFile(p)
	ts.Check(err)
	off, err := strconv.Atoi(args[1])
	ts.Check(err)
	if off < 0 {
		off += len(data)
	}
	data[off] ^= 1
	ts.Check(os.WriteFile(p, data, 0o600))
}

// truncate PATH SIZE: cut the file to SIZE bytes (a negative SIZE cuts that many off the end).
func cmdTruncate(ts *testscript.TestScript, neg bool, args []string) {
	p := ts.MkAbs(args[0])
	size, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	if size < 0 {
		fi, err := os.Stat(p)
		ts.Check(err)
		size += fi.Size()
	}
	ts.Check(os.Truncate(p, size))
}

// lockSlot is the store lock a script holds with holdlock, until holdlock release.
type lockSlot struct{ f *flock.Flock }

// holdlock [release]: hold the store's flock, as another process would, until the script
// ends or holdlock release.
func cmdHoldLock(ts *testscript.TestScript, neg bool, args []string) {
	slot := ts.Value("lock").(*lockSlot)
	if len(args) == 1 && args[0] == "release" {
		if slot.f == nil {
			ts.Fatalf("the lock is not held")
		}
		ts.Check(slot.f.Close())
		slot.f = nil
		return
	}
	lk := flock.New(filepath.Join(ts.Getenv("SECRETS_DIR"), ".lock"))
	ok, err := lk.TryLock()
	ts.Check(err)
	if !ok {
		ts.Fatalf("lock already held")
	}
	slot.f = lk
	ts.Defer(func() { lk.Close() })
}

// nofile DIR VALUE: no file under DIR contains VALUE.
func cmdNoFile(ts *testscript.TestScript, neg bool, args []string) {
	for name, f := range readTree(ts, ts.MkAbs(args[0])) {
		if bytes.Contains(f.data, []byte(args[1])) {
			ts.Fatalf("%s contains the value", name)
		}
	}
}

// TestPrunedTreeAsFull: a command run in a tree of just itself (invoked) says and does
// what it does in the full tree: help, usage errors, global flags before it, and a run
// against a store that is not there.
func TestPrunedTreeAsFull(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nostore")
	full := newApp(nil, nil, nil, nil, time.Now).commands()
	var argvs [][]string
	for _, c := range full.Commands {
		for _, tail := range [][]string{{"--help"}, {"--bogus"}, {"-h"}} {
			argvs = append(argvs,
				append([]string{"secrets", c.Name}, tail...),
				append([]string{"secrets", "--json", c.Name}, tail...),
				append([]string{"secrets", "--dir", dir, c.Name}, tail...),
				append([]string{"secrets", "--dir=" + dir, "--lock-timeout", "1s", c.Name}, tail...))
		}
		if c.Name != "init" && c.Name != "mcp" && c.Name != "serve" && c.Name != "watch" && c.Name != "exec" {
			argvs = append(argvs, []string{"secrets", "--dir", dir, c.Name, "x"})
		}
	}
	argvs = append(argvs, []string{"secrets"}, []string{"secrets", "--json"}, []string{"secrets", "nosuch"},
		[]string{"secrets", "--nosuch", "lease"}, []string{"secrets", "--dir"}, []string{"secrets", "--", "lease"})
	run := func(argv []string, prune bool) string {
		pruneTree = prune
		defer func() { pruneTree = true }()
		var out, errOut bytes.Buffer
		code := newApp(bytes.NewReader(nil), &out, &errOut, []string{"HOME=" + dir}, time.Now).run(argv)
		return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	pruned := 0
	for _, argv := range argvs {
		if invoked(full, argv) != nil {
			pruned++
		}
		if got, want := run(argv, true), run(argv, false); got != want {
			t.Errorf("%q:\npruned tree:\n%s\nfull tree:\n%s", argv, got, want)
		}
	}
	if pruned < len(full.Commands)*12 {
		t.Fatalf("only %d of %d runs were pruned", pruned, len(argvs))
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("a run made the store directory")
	}
}
