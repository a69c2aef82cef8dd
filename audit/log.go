package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/agent-secrets/secrets/internal/crash"
	"github.com/agent-secrets/secrets/internal/safefile"
)

// Log is one audit log: the current segment audit.jsonl and the sealed segments before
// it (segment.go). It holds no state between calls beyond its configuration; every method
// expects the caller to hold the store lock.
type Log struct {
	path string
	keys Keys
	now  func() time.Time
}

// New returns the log whose current segment is path, MAC'd with keys. now stamps entries
// and names backups.
func New(path string, keys Keys, now func() time.Time) *Log {
	return &Log{path: path, keys: keys, now: now}
}

// Path returns the log file's path.
func (l *Log) Path() string { return l.path }

// openFile opens the log under the rule of every private file (safefile): no symlink, a
// regular file, the user's own, closed to group and others. A refusal is a
// *safefile.PermError, so a loose mode reads as insecure_permissions with its chmod fix,
// as for every other store file.
func (l *Log) openFile(flag int) (*os.File, error) { return safefile.OpenFile(l.path, flag) }

// Batch is entries sealed by Prepare, ready to be written with one write and one fsync.
type Batch struct {
	log  *Log
	data []byte
	// End is the size of the current segment once Write has appended the batch: the
	// Offset of the Position after its last line.
	End int64
}

// Prepare seals entries after head and returns them with the head they will make. Seq,
// Prev and (when zero) TS are set here. Nothing is written: the caller can pin the new
// head while Write makes the entries durable. A head with Seq 0 and a Hash starts a log
// whose first prev is that hash (used by Reset to link to the log it replaced).
func (l *Log) Prepare(head Head, entries ...Entry) (*Batch, Head, error) {
	var buf bytes.Buffer
	last := head.Seq + uint64(len(entries))
	for i := range entries {
		e := &entries[i]
		e.Seq = head.Seq + 1
		e.Txn = last
		e.Prev = head.Hash
		if e.Prev == "" {
			e.Prev = zeroHash
		}
		if e.TS.IsZero() {
			e.TS = l.now()
		}
		e.TS = e.TS.UTC()
		line, err := seal(l.keys.For(e.Seq), e)
		if err != nil {
			return nil, head, fmt.Errorf("%w: encode %s: %v", ErrFailed, e.Event, err)
		}
		head = Head{Seq: e.Seq, Hash: lineHash(line)}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	return &Batch{log: l, data: buf.Bytes()}, head, nil
}

// Len returns how many bytes Write will append.
func (b *Batch) Len() int64 { return int64(len(b.data)) }

// Write appends the batch with one write and one fsync. On any failure the file is cut
// back to its old size, so a failed append leaves no partial line, and the error matches
// ErrFailed. An empty batch writes nothing.
func (b *Batch) Write() error {
	if len(b.data) == 0 {
		if fi, err := os.Lstat(b.log.path); err == nil {
			b.End = fi.Size()
		}
		return nil
	}
	f, err := b.log.openFile(os.O_WRONLY | os.O_APPEND)
	created := false
	if errors.Is(err, fs.ErrNotExist) {
		// A new segment: its directory entry must be as durable as its first line.
		f, err = b.log.openFile(os.O_WRONLY | os.O_APPEND | os.O_CREATE | os.O_EXCL)
		created = true
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrFailed, err) // a *safefile.PermError stays one
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrFailed, err)
	}
	crash.Point("audit.write", "")
	if crash.Torn(f, b.data) { // a test build can stop halfway through the line
		return nil
	}
	if _, err := f.Write(b.data); err != nil {
		f.Truncate(fi.Size())
		return fmt.Errorf("%w: %v", ErrFailed, err) // err names the file
	}
	crash.Point("audit.written", "")
	if err := f.Sync(); err != nil {
		f.Truncate(fi.Size())
		return fmt.Errorf("%w: %v", ErrFailed, err)
	}
	if created {
		if err := safefile.SyncDir(filepath.Dir(b.log.path)); err != nil {
			return fmt.Errorf("%w: %v", ErrFailed, err)
		}
	}
	crash.Point("audit.synced", "")
	b.End = fi.Size() + int64(len(b.data))
	return nil
}

// Append is Prepare followed by Write: it returns the new head once the entries are durable.
func (l *Log) Append(head Head, entries ...Entry) (Head, error) {
	b, next, err := l.Prepare(head, entries...)
	if err != nil {
		return head, err
	}
	if err := b.Write(); err != nil {
		return head, err
	}
	return next, nil
}

