package audit

import (
	"bytes"
	"io"
)

// reverse yields the lines of a file from the last to the first, reading backwards in
// growing chunks, so reading the end of a large log costs what the end holds.
type reverse struct {
	r     io.ReaderAt
	off   int64  // file offset of buf[0]
	buf   []byte // the unread region that ends the file's unread part
	chunk int64
}

func newReverse(r io.ReaderAt, size int64) *reverse {
	return &reverse{r: r, off: size, chunk: 16 << 10}
}

// fill prepends the next chunk before buf. It returns io.EOF at the start of the file.
func (r *reverse) fill() error {
	if r.off == 0 {
		return io.EOF
	}
	n := min(r.chunk, r.off)
	nb := make([]byte, int(n)+len(r.buf))
	if _, err := r.r.ReadAt(nb[:n], r.off-n); err != nil {
		return err
	}
	copy(nb[n:], r.buf)
	r.off -= n
	r.buf = nb
	r.chunk = min(r.chunk*2, 4<<20)
	return nil
}

// tornTail consumes what follows the last newline (a line cut short by a crash) and
// returns its length, or 0 when the file ends with a newline or is empty. After it, the
// next prev returns the last complete line.
func (r *reverse) tornTail() (int, error) {
	if err := r.fill(); err == io.EOF {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	for {
		if i := bytes.LastIndexByte(r.buf, '\n'); i >= 0 {
			torn := len(r.buf) - i - 1
			r.buf = r.buf[:i]
			return torn, nil
		}
		if err := r.fill(); err == io.EOF {
			torn := len(r.buf)
			r.buf = nil
			return torn, nil
		} else if err != nil {
			return 0, err
		}
	}
}

// prev returns the line before the ones already returned, without its newline, or io.EOF.
// tornTail must have been called first. The slice stays valid after later calls.
func (r *reverse) prev() ([]byte, error) {
	for {
		if i := bytes.LastIndexByte(r.buf, '\n'); i >= 0 {
			line := r.buf[i+1:]
			r.buf = r.buf[:i]
			return line, nil
		}
		if err := r.fill(); err == io.EOF {
			if r.buf == nil {
				return nil, io.EOF
			}
			line := r.buf
			r.buf = nil
			return line, nil
		} else if err != nil {
			return nil, err
		}
	}
}
