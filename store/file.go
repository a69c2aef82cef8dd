package store

import (
	"crypto/rand"
	"encoding/hex"
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

// ErrWrite wraps every failure to write a store file (full disk, I/O error, failed fsync).
// The file that was being replaced is left as it was.
var ErrWrite = errors.New("write failed")

const tempMarker = ".tmp-"

// openChecked opens path for reading without following a symlink and refuses a file that
// is not regular, is owned by another user, or is accessible by group or others.
func openChecked(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, &PermError{Path: path, Reason: "symlink"}
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := checkInfo(path, fi); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkInfo applies the ownership and mode rules to an opened file or a directory.
func checkInfo(path string, fi fs.FileInfo) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return &PermError{Path: path, Reason: "symlink"}
	case !fi.Mode().IsRegular() && !fi.IsDir():
		return &PermError{Path: path, Reason: "type"}
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return &PermError{Path: path, Mode: fi.Mode(), Reason: "owner"}
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return &PermError{Path: path, Mode: fi.Mode(), Reason: "mode"}
	}
	return nil
}

// readChecked reads a whole store file after openChecked's checks.
func readChecked(path string) ([]byte, error) {
	f, err := openChecked(path, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

// staged is a store file written and fsynced under a temp name in the store directory,
// not yet visible under its own name.
type staged struct {
	tmp, target string
}

// stage writes data to a temp file beside dir/name (O_EXCL, 0600 whatever the umask) and
// fsyncs it. Nothing is visible until publish; on failure the temp file is removed.
func stage(dir, name string, data []byte) (st *staged, err error) {
	target := filepath.Join(dir, name)
	if fi, err := os.Lstat(target); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return nil, &PermError{Path: target, Reason: "symlink"}
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	tmp := filepath.Join(dir, "."+name+tempMarker+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: create %s: %w", ErrWrite, tmp, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("%w: %s: %w", ErrWrite, target, err)
		}
	}()
	// The umask may have cleared bits of 0600 (e.g. 0277); set the mode explicitly.
	if err = f.Chmod(0o600); err != nil {
		return nil, err
	}
	crash.Point("stage.created", name)
	if _, err = f.Write(data); err != nil {
		return nil, err
	}
	crash.Point("stage.written", name)
	if err = f.Sync(); err != nil {
		return nil, err
	}
	crash.Point("stage.synced", name)
	if err = f.Close(); err != nil {
		return nil, err
	}
	return &staged{tmp: tmp, target: target}, nil
}

func (s *staged) discard() { os.Remove(s.tmp) }

// publish renames staged files into place in order, then makes the renames durable with
// one fsync of dir. A rename that fails leaves that file and the ones after it as they were.
func publish(dir string, files ...*staged) error {
	for i, f := range files {
		crash.Point("publish.rename", f.target)
		if err := os.Rename(f.tmp, f.target); err != nil {
			for _, rest := range files[i:] {
				rest.discard()
			}
			return fmt.Errorf("%w: %s: %w", ErrWrite, f.target, err)
		}
	}
	crash.Point("publish.dirsync", "")
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("%w: %w", ErrWrite, err)
	}
	crash.Point("publish.done", "")
	return nil
}

// writeAtomic replaces dir/name with data: temp file, write, fsync, rename, fsync the
// directory. Any failure leaves the old file in place.
func writeAtomic(dir, name string, data []byte) error {
	st, err := stage(dir, name, data)
	if err != nil {
		return err
	}
	return publish(dir, st)
}

// syncDir makes a rename or create in dir durable.
func syncDir(dir string) error {
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

// removeTemps deletes temp files left by a writer that died between create and rename.
// It must run under the store lock, so no live writer owns them.
func removeTemps(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, ".") && strings.Contains(n, tempMarker) {
			if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}
