package safefile_test

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/agent-secrets/secrets/internal/safefile"
)

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte("x"), 0o600)
	loose := filepath.Join(dir, "loose")
	os.WriteFile(loose, []byte("x"), 0o600)
	os.Chmod(loose, 0o640)
	link := filepath.Join(dir, "link")
	os.Symlink(good, link)
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o700)

	if b, err := safefile.Read(good); err != nil || string(b) != "x" {
		t.Fatalf("good file: %q %v", b, err)
	}
	for path, want := range map[string]struct{ reason, fix string }{
		loose: {"mode", "chmod 600 " + loose},
		link:  {"symlink", "replace the link " + link + " with the real file"},
	} {
		_, err := safefile.Read(path)
		var pe *safefile.PermError
		if !errors.Is(err, safefile.ErrInsecure) || !errors.As(err, &pe) || pe.Reason != want.reason || pe.Fix() != want.fix {
			t.Errorf("%s: %v (%+v)", filepath.Base(path), err, pe)
		}
	}
	if _, err := safefile.Read(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	if err := safefile.CheckDir(sub); err != nil {
		t.Errorf("a 0700 directory: %v", err)
	}
	os.Chmod(sub, 0o755)
	var pe *safefile.PermError
	if err := safefile.CheckDir(sub); !errors.As(err, &pe) || pe.Fix() != "chmod 700 "+sub {
		t.Errorf("a 0755 directory: %v", err)
	}
	if err := safefile.CheckDir(good); !errors.As(err, &pe) || pe.Reason != "type" {
		t.Errorf("a file as a directory: %v", err)
	}
}

func TestForeignOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("x"), 0o600)
	os.Chown(p, 65534, 65534)
	var pe *safefile.PermError
	if _, err := safefile.Read(p); !errors.As(err, &pe) || pe.Reason != "owner" || !strings.HasPrefix(pe.Fix(), "chown") {
		t.Fatalf("a file of another user: %v", err)
	}
}

// TestReplace: exactly 0600 whatever the umask, a link at the path is replaced and its
// target untouched, and no temp file is left.
func TestReplace(t *testing.T) {
	old := syscall.Umask(0o277)
	defer syscall.Umask(old)
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("keep"), 0o600)
	p := filepath.Join(dir, "f")
	os.Symlink(target, p)
	if err := safefile.Replace(p, []byte("new")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Fatalf("replaced file: %v %v", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Fatal("the link's target was written")
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Fatalf("content %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("left behind: %v", entries)
	}
}

// TestStageDiscard: a staged file is invisible until published, and a failed write
// leaves nothing and matches ErrWrite.
func TestStageDiscard(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("old"), 0o600)
	st, err := safefile.Stage(p, func(w io.Writer) error { _, err := w.Write([]byte("new")); return err })
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatal("a staged file is visible")
	}
	st.Discard()
	boom := errors.New("boom")
	if _, err := safefile.Stage(p, func(io.Writer) error { return boom }); !errors.Is(err, safefile.ErrWrite) || !errors.Is(err, boom) {
		t.Fatalf("failed write: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
}

// TestRemoveTemps removes only what Stage names as its own.
func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"..env.secrets-tmp-1", ".other.secrets-tmp-2", ".leases.age.tmp-abc", "env.tmp-keep", ".env"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o600)
	}
	if err := safefile.RemoveTemps(dir, ".env"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "..env.secrets-tmp-1")); err == nil {
		t.Error("the temp file of .env is left")
	}
	if _, err := os.Stat(filepath.Join(dir, ".other.secrets-tmp-2")); err != nil {
		t.Error("the temp file of another name was removed")
	}
	if err := safefile.RemoveTemps(dir, ""); err != nil {
		t.Fatal(err)
	}
	var left []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if strings.Join(left, " ") != ".env env.tmp-keep" {
		t.Errorf("left %v, want .env and env.tmp-keep", left)
	}
}

// A file OpenFile creates is 0600 whatever umask we inherit: a guarded store's owner side
// inherits the agent user's through sudo, and 0777 would make a new audit segment 0000,
// which no later command could append to.
func TestOpenFileIgnoresUmask(t *testing.T) {
	old := syscall.Umask(0o777)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	f, err := safefile.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("created under umask 0777: %v %v", fi.Mode(), err)
	}
}