// Repair describes a torn last line that CutTorn cut off.
type Repair struct {
	Backup  string // copy of the log as found, torn line included
	Dropped int    // bytes cut
}

// Check confirms, reading only from the end of the file, that the log still ends at or
// after pinned and that the lines after pinned (left by a command that crashed before it
// could pin them) chain onto it. It returns the log's real head and the length of a torn
// last line (what a crash mid-append leaves), which it does not count as tampering and
// does not remove: CutTorn does, for a caller that will append. Lines cut, a last line
// edited or forged, or a chain that does not reach pinned are a *TamperError. Check
// changes nothing.
func (l *Log) Check(pinned Head) (Head, int, error) {
	f, err := l.openFile(os.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) {
		if pinned.Seq == 0 {
			return Head{}, 0, nil
		}
		return Head{}, 0, &TamperError{Seq: 1, Reason: fmt.Sprintf("the log is missing but the pinned head is seq %d", pinned.Seq)}
	}
	if err != nil {
		return Head{}, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Head{}, 0, err
	}
	r := newReverse(f, fi.Size())
	torn, err := r.tornTail()
	if err != nil {
		return Head{}, 0, err
	}
	head, err := l.walkBack(r, pinned)
	if err != nil {
		return Head{}, 0, err
	}
	return head, torn, nil
}

// CutTorn backs the whole log up (audit.jsonl.torn-TIME) and cuts the torn last line of
// torn bytes that Check found, both durably. The caller must record the Repair.
func (l *Log) CutTorn(torn int) (*Repair, error) {
	fi, err := os.Lstat(l.path)
	if err != nil {
		return nil, err
	}
	return l.CutAt(fi.Size() - int64(torn))
}

// CutAt backs the whole current segment up (audit.jsonl.torn-TIME) and cuts it at offset,
// both durably: for a torn last line, and for the lines of a batch a crash left
// incomplete, which never committed. The caller must record the Repair.
func (l *Log) CutAt(offset int64) (*Repair, error) {
	f, err := l.openFile(os.O_RDWR)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if offset < 0 || offset > fi.Size() {
		return nil, fmt.Errorf("cut %s at %d: out of range", l.path, offset)
	}
	backup := fmt.Sprintf("%s.torn-%s", l.path, l.now().UTC().Format("20060102T150405.000000000Z"))
	err = safefile.ReplaceWith(backup, func(w io.Writer) error {
		_, err := io.Copy(w, io.NewSectionReader(f, 0, fi.Size()))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("back up torn log: %w", err)
	}
	if err := f.Truncate(offset); err != nil {
		return nil, fmt.Errorf("cut torn line: %w", err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("cut torn line: %w", err)
	}
	return &Repair{Backup: backup, Dropped: int(fi.Size() - offset)}, nil
}

// walkBack reads lines from the end until it reaches the pinned seq, checking each
// line's MAC and its link to the line after it.
func (l *Log) walkBack(r *reverse, pinned Head) (Head, error) {
	var head Head
	var next sealed // the line after the current one, once there is one
	for {
		line, err := r.prev()
		if err == io.EOF {
			if next.seq == 0 && pinned.Seq == 0 {
				return head, nil // empty log, nothing pinned
			}
			if pinned.Seq == 0 && next.seq == 1 {
				return head, nil // a whole log written before anything was pinned
			}
			return Head{}, &TamperError{Seq: pinned.Seq, Reason: fmt.Sprintf("the pinned head seq %d is not in the log", pinned.Seq)}
		}
		if err != nil {
			return Head{}, err
		}
		s, err := l.open(line)
		if err != nil {
			// A crash leaves a torn line, never a complete one with a bad MAC: this line was
			// changed. Without a readable seq, name the one it should have.
			seq := next.seq - 1
			if next.seq == 0 {
				seq = pinned.Seq
			}
			return Head{}, &TamperError{Seq: seq, Reason: err.Error()}
		}
		if next.seq == 0 {
			head = Head{Seq: s.seq, Hash: s.hash}
		} else if s.seq != next.seq-1 || s.hash != next.prev {
			return Head{}, &TamperError{Seq: next.seq - 1, Reason: "chain broken"}
		}
		switch {
		case s.seq == pinned.Seq && s.hash == pinned.Hash:
			return head, nil
		case s.seq <= pinned.Seq:
			if next.seq == 0 && s.seq < pinned.Seq {
				return Head{}, &TamperError{Seq: s.seq + 1, Reason: fmt.Sprintf("the log ends at seq %d but the pinned head is seq %d: lines were cut", s.seq, pinned.Seq)}
			}
			return Head{}, &TamperError{Seq: s.seq, Reason: "line differs from the pinned head"}
		}
		next = s
	}
}

// Filter selects entries for Tail. Zero fields match everything.
type Filter struct {
	Secret   string
	ClientID string
	Event    string
	Since    time.Time
	// UID, when set, keeps the entries of that OS user only, as a guarded store's agent
	// user may read them: those it made, less any about a lease or a request of another's
	// (its revoke --all ends everyone's) and the canary's trip (which names the canary).
	UID *int
}

func (f Filter) match(e *Entry) bool {
	return (f.Secret == "" || e.Secret == f.Secret) &&
		(f.ClientID == "" || e.ClientID == f.ClientID) &&
		(f.Event == "" || e.Event == f.Event) &&
		(f.UID == nil || e.Actor.UID == *f.UID && e.Event != "canary_tripped" && (e.Holder == *f.UID || e.Holder == 0 && e.LeaseID == ""))
}

// Tail returns up to n of the last entries that match f, oldest first. It reads from the
// end of the current segment, then of each sealed one back, so its cost follows n (and how
// rare the matches are), not the log's size. A torn last line is skipped. Entries are
// returned as written; Verify checks them.
func (l *Log) Tail(n int, f Filter) ([]Entry, error) {
	paths := []string{l.path}
	if segs, err := l.Sealed(); err == nil {
		for i := len(segs) - 1; i >= 0; i-- {
			paths = append(paths, segs[i].Path)
		}
	}
	out := []Entry{}
	for _, p := range paths {
		more, done, err := tailFile(p, n-len(out), f)
		if err != nil {
			return nil, err
		}
		out = append(more, out...)
		if done || len(out) >= n {
			break
		}
	}
	return out, nil
}

// tailFile is Tail for one segment: up to n entries, oldest first, and whether an entry
// older than f.Since was met (nothing further back can match).
func tailFile(path string, n int, f Filter) ([]Entry, bool, error) {
	file, err := safefile.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return []Entry{}, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return nil, false, err
	}
	r := newReverse(file, fi.Size())
	if _, err := r.tornTail(); err != nil {
		return nil, false, err
	}
	out := []Entry{}
	done := false
	for len(out) < n {
		line, err := r.prev()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, false, err
		}
		var e Entry
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, false, &TamperError{Seq: 0, Reason: "unreadable line: " + err.Error()}
		}
		if !f.Since.IsZero() && e.TS.Before(f.Since) {
			done = true
			break
		}
		if f.match(&e) {
			out = append(out, e)
		}
	}
	slices.Reverse(out)
	return out, done, nil
}

