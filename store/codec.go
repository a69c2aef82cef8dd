package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/agent-secrets/secrets/lease"
)

// leases.age is encoded and decoded here by hand instead of with encoding/json's
// reflection, because every lease call reads and rewrites every active lease: reflection
// cost about 4 µs a lease to decode and 2 µs to encode, 6 ms at 1,000 leases, more than
// the rest of the call. The bytes are still plain JSON, and FuzzStateCodec holds the
// codec to encoding/json: whatever decodeState accepts, encoding/json reads the same way,
// and encoding/json reads encodeState's output back exactly. Keys it does not know are an
// error, never skipped.

// stateFields maps the keys of leases.age other than "leases" to their fields. These are
// small and decoded with encoding/json from their raw bytes.
func (s *State) stateFields() []struct {
	key string
	ptr any
} {
	return []struct {
		key string
		ptr any
	}{
		{"version", &s.Version},
		{"audit_head", &s.AuditHead},
		{"audit_broken", &s.AuditBroken},
		{"env_files", &s.EnvFiles},
		{"lockdown", &s.Lockdown},
		{"heartbeat", &s.Heartbeat},
	}
}

// encodeState writes the state as one JSON object, leases last.
func encodeState(s *State) ([]byte, error) {
	b := make([]byte, 0, 256+len(s.Leases)*256)
	b = append(b, '{')
	for _, f := range s.stateFields() {
		if f.key == "audit_broken" && s.AuditBroken == "" || f.key == "env_files" && len(s.EnvFiles) == 0 || f.key == "lockdown" && s.Lockdown == nil || f.key == "heartbeat" && s.Heartbeat == nil {
			continue // omitempty, as encoding/json would
		}
		v, err := json.Marshal(f.ptr)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", f.key, err)
		}
		b = appendString(b, f.key)
		b = append(b, ':')
		b = append(b, v...)
		b = append(b, ',')
	}
	if s.Leases == nil {
		return append(b, "\"leases\":null}\n"...), nil // as encoding/json writes a nil slice
	}
	b = append(b, `"leases":[`...)
	for i, l := range s.Leases {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendLease(b, l); err != nil {
			return nil, err
		}
	}
	return append(b, "]}\n"...), nil
}

