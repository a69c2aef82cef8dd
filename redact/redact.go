// Package redact is the streaming redactor that secrets exec puts between a child's
// output and ours. It replaces every leased value, and the common encodings of it, with
// [REDACTED:NAME], correctly when a value is split across writes, and holds back no more
// than a tail that could still be the start of one, so output (an interactive prompt
// without a newline included) appears as soon as it is written.
//
// The encodings are those the usual tools print without being asked to hide anything:
// base64 (coreutils, openssl, any line width, at each of the three offsets a value can
// have inside a longer encoded stream), hex (xxd -p, any line width), percent-encoding
// and JSON string escapes as the common libraries write them. A deliberate transform
// (rot13, reversal, a hash, encryption, one character per line) is not recognised.
package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// MinWrap is the narrowest line a wrapped form is matched across. Dumps wrap at 60 (xxd
// -p), 64 (openssl, PEM) or 76 (coreutils, MIME); a narrower limit would take the end of
// an ordinary line ("result = 4") for the start of one and hold it back.
const MinWrap = 16

// MinLen is the shortest value that is redacted. Shorter values would match ordinary
// output far too often; New reports them so the caller can warn.
const MinLen = 6

// Secret is a value to hide and the name to show in its place.
type Secret struct {
	Name  string
	Value []byte
	// Shown, when set, replaces the value itself instead of [REDACTED:NAME] (its other
	// forms are still shown as that): the injection proxy shows a child its placeholder.
	Shown []byte
}

// Form is one byte string that reveals a value. A Wrapped form is matched also when a
// line break ("\n" or "\r\n") stands between two of its bytes, as base64 and hex dumps
// wrap their lines at a width that has nothing to do with where the value begins: a break
// that ends a run of at least MinWrap encoding characters (the line of a dump), counted
// from the line's last other character, which may come before the value.
type Form struct {
	Text    []byte
	Wrapped bool
}

type pattern struct {
	text []byte
	repl []byte
	wrap bool
}

// Writer redacts what is written to it and passes the rest to the underlying writer.
// It is not safe for concurrent use; give each stream its own Writer.
type Writer struct {
	*Set
	w       io.Writer
	pending []byte // a tail that may still become a match
	back    []byte // the last MinWrap bytes of input before pending: a line's start
	out     []byte
}

// Set is the compiled patterns of some secrets, which any number of Writers share: a
// server that redacts many streams of the same values builds it once. It is read-only,
// and safe for concurrent use.
type Set struct {
	patterns []pattern          // longest first
	wrapped  bool               // some pattern is Wrapped
	pairs    [1 << 10]uint64    // bitset of the first two bytes a pattern can begin with: the cheap first test
	byKey    map[uint64][]int32 // first MinLen bytes (line breaks left out) -> patterns, longest first
	prefixes map[uint64]bool    // every proper prefix shorter than MinLen of a pattern (prefix)
	wrapPre  map[uint64]bool    // the same, of Wrapped patterns only
}

// New returns a Writer to w that hides every secret of at least MinLen bytes, and the
// names of those too short to hide.
func New(w io.Writer, secrets []Secret) (*Writer, []string) {
	s, short := Compile(secrets)
	return s.Writer(w), short
}

// Writer returns a new Writer to w that hides what s holds.
func (s *Set) Writer(w io.Writer) *Writer { return &Writer{Set: s, w: w} }

