// Package codec reads and writes JSON by hand, for the documents every secrets call
// decodes (config.json, the lease state): encoding/json's reflection cost about 4 µs a
// lease to decode and 2 µs to encode, more than the rest of a call at 1,000 leases, and
// its first use of each type another 0.3-0.5 ms of start-up. The bytes are plain JSON, and
// the fuzz tests of its users hold it to encoding/json: what Decoder accepts,
// encoding/json reads the same way.
package codec

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// NewDecoder returns a Decoder positioned at the start of data.
func NewDecoder(data []byte) *Decoder { return &Decoder{b: string(data)} }

// Remaining returns how many bytes are left to read, to size what they will decode to.
func (d *Decoder) Remaining() int { return len(d.b) - d.i }

// End reports an error unless only white space is left.
func (d *Decoder) End() error {
	d.ws()
	if d.i != len(d.b) {
		return d.Errorf("data after the document")
	}
	return nil
}

const hexDigits = "0123456789abcdef"

// AppendString writes s as a JSON string, as encoding/json does without its HTML escaping:
// invalid UTF-8 becomes U+FFFD, and U+2028 and U+2029 are escaped.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		b = append(b, s...)
		return append(b, '"')
	}
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			// As encoding/json writes them: a JavaScript reader would take them for a line end.
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Decoder reads JSON from a document. Each method skips leading white space. Strings without
// escapes are returned as slices of b, so decoding a lease table allocates little.
type Decoder struct {
	b string
	i int
}

// Errorf returns an error that names the offset the decoder has reached.
func (d *Decoder) Errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", d.i, fmt.Sprintf(format, args...))
}

func (d *Decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// Next returns the next byte after white space, or 0 at the end.
func (d *Decoder) Next() byte {
	d.ws()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

// Expect consumes the byte c, after white space, or fails.
func (d *Decoder) Expect(c byte) error { return d.expect(c) }

// Pos returns how many bytes have been read.
func (d *Decoder) Pos() int { return d.i }

func (d *Decoder) expect(c byte) error {
	if d.Next() != c {
		return d.Errorf("expected %q", c)
	}
	d.i++
	return nil
}

// Null consumes a null literal if one is next; encoding/json leaves the field as it was.
func (d *Decoder) Null() bool {
	if d.Next() == 'n' && len(d.b)-d.i >= 4 && d.b[d.i:d.i+4] == "null" {
		d.i += 4
		return true
	}
	return false
}

// Object reads {"key": value, …}, calling field for each key with the value next.
func (d *Decoder) Object(field func(key string) error) error {
	if err := d.expect('{'); err != nil {
		return err
	}
	if d.Next() == '}' {
		d.i++
		return nil
	}
	for {
		key, err := d.Str()
		if err != nil {
			return err
		}
		if err := d.expect(':'); err != nil {
			return err
		}
		if err := field(key); err != nil {
			return err
		}
		switch d.Next() {
		case ',':
			d.i++
		case '}':
			d.i++
			return nil
		default:
			return d.Errorf("expected , or }")
		}
	}
}

// Array reads [value, …], calling elem with each value next.
func (d *Decoder) Array(elem func() error) error {
	if err := d.expect('['); err != nil {
		return err
	}
	if d.Next() == ']' {
		d.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch d.Next() {
		case ',':
			d.i++
		case ']':
			d.i++
			return nil
		default:
			return d.Errorf("expected , or ]")
		}
	}
}

// Text reads a string into dst; null leaves dst as it is.
func (d *Decoder) Text(dst *string) error {
	if d.Null() {
		return nil
	}
	if d.Next() != '"' {
		return errors.New("must be a string")
	}
	s, err := d.Str()
	if err == nil {
		*dst = s
	}
	return err
}

// Bool reads true or false into dst; null leaves dst as it is.
func (d *Decoder) Bool(dst *bool) error {
	if d.Null() {
		return nil
	}
	d.ws()
	for _, lit := range []string{"true", "false"} {
		if len(d.b)-d.i >= len(lit) && d.b[d.i:d.i+len(lit)] == lit {
			d.i += len(lit)
			*dst = lit == "true"
			return nil
		}
	}
	return errors.New("must be true or false")
}

// Integer reads an int into dst; null leaves dst as it is.
func (d *Decoder) Integer(dst *int) error {
	if d.Null() {
		return nil
	}
	n, err := d.Int()
	if err != nil {
		return errors.New("must be an integer")
	}
	*dst = int(n)
	return nil
}

// Uint reads a non-negative integer that fits in a uint64.
func (d *Decoder) Uint() (uint64, error) {
	d.ws()
	start := d.i
	for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
		d.i++
	}
	if d.i == start || d.b[start] == '0' && d.i-start > 1 || d.i < len(d.b) && (d.b[d.i] == '.' || d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		return 0, d.Errorf("expected an unsigned integer")
	}
	n, err := strconv.ParseUint(d.b[start:d.i], 10, 64)
	if err != nil {
		return 0, d.Errorf("integer out of range")
	}
	return n, nil
}

// Int reads an integer that fits in an int (as encoding/json requires of an int field).
func (d *Decoder) Int() (int64, error) {
	d.ws()
	start := d.i
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	digits := d.i
	for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
		d.i++
	}
	if d.i == digits || d.b[digits] == '0' && d.i-digits > 1 {
		return 0, d.Errorf("expected an integer")
	}
	if d.i < len(d.b) && (d.b[d.i] == '.' || d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		return 0, d.Errorf("expected an integer")
	}
	n, err := strconv.ParseInt(d.b[start:d.i], 10, strconv.IntSize)
	if err != nil {
		return 0, d.Errorf("integer out of range")
	}
	return n, nil
}

