// Package redact is the streaming redactor that secrets exec puts between a child's
// output and ours. It replaces every leased value, and the common encodings of it, with
// [REDACTED:NAME], correctly when a value is split across writes, and holds back no more
// than a tail that could still be the start of one, so output (an interactive prompt
// without a newline included) appears as soon as it is written.
package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/url"
	"sort"
	"strings"
)

// MinLen is the shortest value that is redacted. Shorter values would match ordinary
// output far too often; New reports them so the caller can warn.
const MinLen = 6

// Secret is a value to hide and the name to show in its place.
type Secret struct {
	Name  string
	Value []byte
}

type pattern struct {
	text []byte
	repl []byte
}

// Writer redacts what is written to it and passes the rest to the underlying writer.
// It is not safe for concurrent use; give each stream its own Writer.
type Writer struct {
	w        io.Writer
	patterns []pattern
	pairs    [1 << 10]uint64    // bitset of every pattern's first two bytes: the cheap first test
	byKey    map[uint64][]int32 // first MinLen bytes -> patterns, longest first
	prefixes map[string]bool    // every proper prefix shorter than MinLen of a pattern
	pending  []byte             // a tail that may still become a match
	out      []byte
}

// New returns a Writer to w that hides every secret of at least MinLen bytes, and the
// names of those too short to hide.
func New(w io.Writer, secrets []Secret) (*Writer, []string) {
	r := &Writer{w: w, byKey: map[uint64][]int32{}, prefixes: map[string]bool{}}
	seen := map[string]bool{}
	var short []string
	for _, s := range secrets {
		if len(s.Value) < MinLen {
			short = append(short, s.Name)
			continue
		}
		repl := []byte("[REDACTED:" + s.Name + "]")
		for _, f := range Forms(s.Value) {
			if len(f) >= MinLen && !seen[string(f)] {
				seen[string(f)] = true
				r.patterns = append(r.patterns, pattern{text: f, repl: repl})
			}
		}
	}
	// Longest first, so that at one position the longest match wins.
	sort.SliceStable(r.patterns, func(i, j int) bool { return len(r.patterns[i].text) > len(r.patterns[j].text) })
	for i, p := range r.patterns {
		pair := uint16(p.text[0]) | uint16(p.text[1])<<8
		r.pairs[pair/64] |= 1 << (pair % 64)
		k := key(p.text)
		r.byKey[k] = append(r.byKey[k], int32(i))
		for n := 1; n < MinLen; n++ {
			r.prefixes[string(p.text[:n])] = true
		}
	}
	return r, short
}

// Forms returns the byte strings that reveal value: itself, its base64 (standard and
// URL alphabets, with and without padding), hex (both cases), URL-encoded and JSON-escaped
// forms, and each line of a multi-line value. The caller drops those shorter than MinLen.
func Forms(value []byte) [][]byte {
	v := string(value)
	forms := []string{
		v,
		base64.StdEncoding.EncodeToString(value), base64.RawStdEncoding.EncodeToString(value),
		base64.URLEncoding.EncodeToString(value), base64.RawURLEncoding.EncodeToString(value),
		hex.EncodeToString(value), strings.ToUpper(hex.EncodeToString(value)),
		url.QueryEscape(v), url.PathEscape(v),
	}
	for _, html := range []bool{true, false} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		if enc.Encode(v) == nil {
			forms = append(forms, strings.TrimSuffix(strings.TrimSuffix(b.String(), "\n"), `"`)[1:])
		}
	}
	if strings.Contains(v, "\n") {
		for _, line := range strings.Split(v, "\n") {
			forms = append(forms, strings.TrimSuffix(line, "\r"))
		}
	}
	out := make([][]byte, 0, len(forms))
	for _, f := range forms {
		out = append(out, []byte(f))
	}
	return out
}

// key is the first MinLen bytes of b as a number.
func key(b []byte) uint64 {
	var k [8]byte
	copy(k[:], b[:MinLen])
	return binary.LittleEndian.Uint64(k[:])
}

// Write redacts p and writes what is certain; it always reports len(p) unless the
// underlying writer fails.
func (r *Writer) Write(p []byte) (int, error) {
	if len(r.patterns) == 0 {
		return r.w.Write(p)
	}
	buf := p
	if len(r.pending) > 0 {
		buf = append(r.pending, p...)
	}
	held, err := r.scan(buf, false)
	r.pending = append(r.pending[:0:0], held...)
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close writes out what was held back: at the end of the stream it can no longer become
// a match. It does not close the underlying writer.
func (r *Writer) Close() error {
	if len(r.pending) == 0 {
		return nil
	}
	_, err := r.scan(r.pending, true)
	r.pending = nil
	return err
}

// scan writes buf with matches replaced and returns the tail it holds back: from the
// first position where a pattern might start but the data ends too soon to tell.
func (r *Writer) scan(buf []byte, eof bool) ([]byte, error) {
	out := r.out[:0]
	start := 0
	n := len(buf)
	for i := 0; i < n; {
		// The hot loop: skip positions whose first two bytes begin no pattern.
		for i+8 <= n {
			pair := binary.LittleEndian.Uint16(buf[i:])
			if r.pairs[pair/64]&(1<<(pair%64)) != 0 {
				break
			}
			i++
		}
		if i >= n {
			break
		}
		if i+MinLen > n {
			// Too few bytes left for a key: hold them if they begin some pattern.
			if !eof && r.prefixes[string(buf[i:])] {
				out = append(out, buf[start:i]...)
				r.out = out
				_, err := r.w.Write(out)
				return buf[i:], err
			}
			i++
			continue
		}
		cands := r.byKey[key(buf[i:])]
		if len(cands) == 0 {
			i++
			continue
		}
		matched, partial := -1, false
		for _, idx := range cands {
			t := r.patterns[idx].text
			if len(t) <= n-i {
				if bytes.Equal(buf[i:i+len(t)], t) {
					matched = int(idx)
					break // longest first
				}
			} else if !eof && bytes.Equal(buf[i:], t[:n-i]) {
				partial = true // a longer pattern may still complete here
			}
		}
		if partial { // wait: a longer pattern may still complete at i
			out = append(out, buf[start:i]...)
			r.out = out
			_, err := r.w.Write(out)
			return buf[i:], err
		}
		if matched >= 0 {
			p := r.patterns[matched]
			out = append(out, buf[start:i]...)
			out = append(out, p.repl...)
			i += len(p.text)
			start = i
			continue
		}
		i++
	}
	out = append(out, buf[start:]...)
	r.out = out
	if len(out) == 0 {
		return nil, nil
	}
	_, err := r.w.Write(out)
	return nil, err
}
