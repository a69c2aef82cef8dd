package envfile

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/agent-secrets/secrets/internal/crash"
)

// ErrExists reports that the output file exists and --force was not given.
var ErrExists = errors.New("file exists")

// Record is a .env file that secrets wrote, kept in leases.age so that ending its leases
// (or secrets cleanup) can remove it, and nothing else.
type Record struct {
	Path      string    `json:"path"`
	SHA256    string    `json:"sha256"`
	LeaseIDs  []string  `json:"lease_ids"`
	CreatedAt time.Time `json:"created_at"`
}

// Var is one line of a .env file.
type Var struct {
	Name  string
	Value []byte
}

// Render builds the file: a header that marks it managed, then NAME=value lines. It
// returns the names of variables that only bash reads back exactly.
func Render(vars []Var, leaseIDs []string, expires time.Time) (content []byte, bashOnly []string, err error) {
	var b strings.Builder
	fmt.Fprintf(&b, "# Managed by secrets for leases %s; they expire by %s.\n", strings.Join(leaseIDs, ", "), expires.UTC().Format(time.RFC3339))
	b.WriteString("# Removed when the leases end; remove it now with: secrets cleanup. Do not commit it.\n")
	for _, v := range vars {
		form, portable, err := Quote(v.Value)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", v.Name, err)
		}
		if !portable {
			bashOnly = append(bashOnly, v.Name)
		}
		b.WriteString(v.Name)
		b.WriteByte('=')
		b.WriteString(form)
		b.WriteByte('\n')
	}
	return []byte(b.String()), bashOnly, nil
}

// Hash is the content hash a Record keeps.
func Hash(content []byte) string {
	sum := sha256.Sum256(content)
	return "sha256:" + hex.EncodeToString(sum[:])
}

const tempMarker = ".secrets-tmp-"

// CheckOutput reports ErrExists when path exists (a symlink included) and force is false.
func CheckOutput(path string, force bool) error {
	if _, err := os.Lstat(path); err == nil && !force {
		return fmt.Errorf("%w: %s", ErrExists, path)
	}
	return nil
}

// Write puts content at path, mode 0600 whatever the umask: a temp file in the same
// directory, fsync, rename over path, fsync the directory. A symlink at path is replaced,
// never followed. Temp files that an earlier, interrupted write left are removed first,
// since they may hold values.
func Write(path string, content []byte) (err error) {
	RemoveTemps(path)
	dir, base := filepath.Split(path)
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(dir, "."+base+tempMarker+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if _, err = f.Write(content); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	crash.Point("envfile.rename", "")
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// RemoveTemps deletes temp files that a write of path interrupted by a crash left beside
// it. They are ours by name, and may hold values.
func RemoveTemps(path string) {
	dir, base := filepath.Split(path)
	stale, _ := filepath.Glob(filepath.Join(dir, "."+base+tempMarker+"*"))
	for _, p := range stale {
		os.Remove(p)
	}
}

// Outcome is what Remove found.
type Outcome string

// The outcomes of Remove.
const (
	Removed  Outcome = "removed"
	Modified Outcome = "modified" // not ours any more: left in place
	Gone     Outcome = "gone"     // already deleted
)

// Inspect says what Remove would do with the file r describes, changing nothing.
func Inspect(r Record) (Outcome, error) {
	fi, err := os.Lstat(r.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return Gone, nil
	}
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return Modified, nil
	}
	content, err := os.ReadFile(r.Path)
	if err != nil {
		return "", err
	}
	if Hash(content) != r.SHA256 {
		return Modified, nil
	}
	return Removed, nil
}

// Remove deletes the file r describes only if it is still a regular file (not a link)
// with the recorded bytes. A file someone changed is left and reported as Modified.
func Remove(r Record) (Outcome, error) {
	RemoveTemps(r.Path)
	o, err := Inspect(r)
	if err != nil || o != Removed {
		return o, err
	}
	if err := os.Remove(r.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	return Removed, nil
}
