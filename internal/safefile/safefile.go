// Package safefile opens and replaces the files secrets keeps private. One rule decides
// what may be read: never through a symlink, only a regular file (or, for a directory, a
// directory), owned by the user, with no access for group or others. One helper replaces
// a file: a temp file beside it (O_EXCL, 0600 whatever the umask), write, fsync, rename,
// fsync the directory, so every file is either old or new. The store, the audit log and
// the .env files secrets writes all go through here, so a loose mode gets the same error
// and the same fix wherever it is.
package safefile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/agent-secrets/secrets/internal/crash"
)

// ErrInsecure matches every *PermError: a file or directory reachable by other users,
// owned by another user, a symlink, or not the kind of file it should be. It is refused,
// never repaired silently.
var ErrInsecure = errors.New("insecure permissions")

// ErrWrite wraps every failure to write a file (full disk, I/O error, failed fsync). The
// file that was being replaced is left as it was.
var ErrWrite = errors.New("write failed")

// PermError reports a file refused for its mode, owner or type. It matches ErrInsecure
// and knows the command that fixes it.
type PermError struct {
	Path   string
	Mode   fs.FileMode
	Reason string // "mode", "owner", "symlink", "type"
}

// Error says what is wrong with the file, in the words of ssh's refusal of a loose key.
func (e *PermError) Error() string {
	switch e.Reason {
	case "symlink":
		return fmt.Sprintf("%s is a symlink; secrets never follows a link to a private file", e.Path)
	case "owner":
		return fmt.Sprintf("%s is owned by another user", e.Path)
	case "type":
		return fmt.Sprintf("%s is not a regular file", e.Path)
	}
	return fmt.Sprintf("permissions %#o for %s are too open; it must not be accessible by group or others",
		e.Mode.Perm(), e.Path)
}

// Fix returns the command that repairs the problem.
func (e *PermError) Fix() string {
	switch e.Reason {
	case "symlink":
		return fmt.Sprintf("replace the link %s with the real file", e.Path)
	case "owner":
		return fmt.Sprintf("chown $(id -u) %s", e.Path)
	case "type":
		return fmt.Sprintf("move %s aside; it should be a regular file", e.Path)
	}
	if e.Mode.IsDir() {
		return fmt.Sprintf("chmod 700 %s", e.Path)
	}
	return fmt.Sprintf("chmod 600 %s", e.Path)
}

// Is makes a *PermError match ErrInsecure.
func (e *PermError) Is(target error) bool { return target == ErrInsecure }

// Check applies the rule to a file or directory already stat'ed (with Lstat, or Stat of
// an open descriptor): not a symlink, a regular file or a directory, owned by the
// effective user, mode & 077 == 0. It returns a *PermError or nil.
func Check(path string, fi fs.FileInfo) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return &PermError{Path: path, Reason: "symlink"}
	case !fi.Mode().IsRegular() && !fi.IsDir():
		return &PermError{Path: path, Reason: "type"}
	}
	if uid, ok := owner(fi); ok && uid != os.Geteuid() {
		return &PermError{Path: path, Mode: fi.Mode(), Reason: "owner"}
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return &PermError{Path: path, Mode: fi.Mode(), Reason: "mode"}
	}
	return nil
}

// CheckDir applies the rule to a directory. The directory itself may be reached through a
// link (a user keeping the store on another disk); what it resolves to must pass. A
// missing directory is fs.ErrNotExist, a file in its place a *PermError.
func CheckDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &PermError{Path: dir, Reason: "type"}
	}
	return Check(dir, fi)
}