func appendLease(b []byte, l lease.Lease) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = appendString(b, l.ID)
	b = append(b, `,"secret":`...)
	b = appendString(b, l.Secret)
	b = append(b, `,"client_id":`...)
	b = appendString(b, l.ClientID)
	for _, t := range []struct {
		key string
		t   time.Time
	}{{`,"created_at":"`, l.CreatedAt}, {`,"expires_at":"`, l.ExpiresAt}} {
		if y := t.t.Year(); y < 0 || y > 9999 {
			return nil, fmt.Errorf("encode lease %s: year %d out of range", l.ID, y)
		}
		b = append(b, t.key...)
		b = appendTime(b, t.t)
		b = append(b, '"')
	}
	b = append(b, `,"ttl":`...)
	b = appendString(b, l.TTL)
	b = append(b, `,"kind":`...)
	b = appendString(b, string(l.Kind))
	if l.Path != "" {
		b = append(b, `,"path":`...)
		b = appendString(b, l.Path)
	}
	if l.PID != 0 {
		b = append(b, `,"pid":`...)
		b = strconv.AppendInt(b, int64(l.PID), 10)
	}
	if l.PIDStart != 0 {
		b = append(b, `,"pid_start":`...)
		b = strconv.AppendUint(b, l.PIDStart, 10)
	}
	return append(b, '}'), nil
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string. Invalid UTF-8 becomes U+FFFD, as encoding/json does.
func appendString(b []byte, s string) []byte {
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
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// decodeState parses leases.age. Any syntax error, unknown key or wrong type is ErrCorrupt.
func decodeState(name string, data []byte) (*State, error) {
	s := &State{}
	d := &decoder{b: string(data)}
	err := d.object(func(key string) error {
		if key == "leases" {
			return d.leases(&s.Leases)
		}
		for _, f := range s.stateFields() {
			if f.key == key {
				raw, err := d.raw()
				if err != nil {
					return err
				}
				if err := json.Unmarshal(raw, f.ptr); err != nil {
					return fmt.Errorf("%s: %v", key, err)
				}
				return nil
			}
		}
		return fmt.Errorf("unknown key %q", key)
	})
	if err == nil {
		d.ws()
		if d.i != len(d.b) {
			err = d.errorf("data after the document")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	if s.Version != StateVersion {
		return nil, fmt.Errorf("%w: %s: unknown version %d", ErrCorrupt, name, s.Version)
	}
	return s, nil
}

// decoder reads JSON from b. Each method skips leading white space. Strings without
// escapes are returned as slices of b, so decoding a lease table allocates little.
type decoder struct {
	b string
	i int
}

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", d.i, fmt.Sprintf(format, args...))
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// next returns the next byte after white space, or 0 at the end.
func (d *decoder) next() byte {
	d.ws()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

func (d *decoder) expect(c byte) error {
	if d.next() != c {
		return d.errorf("expected %q", c)
	}
	d.i++
	return nil
}

// null consumes a null literal if one is next; encoding/json leaves the field as it was.
func (d *decoder) null() bool {
	if d.next() == 'n' && len(d.b)-d.i >= 4 && d.b[d.i:d.i+4] == "null" {
		d.i += 4
		return true
	}
	return false
}

// object reads {"key": value, …}, calling field for each key with the value next.
func (d *decoder) object(field func(key string) error) error {
	if err := d.expect('{'); err != nil {
		return err
	}
	if d.next() == '}' {
		d.i++
		return nil
	}
	for {
		key, err := d.str()
		if err != nil {
			return err
		}
		if err := d.expect(':'); err != nil {
			return err
		}
		if err := field(key); err != nil {
			return err
		}
		switch d.next() {
		case ',':
			d.i++
		case '}':
			d.i++
			return nil
		default:
			return d.errorf("expected , or }")
		}
	}
}

// leases reads an array of lease objects.
func (d *decoder) leases(out *[]lease.Lease) error {
	if d.null() {
		*out = nil
		return nil
	}
	ls := make([]lease.Lease, 0, (len(d.b)-d.i)/160) // a lease is ~190 bytes of JSON
	err := d.array(func() error {
		var l lease.Lease
		if err := d.object(func(key string) error { return d.leaseField(&l, key) }); err != nil {
			return err
		}
		ls = append(ls, l)
		return nil
	})
	if err == nil {
		*out = ls
	}
	return err
}

// array reads [value, …], calling elem with each value next.
func (d *decoder) array(elem func() error) error {
	if err := d.expect('['); err != nil {
		return err
	}
	if d.next() == ']' {
		d.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch d.next() {
		case ',':
			d.i++
		case ']':
			d.i++
			return nil
		default:
			return d.errorf("expected , or ]")
		}
	}
}

func (d *decoder) leaseField(l *lease.Lease, key string) error {
	if d.null() {
		return nil
	}
	var err error
	switch key {
	case "id":
		l.ID, err = d.str()
	case "secret":
		l.Secret, err = d.str()
	case "client_id":
		l.ClientID, err = d.str()
	case "ttl":
		l.TTL, err = d.str()
	case "kind":
		var k string
		k, err = d.str()
		l.Kind = lease.Kind(k)
	case "path":
		l.Path, err = d.str()
	case "created_at", "expires_at":
		var s string
		if s, err = d.str(); err != nil {
			return err
		}
		t := &l.CreatedAt
		if key == "expires_at" {
			t = &l.ExpiresAt
		}
		if err := parseTime(t, s); err != nil {
			return d.errorf("%s: %v", key, err)
		}
	case "pid":
		var n int64
		n, err = d.int()
		l.PID = int(n)
	case "pid_start":
		l.PIDStart, err = d.uint()
	default:
		return d.errorf("unknown lease key %q", key)
	}
	return err
}

// text reads a string into dst; null leaves dst as it is.
func (d *decoder) text(dst *string) error {
	if d.null() {
		return nil
	}
	if d.next() != '"' {
		return errors.New("must be a string")
	}
	s, err := d.str()
	if err == nil {
		*dst = s
	}
	return err
}

// boolean reads true or false into dst; null leaves dst as it is.
func (d *decoder) boolean(dst *bool) error {
	if d.null() {
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

// integer reads an int into dst; null leaves dst as it is.
func (d *decoder) integer(dst *int) error {
	if d.null() {
		return nil
	}
	n, err := d.int()
	if err != nil {
		return errors.New("must be an integer")
	}
	*dst = int(n)
	return nil
}

// uint reads a non-negative integer that fits in a uint64.
func (d *decoder) uint() (uint64, error) {
	d.ws()
	start := d.i
	for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
		d.i++
	}
	if d.i == start || d.b[start] == '0' && d.i-start > 1 || d.i < len(d.b) && (d.b[d.i] == '.' || d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		return 0, d.errorf("expected an unsigned integer")
	}
	n, err := strconv.ParseUint(d.b[start:d.i], 10, 64)
	if err != nil {
		return 0, d.errorf("integer out of range")
	}
	return n, nil
}

// int reads an integer that fits in an int (as encoding/json requires of an int field).
func (d *decoder) int() (int64, error) {
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
		return 0, d.errorf("expected an integer")
	}
	if d.i < len(d.b) && (d.b[d.i] == '.' || d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		return 0, d.errorf("expected an integer")
	}
	n, err := strconv.ParseInt(d.b[start:d.i], 10, strconv.IntSize)
	if err != nil {
		return 0, d.errorf("integer out of range")
	}
	return n, nil
}

// str reads a JSON string. Invalid UTF-8 and lone surrogates become U+FFFD, as in encoding/json.
func (d *decoder) str() (string, error) {
	if err := d.expect('"'); err != nil {
		return "", err
	}
	start := d.i
	end := strings.IndexByte(d.b[start:], '"')
	if end < 0 {
		return "", d.errorf("unterminated string")
	}
	for i := start; i < start+end; i++ {
		if c := d.b[i]; c < 0x20 || c == '\\' || c >= utf8.RuneSelf {
			d.i = i
			if c < 0x20 {
				return "", d.errorf("control character in string")
			}
			return d.strSlow(start)
		}
	}
	d.i = start + end + 1
	return d.b[start : start+end], nil
}

func (d *decoder) strSlow(start int) (string, error) {
	out := append([]byte(nil), d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return string(out), nil
		case c < 0x20:
			return "", d.errorf("control character in string")
		case c == '\\':
			if d.i+1 >= len(d.b) {
				return "", d.errorf("unterminated escape")
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
					return "", d.errorf("bad \\u escape")
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
				return "", d.errorf("bad escape \\%c", e)
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
	return "", d.errorf("unterminated string")
}

// u4 reads the escape \uXXXX that starts at offset i, without consuming it.
func (d *decoder) u4(i int) (rune, bool) {
	if i+6 > len(d.b) || d.b[i] != '\\' || d.b[i+1] != 'u' {
		return 0, false
	}
	r, err := strconv.ParseUint(d.b[i+2:i+6], 16, 16)
	return rune(r), err == nil
}

// raw returns the bytes of the next value after checking that it is valid JSON.
func (d *decoder) raw() ([]byte, error) {
	d.ws()
	start := d.i
	if err := d.skip(0); err != nil {
		return nil, err
	}
	return []byte(d.b[start:d.i]), nil
}

var errTooDeep = errors.New("nesting too deep")

// skip consumes one value of any kind, checking its syntax.
func (d *decoder) skip(depth int) error {
	if depth > 100 {
		return errTooDeep
	}
	switch c := d.next(); {
	case c == '"':
		_, err := d.str()
		return err
	case c == '{':
		return d.object(func(string) error { return d.skip(depth + 1) })
	case c == '[':
		return d.array(func() error { return d.skip(depth + 1) })
	case c == '-' || '0' <= c && c <= '9':
		return d.number()
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if len(d.b)-d.i >= len(lit) && d.b[d.i:d.i+len(lit)] == lit {
				d.i += len(lit)
				return nil
			}
		}
		return d.errorf("unexpected %q", c)
	}
}

// number consumes a JSON number per RFC 8259.
func (d *decoder) number() error {
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
		return d.errorf("bad number")
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return d.errorf("bad number")
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return d.errorf("bad number")
		}
	}
	return nil
}

// appendTime writes t as time.RFC3339Nano does (as encoding/json writes a time.Time). UTC
// times, the only ones leases hold, take a fast path; AppendFormat is a tenth of a lease's
// encoding cost.
func appendTime(b []byte, t time.Time) []byte {
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

// parseTime reads an RFC 3339 time as time.Time.UnmarshalText does. The form appendTime
// writes for UTC takes a fast path whose result is checked field by field; anything else
// goes to UnmarshalText.
func parseTime(t *time.Time, s string) error {
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