// Compile builds the Set of every secret of at least MinLen bytes, and returns the names
// of those too short to hide.
func Compile(secrets []Secret) (*Set, []string) {
	r := &Set{byKey: map[uint64][]int32{}, prefixes: map[uint64]bool{}, wrapPre: map[uint64]bool{}}
	seen := map[string]int{}
	var short []string
	for _, s := range secrets {
		if len(s.Value) < MinLen {
			short = append(short, s.Name)
			continue
		}
		repl := []byte("[REDACTED:" + s.Name + "]")
		for i, f := range Forms(s.Value) {
			if len(f.Text) < MinLen {
				continue
			}
			if i == 0 && s.Shown != nil {
				seen[string(f.Text)] = len(r.patterns)
				r.patterns = append(r.patterns, pattern{text: f.Text, repl: s.Shown})
				continue
			}
			if i, ok := seen[string(f.Text)]; ok {
				r.patterns[i].wrap = r.patterns[i].wrap || f.Wrapped
				continue
			}
			seen[string(f.Text)] = len(r.patterns)
			r.patterns = append(r.patterns, pattern{text: f.Text, repl: repl, wrap: f.Wrapped})
		}
	}
	// Longest first, so that at one position the longest match wins.
	slices.SortStableFunc(r.patterns, func(a, b pattern) int { return len(b.text) - len(a.text) })
	for i, p := range r.patterns {
		r.pair(p.text[0], p.text[1])
		if p.wrap {
			r.wrapped = true
			r.pair(p.text[0], '\n')
			r.pair(p.text[0], '\r')
		}
		k := key(p.text)
		r.byKey[k] = append(r.byKey[k], int32(i))
		for n := 1; n < MinLen; n++ {
			r.prefixes[prefix(p.text[:n])] = true
			if p.wrap {
				r.wrapPre[prefix(p.text[:n])] = true
			}
		}
	}
	return r, short
}

// Maybe reports whether s could hold a pattern of the set: false means it surely does
// not, and needs no Writer (a cheap test for short strings such as header values).
func (r *Set) Maybe(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		pair := uint16(s[i]) | uint16(s[i+1])<<8
		if r.pairs[pair/64]&(1<<(pair%64)) != 0 {
			return true
		}
	}
	return false
}

func (r *Set) pair(a, b byte) {
	pair := uint16(a) | uint16(b)<<8
	r.pairs[pair/64] |= 1 << (pair % 64)
}

// Forms returns the byte strings that reveal value, each once:
//   - the value itself, and each line of a multi-line value;
//   - base64, standard and URL-safe alphabets: the whole encoding with and without
//     padding, and for each of the three offsets at which the value can begin inside a
//     longer encoded stream, the characters the value alone decides (Wrapped);
//   - hex, lower and upper case (Wrapped);
//   - percent-encoding as url.QueryEscape, url.PathEscape, JavaScript's
//     encodeURIComponent and Python's quote (with and without "/" kept) write it, and
//     with only the bytes that must be escaped escaped, each with upper and lower case hex;
//   - JSON string escapes as Go writes them (with and without HTML escaping) and as
//     Python's json.dumps and most other encoders do (\uXXXX for every non-ASCII
//     character, lower and upper case hex, and not).
//
// The caller drops those shorter than MinLen.
func Forms(value []byte) []Form {
	v := string(value)
	var forms []Form
	plain := func(ss ...string) {
		for _, s := range ss {
			forms = append(forms, Form{Text: []byte(s)})
		}
	}
	wrapped := func(ss ...string) {
		for _, s := range ss {
			forms = append(forms, Form{Text: []byte(s), Wrapped: true})
		}
	}
	plain(v)
	if strings.Contains(v, "\n") {
		for _, line := range strings.Split(v, "\n") {
			plain(strings.TrimSuffix(line, "\r"))
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		wrapped(enc.EncodeToString(value), enc.WithPadding(base64.NoPadding).EncodeToString(value))
		wrapped(within(enc.WithPadding(base64.NoPadding), value)...)
	}
	h := hex.EncodeToString(value)
	wrapped(h, strings.ToUpper(h))
	if !strings.ContainsFunc(v, func(r rune) bool { return !unreserved(r) }) {
		return forms // no escaper changes it: each escaped form is v
	}
	for _, esc := range []func(string) string{
		url.QueryEscape, url.PathEscape,
		func(s string) string { return percent(s, "-_.!~*'()") },              // encodeURIComponent
		func(s string) string { return percent(s, "-_.~") },                   // Python quote(s, safe="")
		func(s string) string { return percent(s, "-_.~/") },                  // Python quote(s)
		func(s string) string { return percent(s, "!#$&'()*+,/:;=?@[]-_.~") }, // only what no URL may hold
	} {
		e := esc(v)
		plain(e, lowerEscapes(e, '%'))
	}
	for _, html := range []bool{true, false} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		if enc.Encode(v) == nil {
			plain(strings.TrimSuffix(strings.TrimSuffix(b.String(), "\n"), `"`)[1:])
		}
	}
	if utf8.ValidString(v) {
		ascii := jsonASCII(v, true)
		plain(ascii, upperEscapes(ascii), jsonASCII(v, false))
	}
	return forms
}