// Report is the outcome of a full verification.
type Report struct {
	Entries uint64 `json:"entries"`
	Head    Head   `json:"head"`
	Torn    int    `json:"-"` // bytes of a torn last line after Head (a crash), not counted
	// Sealed is the hash of each sealed segment's last line, by file name, for the caller's
	// pins.
	Sealed map[string]string `json:"-"`
}

// Verify reads the whole log and checks every MAC, every seq and every chain link, and
// that the log reaches pinned. The first problem is returned as a *TamperError whose Seq
// is the first seq that is not as written. A torn last line is not a problem: it is
// reported in Report.Torn, as Check reports it.
func (l *Log) Verify(pinned Head) (Report, error) {
	segs, err := l.Sealed()
	if err != nil {
		return Report{}, err
	}
	var rep Report
	var pinnedSeen bool
	for _, sg := range segs {
		f, err := safefile.Open(sg.Path)
		if err != nil {
			return rep, &TamperError{Seq: sg.First, Reason: fmt.Sprintf("sealed segment %s: %v", filepath.Base(sg.Path), err)}
		}
		if rep.Head.Seq+1 != sg.First {
			f.Close()
			return rep, &TamperError{Seq: rep.Head.Seq + 1, Reason: fmt.Sprintf("no segment holds seq %d", rep.Head.Seq+1)}
		}
		torn, err := l.scan(f, &rep, pinned, &pinnedSeen)
		f.Close()
		if rep.Sealed == nil {
			rep.Sealed = map[string]string{}
		}
		rep.Sealed[filepath.Base(sg.Path)] = rep.Head.Hash
		switch {
		case err != nil:
			return rep, err
		case torn > 0 || rep.Head.Seq != sg.Last:
			return rep, &TamperError{Seq: rep.Head.Seq + 1, Reason: fmt.Sprintf("sealed segment %s ends at seq %d", filepath.Base(sg.Path), rep.Head.Seq)}
		}
	}
	f, err := l.openFile(os.O_RDONLY)
	switch {
	case errors.Is(err, fs.ErrNotExist) && (pinned.Seq == 0 || len(segs) > 0):
		// No current segment: a new store, or one whose segment was sealed by a command
		// that stopped before the next line started a new one.
	case err != nil && errors.Is(err, fs.ErrNotExist):
		return rep, &TamperError{Seq: 1, Reason: "the log is missing"}
	case err != nil:
		return rep, err
	default:
		rep.Torn, err = l.scan(f, &rep, pinned, &pinnedSeen)
		f.Close()
		if err != nil {
			return rep, err
		}
	}
	if pinned.Seq > rep.Head.Seq {
		return rep, &TamperError{Seq: rep.Head.Seq + 1, Reason: fmt.Sprintf("the log ends at seq %d but the pinned head is seq %d: lines were cut", rep.Head.Seq, pinned.Seq)}
	}
	if pinned.Seq > 0 && !pinnedSeen {
		return rep, &TamperError{Seq: pinned.Seq, Reason: "line differs from the pinned head"}
	}
	return rep, nil
}

