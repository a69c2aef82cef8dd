package audit

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/agent-secrets/secrets/internal/crash"
	"github.com/agent-secrets/secrets/internal/safefile"
)

// A log is a chain of segments. The current one is audit.jsonl; when it is rotated it is
// sealed: renamed to audit.jsonl.<first seq>-<last seq> (zero-padded, so names sort in
// order), made read-only and never written again, and the next line starts a new current
// segment that links to the sealed one's last line, seq going on. audit --verify follows
// the whole chain; replay needs only the current segment, because the state's snapshot is
// taken when a segment is sealed.

// Segment is a sealed segment: the lines First to Last, in the file at Path.
type Segment struct {
	Path        string
	First, Last uint64
}

func (l *Log) sealedName(first, last uint64) string {
	return fmt.Sprintf("%s.%012d-%012d", l.path, first, last)
}

// Sealed lists the sealed segments, oldest first. Files that only look like one (a name
// that does not parse) are not segments.
func (l *Log) Sealed() ([]Segment, error) {
	dir, base := filepath.Split(l.path)
	entries, err := os.ReadDir(filepath.Clean(dir))
	if err != nil {
		return nil, err
	}
	var out []Segment
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), base+".")
		if !ok {
			continue
		}
		a, b, ok := strings.Cut(rest, "-")
		if !ok || len(a) != 12 || len(b) != 12 {
			continue
		}
		first, err1 := strconv.ParseUint(a, 10, 64)
		last, err2 := strconv.ParseUint(b, 10, 64)
		if err1 == nil && err2 == nil && first <= last {
			out = append(out, Segment{Path: filepath.Join(dir, e.Name()), First: first, Last: last})
		}
	}
	slices.SortFunc(out, func(x, y Segment) int { return cmp.Compare(x.First, y.First) })
	return out, nil
}

// FirstSeq returns the seq of the current segment's first line, or 0 for an empty or
// missing segment. Only the start of the file is read.
func (l *Log) FirstSeq() (uint64, error) {
	f, err := l.openFile(os.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	line, _, err := readLine(bufio.NewReaderSize(f, 4096))
	if err != nil || line == nil {
		return 0, err
	}
	s, err := l.open(line)
	if err != nil {
		return 0, &TamperError{Seq: 1, Reason: err.Error()}
	}
	return s.seq, nil
}

// SealedName is the file name of the segment of lines first to last, once sealed.
func (l *Log) SealedName(first, last uint64) string {
	return filepath.Base(l.sealedName(first, last))
}

// Seal ends the current segment at head, which must be its last line: it is renamed to
// its sealed name and made read-only, and an empty current segment takes its place, all
// made durable. The next Append (after head) writes the new segment's first line. A crash
// on the way leaves a log that reads as before: a sealed segment not yet read-only, or
// no current segment, which the next append creates.
func (l *Log) Seal(head Head) (Segment, error) {
	first, err := l.FirstSeq()
	if err != nil {
		return Segment{}, err
	}
	if first == 0 {
		return Segment{}, fmt.Errorf("seal %s: the segment is empty", l.path)
	}
	sg := Segment{Path: l.sealedName(first, head.Seq), First: first, Last: head.Seq}
	if err := os.Rename(l.path, sg.Path); err != nil {
		return Segment{}, fmt.Errorf("seal %s: %w", l.path, err)
	}
	crash.Point("audit.seal", "")
	if err := os.Chmod(sg.Path, 0o400); err != nil {
		return Segment{}, fmt.Errorf("seal %s: %w", l.path, err)
	}
	f, err := safefile.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return Segment{}, fmt.Errorf("seal %s: %w", l.path, err)
	}
	f.Close()
	if err := safefile.SyncDir(filepath.Dir(l.path)); err != nil {
		return Segment{}, fmt.Errorf("seal %s: %w", l.path, err)
	}
	crash.Point("audit.sealed", "")
	return sg, nil
}

// ReadChain is Read for a position that may lie in a sealed segment (an older snapshot
// put back, or a crash between sealing a segment and the snapshot that follows): it reads
// the rest of that segment, every later one, then the current segment.
func (l *Log) ReadChain(from Position, fn func(Line) error) (Position, int, error) {
	end, torn, err := l.Read(from, fn)
	if !errors.Is(err, ErrNoPosition) {
		return end, torn, err
	}
	segs, serr := l.Sealed()
	if serr != nil {
		return from, 0, serr
	}
	at, found := from, false
	for _, sg := range segs {
		switch {
		case !found && from.Seq >= sg.First && from.Seq <= sg.Last:
			found = true
			p, err := l.readSealed(sg, from, fn)
			if err != nil {
				return at, 0, err
			}
			at = p
		case found:
			p, err := l.readSealed(sg, at, fn)
			if err != nil {
				return at, 0, err
			}
			at = p
		}
	}
	if !found {
		return from, 0, &TamperError{Seq: from.Seq, Reason: fmt.Sprintf("seq %d, which the state reflects, is in no segment of the log", from.Seq)}
	}
	at.Offset = 0
	return l.Read(at, fn)
}