// unreserved reports a character that no percent or JSON escaper changes.
func unreserved(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.' || r == '~'
}

// within returns, for each offset (0, 1, 2) at which value can begin within a 3-byte
// group of a longer stream, the base64 characters whose bits all come from value:
// whatever comes before and after it, they are in the encoding of the whole.
func within(enc *base64.Encoding, value []byte) []string {
	var out []string
	for off := range 3 {
		s := enc.EncodeToString(append(make([]byte, off), value...))
		first := (8*off + 5) / 6           // the first character with no bit before value
		last := 8 * (off + len(value)) / 6 // the characters wholly inside value end here
		if last > first {
			out = append(out, s[first:last])
		}
	}
	return out
}

// percent escapes every byte of s but ASCII letters, digits and those in keep, as
// %XX with upper case hex.
func percent(s, keep string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c < 0x80 && strings.IndexByte(keep, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteString(strings.ToUpper(hex.EncodeToString([]byte{c})))
	}
	return b.String()
}

// lowerEscapes lower-cases the two hex digits after each esc byte of s.
func lowerEscapes(s string, esc byte) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == esc {
			b[i+1], b[i+2] = lower(b[i+1]), lower(b[i+2])
			i += 2
		}
	}
	return string(b)
}

// upperEscapes upper-cases the four hex digits of each \uXXXX in s, a JSON string body.
func upperEscapes(s string) string {
	b := []byte(s)
	for i := 0; i+5 < len(b); i++ {
		if b[i] == '\\' {
			if b[i+1] == 'u' {
				for j := i + 2; j < i+6; j++ {
					if 'a' <= b[j] && b[j] <= 'f' {
						b[j] -= 'a' - 'A'
					}
				}
				i += 5
			} else {
				i++ // \\ or \" : the next byte is not an escape's start
			}
		}
	}
	return string(b)
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// jsonASCII is the body of s as a JSON string the way Python's json.dumps writes it:
// the short escapes, \u00XX for other control characters and, when ascii is set (the
// default, ensure_ascii), \uXXXX (a surrogate pair above U+FFFF) for every non-ASCII
// character.
func jsonASCII(s string, ascii bool) string {
	var b strings.Builder
	u := func(r rune) {
		b.WriteString(`\u`)
		b.WriteString(hex.EncodeToString([]byte{byte(r >> 8), byte(r)}))
	}
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20:
			u(r)
		case r < 0x80 || !ascii:
			b.WriteRune(r)
		case r > 0xFFFF:
			r -= 0x10000
			u(0xD800 + r>>10)
			u(0xDC00 + r&0x3FF)
		default:
			u(r)
		}
	}
	return b.String()
}

// key is the first MinLen bytes of b as a number.
func key(b []byte) uint64 {
	var k [8]byte
	copy(k[:], b[:MinLen])
	return binary.LittleEndian.Uint64(k[:])
}