// scan checks every line of one segment file after rep's head: MAC, seq, link. The
// chain's first line must start a log (zero prev, or a reset's link to the log it
// replaced). It returns the length of a torn last line.
func (l *Log) scan(f io.Reader, rep *Report, pinned Head, pinnedSeen *bool) (int, error) {
	br := bufio.NewReaderSize(f, 1<<20)
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return 0, &TamperError{Seq: rep.Head.Seq + 1, Reason: "line longer than 1 MiB"}
		}
		if err == io.EOF {
			return len(line), nil // what a crash mid-append leaves; CutTorn removes it
		}
		if err != nil {
			return 0, err
		}
		line = line[:len(line)-1]
		want := rep.Head.Seq + 1
		s, err := l.open(line)
		if err != nil {
			return 0, &TamperError{Seq: want, Reason: err.Error()}
		}
		if s.seq != want {
			return 0, &TamperError{Seq: want, Reason: fmt.Sprintf("expected seq %d, found seq %d", want, s.seq)}
		}
		if want == 1 {
			if s.prev != zeroHash && !isReset(line) {
				return 0, &TamperError{Seq: 1, Reason: "first line does not start a log"}
			}
		} else if s.prev != rep.Head.Hash {
			return 0, &TamperError{Seq: want, Reason: "prev does not match the previous line"}
		}
		rep.Head = Head{Seq: s.seq, Hash: s.hash}
		rep.Entries++
		if rep.Head == pinned {
			*pinnedSeen = true
		}
	}
}

// EventReset is the event of the first entry of a log started by Reset.
const EventReset = "audit_reset"

func isReset(line []byte) bool {
	var e struct {
		Event string `json:"event"`
	}
	return json.Unmarshal(line, &e) == nil && e.Event == EventReset
}

// Reset moves the log aside (it is kept, never deleted): the current segment to
// audit.jsonl.tampered-TIME, and each sealed segment to its own name with the same
// suffix, since a new chain starts. It returns the current segment's new path (empty if
// there was none), the sealed segments' new paths, and a head to pass to Append for the
// new log's first entry, whose prev is the current segment's sha256 so that the break is
// linked to what it replaced.
func (l *Log) Reset() (moved string, sealed []string, start Head, err error) {
	f, err := l.openFile(os.O_RDONLY)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", nil, Head{}, err
	}
	suffix := ".tampered-" + l.now().UTC().Format("20060102T150405.000000000Z")
	h := sha256.New()
	if f != nil {
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", nil, Head{}, err
		}
		moved = l.path + suffix
		if err := os.Rename(l.path, moved); err != nil {
			return "", nil, Head{}, err
		}
	}
	segs, err := l.Sealed()
	if err != nil {
		return moved, nil, Head{}, err
	}
	for _, sg := range segs {
		if err := os.Rename(sg.Path, sg.Path+suffix); err != nil {
			return moved, sealed, Head{}, err
		}
		sealed = append(sealed, sg.Path+suffix)
	}
	if err := safefile.SyncDir(filepath.Dir(l.path)); err != nil {
		return moved, sealed, Head{}, err
	}
	return moved, sealed, Head{Hash: hashPrefix + hex.EncodeToString(h.Sum(nil))}, nil
}