// readSealed reads sealed segment sg: it checks every line and the chain from from on,
// calls fn for the lines after from, and returns the position after its last line with
// Offset 0, which Read takes as the start of the segment after it.
func (l *Log) readSealed(sg Segment, from Position, fn func(Line) error) (Position, error) {
	f, err := safefile.Open(sg.Path)
	if err != nil {
		return from, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var at Position
	inside := from.Seq >= sg.First // from lies in this segment: find it first
	for {
		line, torn, err := readLine(br)
		if err != nil {
			return at, err
		}
		if line == nil {
			if torn > 0 {
				return at, &TamperError{Seq: at.Seq + 1, Reason: "a sealed segment ends in a torn line"}
			}
			break
		}
		s, err := l.open(line)
		if err != nil {
			return at, &TamperError{Seq: at.Seq + 1, Reason: err.Error()}
		}
		switch {
		case at.Seq == 0 && inside:
			// The first line of a segment reached from a position inside it: its link to
			// the segment before is checked by audit --verify, not here.
		case at.Seq == 0 && (s.seq != from.Seq+1 || s.prev != from.Hash):
			return at, &TamperError{Seq: s.seq, Reason: "a sealed segment does not link to the one before it"}
		case at.Seq != 0 && (s.seq != at.Seq+1 || s.prev != at.Hash):
			return at, &TamperError{Seq: at.Seq + 1, Reason: "chain broken in a sealed segment"}
		}
		at = Position{Seq: s.seq, Hash: s.hash}
		if inside && s.seq == from.Seq {
			if s.hash != from.Hash {
				return at, &TamperError{Seq: s.seq, Reason: "line differs from the one the state reflects"}
			}
			inside = false
			continue
		}
		if !inside {
			if err := fn(Line{Seq: s.seq, Hash: s.hash, Raw: line, End: at}); err != nil {
				return at, err
			}
		}
	}
	if at.Seq != sg.Last {
		return at, &TamperError{Seq: at.Seq + 1, Reason: fmt.Sprintf("sealed segment %s ends at seq %d", filepath.Base(sg.Path), at.Seq)}
	}
	return at, nil
}

// CheckWindow checks the lines of the current segment that start in [cursor, cursor+size):
// each one's MAC, and its link to the line after it. It returns where the next window
// starts: at the last line it checked, so that consecutive windows share a line and every
// link is checked once per sweep, or 0 once it reached the end. Called with a cursor from
// each command's stamp, it sweeps the segment size/size commands at a time; it is how an
// edit that leaves the change time alone (a write through a shared mapping to a page that
// was already dirty) is found within a bounded number of commands.
func (l *Log) CheckWindow(cursor, size int64) (int64, error) {
	f, err := l.openFile(os.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if cursor < 0 || cursor >= fi.Size() {
		cursor = 0
	}
	start := cursor
	if start > 0 {
		// Start at the first line that begins at or after cursor.
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, start-1); err != nil {
			return 0, err
		}
		if b[0] != '\n' {
			br := bufio.NewReaderSize(io.NewSectionReader(f, start, fi.Size()-start), 4096)
			skip, err := br.ReadSlice('\n')
			if err != nil {
				return 0, nil // no whole line after cursor: start over next time
			}
			start += int64(len(skip))
		}
	}
	br := bufio.NewReaderSize(io.NewSectionReader(f, start, fi.Size()-start), bufferFor(min(fi.Size()-start, cursor+size-start+4<<10)))
	var prev sealed
	off, last := start, start
	for off < cursor+size {
		line, _, err := readLine(br)
		if err != nil {
			return 0, err
		}
		if line == nil {
			return 0, nil // the end: the next sweep starts over
		}
		s, err := l.open(line)
		if err != nil {
			return 0, &TamperError{Seq: prev.seq + 1, Reason: err.Error()}
		}
		if prev.seq != 0 && (s.seq != prev.seq+1 || s.prev != prev.hash) {
			return 0, &TamperError{Seq: prev.seq + 1, Reason: "chain broken"}
		}
		prev, last = s, off
		off += int64(len(line)) + 1
	}
	return last, nil
}

// Find returns the head of the line with seq: in the current segment or a sealed one.
// It reads the segment that holds seq from its start; it is for the rare check of an old
// head (the witness's), not for every command.
func (l *Log) Find(seq uint64) (Head, error) {
	segs, err := l.Sealed()
	if err != nil {
		return Head{}, err
	}
	path := l.path
	for _, sg := range segs {
		if seq >= sg.First && seq <= sg.Last {
			path = sg.Path
		}
	}
	f, err := safefile.Open(path)
	if err != nil {
		return Head{}, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	for {
		line, _, err := readLine(br)
		if err != nil {
			return Head{}, err
		}
		if line == nil {
			return Head{}, fmt.Errorf("seq %d is not in the log", seq)
		}
		if s, err := l.open(line); err == nil && s.seq == seq {
			return Head{Seq: s.seq, Hash: s.hash}, nil
		}
	}
}