// prefix is b, shorter than MinLen, and its length as a number.
func prefix(b []byte) uint64 {
	var k [8]byte
	copy(k[:], b)
	k[7] = byte(len(b))
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
	if r.wrapped {
		r.back = lastBytes(r.back, buf[:len(buf)-len(held)], MinWrap)
	}
	r.pending = append(r.pending[:0:0], held...)
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// lastBytes is the last n bytes of back followed by more, in back's storage.
func lastBytes(back, more []byte, n int) []byte {
	if len(more) >= n {
		return append(back[:0], more[len(more)-n:]...)
	}
	back = append(back, more...)
	return back[:copy(back, back[max(len(back)-n, 0):])]
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
		m, end, wait := r.at(buf, i, eof)
		if wait && !eof { // a pattern may still complete at i: hold from here
			out = append(out, buf[start:i]...)
			r.out = out
			_, err := r.w.Write(out)
			return buf[i:], err
		}
		if m >= 0 {
			out = append(out, buf[start:i]...)
			out = append(out, r.patterns[m].repl...)
			i, start = end, end
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

// at finds the longest pattern that matches buf at i: its index and where the match
// ends, or -1; and whether a pattern at least as long might still match once more data
// comes (buf ended inside it). At eof no more comes: a pattern buf ends inside does not
// match, and the shorter ones are tried (the bug was that the padded base64 of a value,
// cut short by the end, hid its unpadded form).
func (r *Writer) at(buf []byte, i int, eof bool) (match, end int, wait bool) {
	match, partial := -1, len(r.patterns)
	try := func(cands []int32, wrapOnly bool) {
		for _, idx := range cands {
			p := &r.patterns[idx]
			if wrapOnly && !p.wrap || int(idx) >= partial || match >= 0 && int(idx) >= match {
				continue
			}
			e, more := p.over(buf, i, r)
			switch {
			case more && eof:
			case more:
				partial = int(idx)
			case e >= 0:
				match, end = int(idx), e
			}
		}
	}
	n := len(buf)
	if i+MinLen <= n {
		try(r.byKey[key(buf[i:])], false)
	} else if r.prefixes[prefix(buf[i:])] {
		wait = true
	}
	// A wrapped encoding with a line break among its first MinLen bytes.
	if r.wrapped && bytes.ContainsAny(buf[i+1:min(i+MinLen, n)], "\r\n") {
		var k [MinLen]byte
		got, j := 0, i
		run := r.runBefore(buf, i) // the encoding characters of this line before i
		for got < MinLen && j < n {
			if got > 0 {
				next := lineBreak(buf, j)
				if next != j && run < MinWrap {
					break // the end of an ordinary line, not a dump's
				}
				if next < 0 || next == n {
					j = next
					break
				}
				if next != j {
					run = 0
				}
				j = next
			}
			k[got] = buf[j]
			got, j, run = got+1, j+1, run+1
		}
		switch {
		case got == MinLen:
			try(r.byKey[key(k[:])], true)
		case j < 0 || j == n:
			wait = wait || r.wrapPre[prefix(k[:got])]
		}
	}
	if partial < len(r.patterns) && (match < 0 || partial < match) {
		wait = true
	}
	return match, end, wait
}

// runBefore counts the encoding characters that end at buf[i] on its line, up to
// MinWrap, looking into the input before buf when it has to.
func (r *Writer) runBefore(buf []byte, i int) int {
	n := 0
	for j := i - 1; n < MinWrap; j-- {
		var c byte
		switch {
		case j >= 0:
			c = buf[j]
		case len(r.back)+j >= 0:
			c = r.back[len(r.back)+j]
		default:
			return n
		}
		if !encoding(c) {
			return n
		}
		n++
	}
	return n
}

// encoding reports a character of the base64 (both alphabets) or hex encodings.
func encoding(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '=' || c == '-' || c == '_'
}

// over compares p with buf at i. It returns where the match ends, or -1; more is true
// when buf ends before it can tell.
func (p *pattern) over(buf []byte, i int, r *Writer) (end int, more bool) {
	t, n := p.text, len(buf)
	if !p.wrap {
		if len(t) > n-i {
			return -1, bytes.Equal(buf[i:], t[:n-i])
		}
		if bytes.Equal(buf[i:i+len(t)], t) {
			return i + len(t), false
		}
		return -1, false
	}
	k, run := i, -1 // run: the encoding characters of the line so far, once needed
	for j := range t {
		if j > 0 && k < n && (buf[k] == '\n' || buf[k] == '\r') {
			if run < 0 {
				run = r.runBefore(buf, i) + j
			}
			if run < MinWrap {
				return -1, false // an ordinary line's end
			}
			if k = lineBreak(buf, k); k < 0 {
				return -1, true
			}
			run = 0
		}
		if k == n {
			return -1, true
		}
		if buf[k] != t[j] {
			return -1, false
		}
		k++
		if run >= 0 {
			run++
		}
	}
	return k, false
}

// lineBreak returns the index after the one line break ("\n" or "\r\n") at buf[k], k when
// there is none there, and -1 when buf ends inside one.
func lineBreak(buf []byte, k int) int {
	switch buf[k] {
	case '\n':
		return k + 1
	case '\r':
		if k+1 == len(buf) {
			return -1
		}
		if buf[k+1] == '\n' {
			return k + 2
		}
	}
	return k
}