// Str reads a JSON string. Invalid UTF-8 and lone surrogates become U+FFFD, as in encoding/json.
func (d *Decoder) Str() (string, error) {
	if err := d.expect('"'); err != nil {
		return "", err
	}
	start := d.i
	end := strings.IndexByte(d.b[start:], '"')
	if end < 0 {
		return "", d.Errorf("unterminated string")
	}
	for i := start; i < start+end; i++ {
		if c := d.b[i]; c < 0x20 || c == '\\' || c >= utf8.RuneSelf {
			d.i = i
			if c < 0x20 {
				return "", d.Errorf("control character in string")
			}
			return d.strSlow(start)
		}
	}
	d.i = start + end + 1
	return d.b[start : start+end], nil
}

func (d *Decoder) strSlow(start int) (string, error) {
	out := append([]byte(nil), d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return string(out), nil
		case c < 0x20:
			return "", d.Errorf("control character in string")
		case c == '\\':
			if d.i+1 >= len(d.b) {
				return "", d.Errorf("unterminated escape")
			}
			e := d.b[d.i+1]
			d.i += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := d.u4(d.i - 2)
				if !ok {
					return "", d.Errorf("bad \\u escape")
				}
				d.i += 4
				if utf16.IsSurrogate(r) {
					// A valid pair is one rune; anything else is U+FFFD and the next
					// escape stands alone, as in encoding/json.
					r2, ok := d.u4(d.i)
					if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
						r = dec
						d.i += 6
					} else {
						r = utf8.RuneError
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				return "", d.Errorf("bad escape \\%c", e)
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			d.i++
		default:
			r, size := utf8.DecodeRuneInString(d.b[d.i:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, d.b[d.i:d.i+size]...)
			}
			d.i += size
		}
	}
	return "", d.Errorf("unterminated string")
}

// u4 reads the escape \uXXXX that starts at offset i, without consuming it.
func (d *Decoder) u4(i int) (rune, bool) {
	if i+6 > len(d.b) || d.b[i] != '\\' || d.b[i+1] != 'u' {
		return 0, false
	}
	r, err := strconv.ParseUint(d.b[i+2:i+6], 16, 16)
	return rune(r), err == nil
}