func owner(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// OpenFile opens path with flag, never following a symlink, creating it 0600 when flag
// has O_CREATE, and refuses it (closing it) unless it passes Check. A missing file is
// fs.ErrNotExist.
func OpenFile(path string, flag int) (*os.File, error) {
	// open(2) and os.NewFile rather than os.OpenFile: os.OpenFile offers every file to
	// the network poller (four fcntl and an epoll_ctl that fails for a regular file),
	// and a command opens a dozen files in a life of a few milliseconds.
	var fd int
	var err error
	for {
		fd, err = syscall.Open(path, flag|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		if err == syscall.ELOOP {
			return nil, &PermError{Path: path, Reason: "symlink"}
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if flag&os.O_CREATE != 0 {
		// The umask we inherit is our caller's (sudo passes an agent user's on to a
		// guarded store's owner side): 0777 would make the file we create 0000, which
		// Check accepts, being tight, and no later command could write it. A mode with
		// no bits for others is made 0600; a loose one is left for Check to report.
		var st syscall.Stat_t
		if syscall.Fstat(fd, &st) == nil && st.Mode&0o077 == 0 && st.Mode&0o600 != 0o600 {
			syscall.Fchmod(fd, 0o600)
		}
	}
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err == nil {
		err = Check(path, fi)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Open opens path for reading, as OpenFile.
func Open(path string) (*os.File, error) { return OpenFile(path, os.O_RDONLY) }

// Read reads a whole file that passes Check.
func Read(path string) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	// Sized once: io.ReadAll's doubling costs a fresh page fault per page in a process
	// that lives for milliseconds.
	var b bytes.Buffer
	b.Grow(int(fi.Size()) + bytes.MinRead)
	if _, err := b.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b.Bytes(), nil
}

// tempMarker names the temp files Stage creates: ".<name>.secrets-tmp-<random>". A file
// with this marker beside its target is ours, and may hold values.
const tempMarker = ".secrets-tmp-"

// Staged is a file written and fsynced under a temp name beside its target, not yet
// visible under its own name.
type Staged struct {
	tmp, target string
}

// Stage writes a new version of path under a temp name in the same directory (O_EXCL,
// 0600 whatever the umask), with write, and fsyncs it. Nothing is visible until Publish,
// whose rename replaces whatever is at path, a symlink included, and never follows it.
// On failure the temp file is removed and the error matches ErrWrite.
func Stage(path string, write func(io.Writer) error) (st *Staged, err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "." // CreateTemp would take "" to mean the system's temp directory
	}
	f, err := os.CreateTemp(dir, "."+base+tempMarker+"*")
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrWrite, path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("%w: %s: %w", ErrWrite, path, err)
		}
	}()
	// CreateTemp makes the file 0600 less the umask bits (a umask of 0277 leaves 0400);
	// set the mode explicitly so the file is exactly 0600.
	if err = f.Chmod(0o600); err != nil {
		return nil, err
	}
	crash.Point("stage.created", base)
	if err = write(f); err != nil {
		return nil, err
	}
	crash.Point("stage.written", base)
	if err = f.Sync(); err != nil {
		return nil, err
	}
	crash.Point("stage.synced", base)
	if err = f.Close(); err != nil {
		return nil, err
	}
	return &Staged{tmp: tmp, target: path}, nil
}

// Discard removes the temp file of a file that will not be published.
func (s *Staged) Discard() { os.Remove(s.tmp) }

// Publish renames staged files into place in order, then makes the renames durable with
// one fsync of dir. A rename that fails leaves that file and the ones after it as they
// were (their temp files removed); the error matches ErrWrite.
func Publish(dir string, files ...*Staged) error {
	for i, f := range files {
		crash.Point("publish.rename", filepath.Base(f.target))
		if err := os.Rename(f.tmp, f.target); err != nil {
			for _, rest := range files[i:] {
				rest.Discard()
			}
			return fmt.Errorf("%w: %s: %w", ErrWrite, f.target, err)
		}
	}
	crash.Point("publish.dirsync", "")
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("%w: %w", ErrWrite, err)
	}
	crash.Point("publish.done", "")
	return nil
}

// Replace atomically replaces path with data: Stage, then Publish. Any failure leaves
// the old file in place.
func Replace(path string, data []byte) error {
	return ReplaceWith(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// ReplaceWith is Replace with the content streamed by write.
func ReplaceWith(path string, write func(io.Writer) error) error {
	st, err := Stage(path, write)
	if err != nil {
		return err
	}
	return Publish(filepath.Dir(path), st)
}

// SyncDir makes a rename or create in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// RemoveTemps deletes the temp files that a Stage of path left when its process died
// between create and rename; name "" removes every one in dir. The caller must know that
// no live writer owns them (the store lock is held, or the file is one only secrets
// writes). It returns the first error other than a file already gone.
func RemoveTemps(dir, name string) error {
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		n := e.Name()
		if !isTemp(n, name) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// IsTemp reports whether a file name is one a Stage creates (or a release before this
// one did): a temp file, whatever its target.
func IsTemp(name string) bool { return isTemp(name, "") }

func isTemp(file, name string) bool {
	if name != "" {
		return strings.HasPrefix(file, "."+name+tempMarker)
	}
	// ".tmp-" is the marker of releases before this one, whose crashes may have left
	// such files in a store directory.
	return strings.HasPrefix(file, ".") && (strings.Contains(file, tempMarker) || strings.Contains(file, ".tmp-"))
}
