package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
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
	m := hmac.New(sha256.New, l.keys.Current)
	m.Write([]byte(body))
	return []byte(body + " " + macPrefix + hex.EncodeToString(m.Sum(nil)) + "\n"), nil
}

// Stamped reports whether stamp is the log file's stamp as it is now, ending at head: true
// means no process has written the file since the stamp was taken.
func (l *Log) Stamped(stamp []byte, head Head) bool {
	want, err := l.Stamp(head)
	return err == nil && hmac.Equal(want, stamp)
}

// StampV2 is the stamp of a log that is the state's write-ahead log: besides the file's
// identity and the head, it holds where the next rolling check starts (CheckWindow). It
// is the only durable pin of the entries after the last snapshot, so it has a fixed
// length and is written in place at the start of the lock file, never truncated: a crash
// while it is written leaves the old stamp or the new one (a single sector), never
// neither, and a missing or altered stamp means someone removed or changed it.
type StampV2 struct {
	Dev, Ino  uint64
	Size      int64
	Sec, Nsec int64 // the change time
	Head      Head
	Cursor    int64
}

const stampV2Prefix = "secrets-stamp-v2"

// StampSize is the length of an encoded StampV2.
const StampSize = len(stampV2Prefix) + 7*21 + 1 + 71 + 1 + len(macPrefix) + 64 + 1

// Errors of DecodeStamp.
var (
	// ErrNoStamp reports a lock file that holds no stamp.
	ErrNoStamp = errors.New("no stamp")
	// ErrLegacyStamp reports the stamp of a release before the write-ahead log.
	ErrLegacyStamp = errors.New("stamp of an older release")
)

// StampNow returns the stamp of the log file as it is now, ending at head.
func (l *Log) StampNow(head Head, cursor int64) (StampV2, error) {
	fi, err := os.Lstat(l.path)
	if err != nil {
		return StampV2{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return StampV2{}, fmt.Errorf("stat %s: no device and inode", l.path)
	}
	ts := ctime(st)
	return StampV2{Dev: uint64(st.Dev), Ino: st.Ino, Size: st.Size, Sec: int64(ts.Sec), Nsec: int64(ts.Nsec), Head: head, Cursor: cursor}, nil
}

// Matches reports whether the log file is, as far as its metadata shows, the one s was
// taken of: same device, inode, size and change time. Any write through write(2), by any
// process, moves the change time.
func (l *Log) Matches(s StampV2) bool {
	now, err := l.StampNow(s.Head, s.Cursor)
	return err == nil && now.Dev == s.Dev && now.Ino == s.Ino && now.Size == s.Size && now.Sec == s.Sec && now.Nsec == s.Nsec
}

// Encode writes s in its fixed-length form, MAC'd with key.
func (s StampV2) Encode(key []byte) []byte {
	hash := s.Head.Hash
	if hash == "" {
		hash = strings.Repeat("-", 71)
	}
	body := fmt.Sprintf("%s %020d %020d %020d %020d %020d %020d %020d %s", stampV2Prefix, s.Dev, s.Ino, s.Size, s.Sec, s.Nsec, s.Head.Seq, s.Cursor, hash)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(body))
	return []byte(body + " " + macPrefix + hex.EncodeToString(m.Sum(nil)) + "\n")
}

// DecodeStamp reads a stamp that Encode wrote with key. It fails with ErrNoStamp for an
// empty note, ErrLegacyStamp for an older release's stamp, and another error for anything
// else that does not check out.
func DecodeStamp(b, key []byte) (StampV2, error) {
	switch {
	case len(bytes.TrimRight(b, "\x00")) == 0:
		return StampV2{}, ErrNoStamp
	case bytes.HasPrefix(b, []byte(stampPrefix)):
		return StampV2{}, ErrLegacyStamp
	case len(b) < StampSize || !bytes.HasPrefix(b, []byte(stampV2Prefix+" ")):
		return StampV2{}, errors.New("malformed stamp")
	}
	b = b[:StampSize]
	i := bytes.LastIndex(b, []byte(" "+macPrefix))
	if i < 0 {
		return StampV2{}, errors.New("malformed stamp")
	}
	want, err := hex.DecodeString(string(bytes.TrimSuffix(b[i+1+len(macPrefix):], []byte("\n"))))
	m := hmac.New(sha256.New, key)
	m.Write(b[:i])
	if err != nil || !hmac.Equal(m.Sum(nil), want) {
		return StampV2{}, errors.New("stamp mac mismatch")
	}
	f := strings.Fields(string(b[:i]))
	if len(f) != 9 {
		return StampV2{}, errors.New("malformed stamp")
	}
	var n [7]uint64
	for j := range n {
		if n[j], err = strconv.ParseUint(f[1+j], 10, 64); err != nil {
			return StampV2{}, errors.New("malformed stamp")
		}
	}
	s := StampV2{Dev: n[0], Ino: n[1], Size: int64(n[2]), Sec: int64(n[3]), Nsec: int64(n[4]), Head: Head{Seq: n[5]}, Cursor: int64(n[6])}
	if f[8] != strings.Repeat("-", 71) {
		s.Head.Hash = f[8]
	}
	return s, nil
}