// Raw returns the bytes of the next value after checking that it is valid JSON.
func (d *Decoder) Raw() ([]byte, error) {
	d.ws()
	start := d.i
	if err := d.skip(0); err != nil {
		return nil, err
	}
	return []byte(d.b[start:d.i]), nil
}

var errTooDeep = errors.New("nesting too deep")

// skip consumes one value of any kind, checking its syntax.
func (d *Decoder) skip(depth int) error {
	if depth > 100 {
		return errTooDeep
	}
	switch c := d.Next(); {
	case c == '"':
		_, err := d.Str()
		return err
	case c == '{':
		return d.Object(func(string) error { return d.skip(depth + 1) })
	case c == '[':
		return d.Array(func() error { return d.skip(depth + 1) })
	case c == '-' || '0' <= c && c <= '9':
		return d.number()
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if len(d.b)-d.i >= len(lit) && d.b[d.i:d.i+len(lit)] == lit {
				d.i += len(lit)
				return nil
			}
		}
		return d.Errorf("unexpected %q", c)
	}
}

// number consumes a JSON number per RFC 8259.
func (d *Decoder) number() error {
	digits := func() int {
		n := 0
		for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.b[d.i] == '-' {
		d.i++
	}
	if d.i < len(d.b) && d.b[d.i] == '0' {
		d.i++
	} else if digits() == 0 {
		return d.Errorf("bad number")
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return d.Errorf("bad number")
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return d.Errorf("bad number")
		}
	}
	return nil
}

// AppendTime writes t as time.RFC3339Nano does (as encoding/json writes a time.Time). UTC
// times, the only ones leases hold, take a fast path; AppendFormat is a tenth of a lease's
// encoding cost.
func AppendTime(b []byte, t time.Time) []byte {
	if t.Location() != time.UTC {
		return t.AppendFormat(b, time.RFC3339Nano)
	}
	year, month, day := t.Date()
	hour, min, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, min, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	if ns := t.Nanosecond(); ns != 0 {
		b = append(b, '.')
		n := len(b)
		b = appendDigits(b, ns, 9)
		for b[len(b)-1] == '0' && len(b) > n {
			b = b[:len(b)-1]
		}
	}
	return append(b, 'Z')
}

func appendDigits(b []byte, v, width int) []byte {
	var buf [9]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, buf[:width]...)
}

// ParseTime reads an RFC 3339 time as time.Time.UnmarshalText does. The form appendTime
// writes for UTC takes a fast path whose result is checked field by field; anything else
// goes to UnmarshalText.
func ParseTime(t *time.Time, s string) error {
	if v, ok := parseUTC(s); ok {
		*t = v
		return nil
	}
	return t.UnmarshalText([]byte(s))
}

// parseUTC reads YYYY-MM-DDTHH:MM:SS[.fraction]Z with 1-9 fraction digits.
func parseUTC(s string) (time.Time, bool) {
	if len(s) < 20 || s[len(s)-1] != 'Z' || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	num := func(from, to int) (int, bool) {
		n := 0
		for i := from; i < to; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 7)
	day, ok3 := num(8, 10)
	hour, ok4 := num(11, 13)
	min, ok5 := num(14, 16)
	sec, ok6 := num(17, 19)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return time.Time{}, false
	}
	ns := 0
	switch frac := s[19 : len(s)-1]; {
	case frac == "":
	case len(frac) >= 2 && len(frac) <= 10 && frac[0] == '.':
		n, ok := num(20, len(s)-1)
		if !ok {
			return time.Time{}, false
		}
		for i := len(frac) - 1; i < 9; i++ {
			n *= 10
		}
		ns = n
	default:
		return time.Time{}, false
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || min > 59 || sec > 59 {
		return time.Time{}, false // out of range: let UnmarshalText say why
	}
	return time.Date(year, time.Month(month), day, hour, min, sec, ns, time.UTC), true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
