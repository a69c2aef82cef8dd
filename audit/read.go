package audit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Position is a point in the log: just after the line with Seq, whose hash is Hash, at
// byte Offset of the current segment. The zero Position is the start of an empty log. A
// snapshot of the state records the Position it reflects; replay reads on from there.
type Position struct {
	Seq    uint64 `json:"seq"`
	Hash   string `json:"hash"`
	Offset int64  `json:"offset"`
}

// Head returns the head the position is at.
func (p Position) Head() Head { return Head{Seq: p.Seq, Hash: p.Hash} }

// Line is one line Read found, checked: its MAC holds and it links to the line before.
type Line struct {
	Seq  uint64
	Hash string
	Raw  []byte   // without the newline; valid only during the callback
	End  Position // just after this line
}

// ErrNoPosition reports a position that is not in the current segment: the log was
// rotated since, or cut, or replaced. Read's caller looks for it in the chain (ReadChain).
var ErrNoPosition = errors.New("position not in the current segment")

// Read calls fn with each line after from, in order, to the end of the current segment,
// checking each line's MAC and its link to the line before it. from must be in the
// current segment: its Offset just after a line with from's seq and hash, or 0 for a
// segment whose first line links to from's head. It returns the position after the last
// complete line and the length of a torn last line (a crash mid-append, neither counted
// nor checked). A line that fails is a *TamperError; a position the segment does not hold
// is ErrNoPosition.
func (l *Log) Read(from Position, fn func(Line) error) (Position, int, error) {
	f, err := l.openFile(os.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) {
		if from.Seq == 0 {
			return from, 0, nil
		}
		// A seal that stopped before the new current segment was created leaves none:
		// the current segment is empty, after the last sealed one.
		if segs, serr := l.Sealed(); serr == nil && len(segs) > 0 && segs[len(segs)-1].Last >= from.Seq {
			if from.Offset == 0 && segs[len(segs)-1].Last == from.Seq {
				return from, 0, nil
			}
			return from, 0, ErrNoPosition
		}
		return from, 0, &TamperError{Seq: from.Seq, Reason: fmt.Sprintf("the log is missing but the state reflects seq %d", from.Seq)}
	}
	if err != nil {
		return from, 0, err
	}
	defer f.Close()
	return l.readFrom(f, from, fn)
}

func (l *Log) readFrom(f *os.File, from Position, fn func(Line) error) (Position, int, error) {
	fi, err := f.Stat()
	if err != nil {
		return from, 0, err
	}
	if from.Offset > fi.Size() {
		return from, 0, ErrNoPosition
	}
	if from.Offset > 0 {
		// The line that ends at Offset must be the one from names.
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, from.Offset-1); err != nil || b[0] != '\n' {
			return from, 0, ErrNoPosition
		}
		prev, err := newReverse(f, from.Offset-1).prev()
		if err != nil {
			return from, 0, ErrNoPosition
		}
		if s, err := l.open(prev); err != nil || s.seq != from.Seq || s.hash != from.Hash {
			return from, 0, ErrNoPosition
		}
	}
	br := bufio.NewReaderSize(io.NewSectionReader(f, from.Offset, fi.Size()-from.Offset), bufferFor(fi.Size()-from.Offset))
	at := from
	for {
		line, torn, err := readLine(br)
		if err != nil {
			return at, 0, err
		}
		if line == nil {
			return at, torn, nil
		}
		s, err := l.open(line)
		first := at.Offset == 0
		switch {
		case err != nil:
			return at, 0, &TamperError{Seq: at.Seq + 1, Reason: err.Error()}
		case s.seq != at.Seq+1:
			if first {
				return at, 0, ErrNoPosition // a segment that does not start after from
			}
			return at, 0, &TamperError{Seq: at.Seq + 1, Reason: fmt.Sprintf("expected seq %d, found seq %d", at.Seq+1, s.seq)}
		case s.prev == at.Hash, at.Hash == "" && s.prev == zeroHash, first && at.Seq == 0 && isReset(line):
		case first:
			return at, 0, ErrNoPosition
		default:
			return at, 0, &TamperError{Seq: s.seq, Reason: "prev does not match the previous line"}
		}
		end := Position{Seq: s.seq, Hash: s.hash, Offset: at.Offset + int64(len(line)) + 1}
		if err := fn(Line{Seq: s.seq, Hash: s.hash, Raw: line, End: end}); err != nil {
			return at, 0, err
		}
		at = end
	}
}

// maxLine bounds one line of the log, as Verify does.
const maxLine = 1 << 20

// readLine returns the next line without its newline, or nil and the length of what is
// left (a torn last line) at the end. A line over maxLine is a *TamperError.
// bufferFor sizes a read buffer for n bytes: a fresh 64 KiB costs a short-lived process
// sixteen page faults, where the tail it reads is most often a few KiB.
func bufferFor(n int64) int { return int(min(max(n+1, 4<<10), 64<<10)) }

func readLine(br *bufio.Reader) ([]byte, int, error) {
	raw, err := br.ReadSlice('\n')
	if err == nil {
		return raw[:len(raw)-1], 0, nil
	}
	var long []byte
	for err == bufio.ErrBufferFull {
		long = append(long, raw...)
		if len(long) > maxLine {
			return nil, 0, &TamperError{Reason: "line longer than 1 MiB"}
		}
		raw, err = br.ReadSlice('\n')
	}
	long = append(long, raw...)
	switch {
	case err == io.EOF:
		return nil, len(long), nil
	case err != nil:
		return nil, 0, err
	}
	return long[:len(long)-1], 0, nil
}
