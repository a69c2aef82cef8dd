package envfile

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/agent-secrets/secrets/internal/children"
	"github.com/agent-secrets/secrets/internal/safefile"
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
	// UID is set in a guarded store: the caller whose file it is, who wrote it and
	// removes it. The owner side never opens its path (DESIGN.md section 10).
	UID *int `json:"uid,omitempty"`
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

// CheckOutput reports ErrExists when path exists (a symlink included) and force is false.
func CheckOutput(path string, force bool) error {
	if _, err := os.Lstat(path); err == nil && !force {
		return fmt.Errorf("%w: %s", ErrExists, path)
	}
	return nil
}

// Write puts content at path, mode 0600 whatever the umask, atomically (safefile.Replace):
// a symlink at path is replaced, never followed. Temp files that an earlier, interrupted
// write left are removed first, since they may hold values.
func Write(path string, content []byte) error {
	RemoveTemps(path)
	return safefile.Replace(path, content)
}

// RemoveTemps deletes temp files that a write of path interrupted by a crash left beside
// it. They are ours by name, and may hold values.
func RemoveTemps(path string) {
	dir, base := filepath.Split(path)
	safefile.RemoveTemps(dir, base)
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

// Gitignore adds the file at path to the .gitignore beside it when it is in a git work
// tree and not ignored yet, and says what it did. Git missing or failing is not an error:
// the file is written anyway, and the answer says why nothing was added.
//
// The work tree is the project's, and the project may be hostile: git runs with a clean
// environment (no store identity, nothing of the caller's but PATH, HOME and the locale)
// and with the repository's fsmonitor turned off, so reading the tree runs none of its
// commands; .gitignore is opened without following a symlink (one pointing at ~/.bashrc
// is left alone) and must be a regular file.
func Gitignore(path string) string {
	dir, base := filepath.Split(path)
	env := []string{"GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0", "GIT_OPTIONAL_LOCKS=0"}
	for _, k := range []string{"PATH", "HOME", "LANG", "LC_ALL"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	git := func(args ...string) error {
		cmd := exec.Command("git", append([]string{"-c", "core.fsmonitor=false", "-c", "core.untrackedCache=false"}, args...)...)
		cmd.Dir, cmd.Env = dir, env
		return children.Run(cmd)
	}
	if git("rev-parse", "--is-inside-work-tree") != nil {
		return "not in a git work tree"
	}
	if git("check-ignore", "-q", "--", base) == nil {
		return "already ignored by git"
	}
	gi := filepath.Join(dir, ".gitignore")
	f, err := os.OpenFile(gi, os.O_RDWR|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o644)
	if errors.Is(err, syscall.ELOOP) {
		return "not added: " + gi + " is a symlink, and secrets never writes through one"
	}
	if err != nil {
		return "could not update .gitignore: " + err.Error()
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return "not added: " + gi + " is not a regular file"
	}
	old, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return "could not read .gitignore: " + err.Error()
	}
	line := base + "\n"
	if len(old) > 0 && old[len(old)-1] != '\n' {
		line = "\n" + line
	}
	if _, err := f.WriteString(line); err != nil {
		return "could not update .gitignore: " + err.Error()
	}
	return "added " + base + " to " + gi
}
