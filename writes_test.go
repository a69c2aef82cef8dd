//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/agent-secrets/secrets/vault"
	"golang.org/x/sys/unix"
)

// writeWatch records, through inotify, what happens to the files of one directory: how
// many times each name was renamed into place (an atomic replace) and how many times each
// was closed after writing.
type writeWatch struct {
	fd int
}

func watchWrites(t *testing.T, dir string) *writeWatch {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Skip("no inotify here:", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE|unix.IN_CREATE|unix.IN_DELETE); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &writeWatch{fd: fd}
}

// events returns, for each kind, how often each file name was seen since the last call.
func (w *writeWatch) events() map[string]map[string]int {
	out := map[string]map[string]int{"renamed": {}, "written": {}, "created": {}, "deleted": {}}
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(w.fd, buf)
		if n <= 0 || err != nil {
			return out
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
			name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+nameLen], "\x00"))
			off += unix.SizeofInotifyEvent + nameLen
			switch {
			case mask&unix.IN_MOVED_TO != 0:
				out["renamed"][name]++
			case mask&unix.IN_CLOSE_WRITE != 0:
				out["written"][name]++
			case mask&unix.IN_CREATE != 0:
				out["created"][name]++
			case mask&unix.IN_DELETE != 0:
				out["deleted"][name]++
			}
		}
	}
}

// TestInitWritesEachFileOnce: init replaces identity.age, config.json, store.key.age,
// leases.age and secrets.age once each and appends to the audit log once. (It wrote
// leases.age and secrets.age twice before the vault layer.)
func TestInitWritesEachFileOnce(t *testing.T) {
	bin := secretsBinary(t)
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	w := watchWrites(t, dir)
	cmd := exec.Command(bin, "init")
	cmd.Env = []string{"SECRETS_DIR=" + dir, "HOME=" + t.TempDir(), "GORACE=atexit_sleep_ms=0"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	ev := w.events()
	want := map[string]int{"identity.age": 1, "config.json": 1, "store.key.age": 1, "leases.age": 1, "secrets.age": 1}
	if !maps.Equal(ev["renamed"], want) {
		t.Errorf("renamed into place: %v, want %v", ev["renamed"], want)
	}
	if ev["written"]["audit.jsonl"] != 1 {
		t.Errorf("audit.jsonl written %d times, want 1 (%v)", ev["written"]["audit.jsonl"], ev["written"])
	}
}

// TestReadCommandsWriteNothing: the commands that only read change no file but the audit
// stamp in .lock, even on a store the earlier tool wrote (no leases.age), whose log a
// read must not move aside, and on a log with a torn last line, which only a write cuts.
func TestReadCommandsWriteNothing(t *testing.T) {
	bin := secretsBinary(t)
	env := execEnv(t, bin)
	dir := strings.TrimPrefix(env[0], "SECRETS_DIR=")
	secretsOut(t, bin, env, "lease", "k")
	reads := [][]string{{"status"}, {"list"}, {"leases"}, {"audit", "--tail", "5"}, {"cleanup", "--dry-run"}, {"version"}}
	check := func(what string) {
		t.Helper()
		w := watchWrites(t, dir)
		for _, args := range reads {
			cmd := exec.Command(bin, args...)
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v: %v\n%s", what, args, err, out)
			}
		}
		ev := w.events()
		delete(ev["written"], ".lock") // the audit stamp, the one write a read may make
		for kind, names := range ev {
			if len(names) > 0 {
				t.Errorf("%s: the read commands %s %v", what, kind, names)
			}
		}
	}
	check("a store as it is")

	f, err := os.OpenFile(filepath.Join(dir, "audit.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"seq":99,"ts":"2026-`)
	f.Close()
	check("a log with a torn last line")

}

// TestReadsLeaveAnEarlierStoreAsItIs: on the earlier agent-secrets tool's store (a version
// 1 secrets.age, its own log, nothing of ours), reads convert nothing and move nothing; the
// first write converts it.
func TestReadsLeaveAnEarlierStoreAsItIs(t *testing.T) {
	bin := secretsBinary(t)
	env := execEnv(t, bin)
	dir := strings.TrimPrefix(env[0], "SECRETS_DIR=")
	for _, f := range []string{"leases.age", "store.key.age", "audit.jsonl", ".lock"} {
		os.Remove(filepath.Join(dir, f))
	}
	writeAgeFile(t, dir, "secrets.age", `{"secrets":{"github_token":{"name":"github_token","value":"FAKE-earlier-0001","created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:05Z"}}}`)
	os.WriteFile(filepath.Join(dir, "audit.jsonl"), []byte(`{"time":"2026-01-02T03:04:05Z","action":"lease","secret":"github_token"}`+"\n"), 0o600)
	w := watchWrites(t, dir)
	for _, args := range [][]string{{"status"}, {"list"}, {"leases"}, {"audit", "--tail", "5"}} {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	ev := w.events()
	delete(ev["created"], ".lock") // what every command flocks: created on first use
	delete(ev["written"], ".lock") // and opened for writing (the stamp); closing it is an event
	for kind, names := range ev {
		if len(names) > 0 {
			t.Errorf("the read commands %s %v", kind, names)
		}
	}
	if out := secretsOut(t, bin, env, "lease", "github_token"); out != "FAKE-earlier-0001" {
		t.Fatalf("the first write (a lease) gave %q", out)
	}
	for _, f := range []string{"store.key.age", "leases.age", "secrets.age.v1.bak"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("after the first write: %v", err)
		}
	}
	if !strings.Contains(secretsOut(t, bin, env, "audit", "--event", "convert"), "agent-secrets v1") {
		t.Error("the conversion is not in the log")
	}
}

// writeAgeFile writes plaintext as a store file, encrypted to the store's identity, as
// anyone who knows the public key can.
func writeAgeFile(t *testing.T, dir, name, plaintext string) {
	t.Helper()
	idText, err := os.ReadFile(filepath.Join(dir, "identity.age"))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(idText))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, _ := age.Encrypt(&buf, ids[0].(*age.X25519Identity).Recipient())
	w.Write([]byte(plaintext))
	w.Close()
	if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestLocalPartApart: with the local part in a directory of its own, the shared part
// (identity, store key, secrets, config) stays in the store directory and never holds a
// lease, a log line or a lock; the local part holds exactly those.
func TestLocalPartApart(t *testing.T) {
	root := t.TempDir()
	dir, local := filepath.Join(root, "shared"), filepath.Join(root, "local")
	v := vault.New(vault.Options{Dir: dir, StateDir: local, LockTimeout: time.Second, ClientID: "apart"})
	ctx := context.Background()
	if _, err := v.Init(ctx, vault.InitInput{}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Add(ctx, vault.AddInput{Name: "k", Value: []byte("FAKE-apart-0001")}); err != nil {
		t.Fatal(err)
	}
	if g, err := v.Lease(ctx, vault.LeaseInput{Name: "k", TTL: "1h"}); err != nil || string(g.Value) != "FAKE-apart-0001" {
		t.Fatalf("lease: %v", err)
	}
	names := func(d string) []string {
		entries, _ := os.ReadDir(d)
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	if got, want := names(dir), []string{"config.json", "identity.age", "secrets.age", "store.key.age"}; !slices.Equal(got, want) {
		t.Errorf("shared part: %v, want %v", got, want)
	}
	if got, want := names(local), []string{".lock", "audit.jsonl", "leases.age"}; !slices.Equal(got, want) {
		t.Errorf("local part: %v, want %v", got, want)
	}
}
