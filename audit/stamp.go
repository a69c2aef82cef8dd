package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"syscall"
)

// A stamp says what the log file was when a session last left it: its device, inode, size
// and change time, and the head it ended at, under the log's key.
//
// Check reads only the end of the log, so on its own it cannot see a line edited further
// up. The stamp covers the rest without reading it: any write to the file, by any process,
// moves its change time, which only the kernel sets (utimes can forge mtime, not ctime), and
// a file put in its place has a new inode. So a log that still matches the stamp of the
// last session has not been written since, and one that does not is read in full (Verify)
// before anything trusts it. The stamp is only a shortcut: a lost or damaged one costs the
// next command that full read, never a missed edit.
const stampPrefix = "secrets-audit-stamp-v1"

// Stamp returns the stamp of the log file as it is now, ending at head.
func (l *Log) Stamp(head Head) ([]byte, error) {
	fi, err := os.Lstat(l.path)
	if err != nil {
		return nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("stat %s: no device and inode", l.path)
	}
	body := fmt.Sprintf("%s %d %d %d %d.%09d %d %s", stampPrefix, st.Dev, st.Ino, st.Size, ctime(st).Sec, ctime(st).Nsec, head.Seq, head.Hash)
	m := hmac.New(sha256.New, l.key)
	m.Write([]byte(body))
	return []byte(body + " " + macPrefix + hex.EncodeToString(m.Sum(nil)) + "\n"), nil
}

// Stamped reports whether stamp is the log file's stamp as it is now, ending at head: true
// means no process has written the file since the stamp was taken.
func (l *Log) Stamped(stamp []byte, head Head) bool {
	want, err := l.Stamp(head)
	return err == nil && hmac.Equal(want, stamp)
}
