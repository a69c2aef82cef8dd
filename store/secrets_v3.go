package store

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/agent-secrets/secrets/internal/codec"
	names "github.com/agent-secrets/secrets/internal/name"
)

// secrets.age version 3 is JSON that age -d shows as it is, laid out so that one secret
// can be read without the others, and MAC'd so that only the store key's holder can have
// written it:
//
//	{"version":3,"generation":7,"count":2,"mac":"hmac-sha256:…","secrets":{
//	"a_key":{"value":"…","created_at":"…","updated_at":"…","mac":"hmac-sha256:…"},
//	"b_key":{"value":"…",…,"mac":"hmac-sha256:…"}
//	}}
//
// The header line's MAC covers the version, the generation and the count; each entry's
// covers its name and fields and the generation, so an entry cannot be moved from an older
// file into a newer one. Entries are one a line, in name order, so a lease finds its
// secret by binary search over the decrypted stream (age decrypts 64 KiB chunks on
// demand) and checks the header and that one entry. A read of every secret (list, a
// write) also checks the order and the count, so nothing was dropped.

// SecretsVersion is the secrets.age format this binary writes.
const SecretsVersion = 3

const (
	secretsHeaderPrefix = `{"version":3,"generation":`
	secretsOpen         = `,"secrets":{`
	secretsClose        = "}}\n"
	macKey              = `,"mac":"`
)

func headerMAC(key []byte, prefix []byte) string {
	return MAC(key, []byte("secrets header v3\x00"), prefix)
}

func entryMAC(key []byte, generation uint64, prefix []byte) string {
	return MAC(key, []byte("secrets entry v3\x00"), strconv.AppendUint(nil, generation, 10), []byte{0}, prefix)
}

// encodeSecretsV3 writes sec as version 3 at its generation, MAC'd with key.
func encodeSecretsV3(sec *Secrets, key []byte) []byte {
	names := sec.Names()
	b := make([]byte, 0, 128+len(names)*160)
	b = append(b, secretsHeaderPrefix...)
	b = strconv.AppendUint(b, sec.Generation, 10)
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, int64(len(names)), 10)
	if len(sec.Policy) > 0 {
		b = append(b, `,"policy":`...)
		b = appendCompact(b, sec.Policy)
	}
	mac := headerMAC(key, b)
	b = append(b, macKey...)
	b = append(b, mac...)
	b = append(b, '"')
	b = append(b, secretsOpen...)
	b = append(b, '\n')
	for i, name := range names {
		start := len(b)
		b = appendEntry(b, name, sec.Secrets[name])
		b = append(b, macKey...)
		b = append(b, entryMAC(key, sec.Generation, b[start:len(b)-len(macKey)])...)
		b = append(b, `"}`...)
		if i < len(names)-1 {
			b = append(b, ',')
		}
		b = append(b, '\n')
	}
	return append(b, secretsClose...)
}

func appendEntry(b []byte, name string, s *Secret) []byte {
	b = codec.AppendString(b, name)
	b = append(b, `:{"value":"`...)
	b = base64.StdEncoding.AppendEncode(b, s.Value)
	b = append(b, `","created_at":"`...)
	b = codec.AppendTime(b, s.CreatedAt)
	b = append(b, `","updated_at":"`...)
	b = codec.AppendTime(b, s.UpdatedAt)
	b = append(b, '"')
	if s.RotateVia != "" {
		b = append(b, `,"rotate_via":`...)
		b = codec.AppendString(b, s.RotateVia)
	}
	if s.VerifyVia != "" {
		b = append(b, `,"verify_via":`...)
		b = codec.AppendString(b, s.VerifyVia)
	}
	if s.RotatedAt != nil {
		b = append(b, `,"rotated_at":"`...)
		b = codec.AppendTime(b, *s.RotatedAt)
		b = append(b, '"')
	}
	if s.HooksChangedAt != nil {
		b = append(b, `,"hooks_changed_at":"`...)
		b = codec.AppendTime(b, *s.HooksChangedAt)
		b = append(b, '"')
	}
	if len(s.Policy) > 0 {
		b = append(b, `,"policy":`...)
		b = appendCompact(b, s.Policy)
	}
	// Every entry says whether it is a canary, in the same number of bytes, so that the
	// size of secrets.age does not count the canaries.
	if s.Canary {
		b = append(b, `,"canary":true `...)
	} else {
		b = append(b, `,"canary":false`...)
	}
	return b
}

// appendCompact appends a policy's JSON without whitespace: one read from an older
// format may have newlines, and an entry is one line.
func appendCompact(b, raw []byte) []byte {
	var out bytes.Buffer
	if json.Compact(&out, raw) != nil {
		return append(b, "null"...) // not JSON: the policy package refuses it when read
	}
	return append(b, out.Bytes()...)
}

// header is the first line of a version 3 file.
type secretsHeader struct {
	generation uint64
	count      int
	policy     []byte
}

// parseHeader checks the header line (without its newline) and reads it.
func parseHeader(path string, line, key []byte) (secretsHeader, error) {
	bad := func(why string) (secretsHeader, error) {
		return secretsHeader{}, fmt.Errorf("%w: %s: %s", ErrCorrupt, path, why)
	}
	i := bytes.Index(line, []byte(macKey))
	if !bytes.HasPrefix(line, []byte(secretsHeaderPrefix)) || i < 0 || !bytes.HasSuffix(line, []byte(`"`+secretsOpen)) ||
		i+len(macKey) > len(line)-len(`"`+secretsOpen) {
		return bad("not a version 3 header")
	}
	mac := line[i+len(macKey) : len(line)-len(`"`+secretsOpen)]
	if !CheckMAC(string(mac), key, []byte("secrets header v3\x00"), line[:i]) {
		return bad("its MAC does not check out: it was not written with this store's key")
	}
	d := codec.NewDecoder(append(append([]byte(nil), line[:i]...), '}'))
	var h secretsHeader
	err := d.Object(func(k string) error {
		var err error
		switch k {
		case "version":
			_, err = d.Uint()
		case "generation":
			h.generation, err = d.Uint()
		case "count":
			var n uint64
			n, err = d.Uint()
			h.count = int(n)
		case "policy":
			h.policy, err = d.Raw()
		default:
			err = fmt.Errorf("unknown key %q", k)
		}
		return err
	})
	if err != nil {
		return bad(err.Error())
	}
	return h, nil
}

// parseEntry checks one entry line (without the separating comma and newline) and reads it.
func parseEntry(path string, line []byte, generation uint64, key []byte) (string, *Secret, error) {
	bad := func(why string) (string, *Secret, error) {
		return "", nil, fmt.Errorf("%w: %s: %s", ErrCorrupt, path, why)
	}
	i := bytes.LastIndex(line, []byte(macKey))
	if i < 0 || !bytes.HasSuffix(line, []byte(`"}`)) || i+len(macKey) > len(line)-2 {
		return bad("malformed entry")
	}
	if !CheckMAC(string(line[i+len(macKey):len(line)-2]), key, []byte("secrets entry v3\x00"), strconv.AppendUint(nil, generation, 10), []byte{0}, line[:i]) {
		return bad("an entry's MAC does not check out: it was not written with this store's key for this generation")
	}
	d := codec.NewDecoder(append(append([]byte(nil), line[:i]...), '}'))
	name, err := d.Str()
	if err != nil {
		return bad(err.Error())
	}
	if err := d.Expect(':'); err != nil {
		return bad(err.Error())
	}
	s := &Secret{}
	err = d.Object(func(k string) error {
		switch k {
		case "value":
			v, err := d.Str()
			if err != nil {
				return err
			}
			s.Value, err = base64.StdEncoding.DecodeString(v)
			return err
		case "policy":
			raw, err := d.Raw()
			s.Policy = raw
			return err
		case "created_at", "updated_at", "rotated_at", "hooks_changed_at":
			v, err := d.Str()
			if err != nil {
				return err
			}
			var t time.Time
			if err := codec.ParseTime(&t, v); err != nil {
				return err
			}
			switch k {
			case "created_at":
				s.CreatedAt = t
			case "updated_at":
				s.UpdatedAt = t
			case "hooks_changed_at":
				s.HooksChangedAt = &t
			default:
				s.RotatedAt = &t
			}
		case "rotate_via":
			return d.Text(&s.RotateVia)
		case "verify_via":
			return d.Text(&s.VerifyVia)
		case "canary":
			return d.Bool(&s.Canary)
		default:
			return fmt.Errorf("unknown key %q", k)
		}
		return nil
	})
	if err != nil {
		return bad(err.Error())
	}
	return name, s, nil
}

// decodeSecretsV3 reads a whole version 3 document, checking every MAC, the name order
// and the count.
func decodeSecretsV3(path string, data, key []byte) (*Secrets, error) {
	nl := bytes.IndexByte(data, '\n')
	if nl < 0 || !bytes.HasSuffix(data, []byte(secretsClose)) || len(data) < nl+1+len(secretsClose) {
		return nil, fmt.Errorf("%w: %s: malformed version 3 document", ErrCorrupt, path)
	}
	h, err := parseHeader(path, data[:nl], key)
	if err != nil {
		return nil, err
	}
	body := data[nl+1 : len(data)-len(secretsClose)]
	sec := &Secrets{Version: SecretsVersion, Generation: h.generation, Policy: h.policy, Secrets: make(map[string]*Secret, h.count), readVersion: SecretsVersion}
	last := ""
	for len(body) > 0 {
		line := body
		if j := bytes.IndexByte(body, '\n'); j >= 0 {
			line, body = body[:j], body[j+1:]
		} else {
			body = nil
		}
		line = bytes.TrimSuffix(line, []byte(","))
		name, s, err := parseEntry(path, line, h.generation, key)
		if err != nil {
			return nil, err
		}
		if len(sec.Secrets) > 0 && name <= last {
			return nil, fmt.Errorf("%w: %s: entries out of order at %q", ErrCorrupt, path, name)
		}
		sec.Secrets[name], last = s, name
	}
	if len(sec.Secrets) != h.count {
		return nil, fmt.Errorf("%w: %s: %d entries, the header says %d", ErrCorrupt, path, len(sec.Secrets), h.count)
	}
	return sec, nil
}

// lookupSecretV3 finds name in the decrypted stream r of size bytes by binary search
// over its entry lines, and checks the header and that entry. It returns the secret and
// the file's header, or ErrSecretNotFound.
func lookupSecretV3(path string, r io.ReaderAt, size int64, name string, key []byte) (*Secret, secretsHeader, error) {
	at := &lineReader{r: r, size: size}
	head, err := at.line(0)
	if err != nil {
		return nil, secretsHeader{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	h, err := parseHeader(path, head, key)
	if err != nil {
		return nil, secretsHeader{}, err
	}
	bodyStart, bodyEnd := int64(len(head)+1), size-int64(len(secretsClose))
	if bodyEnd < bodyStart {
		return nil, secretsHeader{}, fmt.Errorf("%w: %s: malformed version 3 document", ErrCorrupt, path)
	}
	lo, hi := bodyStart, bodyEnd // the line that holds name starts in [lo, hi)
	for hi-lo > 4096 {
		mid := lo + (hi-lo)/2
		start, err := at.nextStart(mid, bodyStart)
		if err != nil {
			return nil, secretsHeader{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
		}
		if start >= hi {
			hi = mid
			continue
		}
		n, err := at.name(start)
		if err != nil {
			return nil, secretsHeader{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
		}
		switch {
		case n == name:
			lo, hi = start, start+1
		case n < name:
			lo = start + 1
		default:
			hi = start
		}
	}
	start, err := at.nextStart(lo, bodyStart)
	for err == nil && start < hi {
		var line []byte
		if line, err = at.line(start); err != nil {
			break
		}
		entry := bytes.TrimSuffix(line, []byte(","))
		n, nerr := at.name(start)
		if nerr != nil {
			return nil, secretsHeader{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, nerr)
		}
		if n == name {
			_, s, err := parseEntry(path, entry, h.generation, key)
			return s, h, err
		}
		if n > name {
			break
		}
		start += int64(len(line)) + 1
	}
	if err != nil {
		return nil, secretsHeader{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	return nil, h, fmt.Errorf("%w: %s", ErrSecretNotFound, names.Shown(name))
}

// lineReader reads lines of a plaintext stream by offset.
type lineReader struct {
	r    io.ReaderAt
	size int64
}

// line returns the line that starts at off, without its newline.
func (l *lineReader) line(off int64) ([]byte, error) { return LineAt(l.r, l.size, off) }

// LineAt returns the line of a plaintext stream (an age file's, decrypted on demand) that
// starts at off, without its newline. A line that does not end is returned as far as it
// goes, with io.ErrUnexpectedEOF.
func LineAt(r io.ReaderAt, size, off int64) ([]byte, error) {
	var out []byte
	buf := make([]byte, 4096)
	for off < size {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			return append(out, buf[:i]...), nil
		}
		out = append(out, buf[:n]...)
		if len(out) > 2*MaxValueSize {
			return out, errors.New("line too long")
		}
		if err != nil && err != io.EOF {
			return out, err
		}
		off += int64(n)
	}
	return out, io.ErrUnexpectedEOF
}

// nextStart returns the first line start at or after off (bodyStart is one).
func (l *lineReader) nextStart(off, bodyStart int64) (int64, error) {
	if off <= bodyStart {
		return bodyStart, nil
	}
	b := make([]byte, 1)
	if _, err := l.r.ReadAt(b, off-1); err != nil {
		return 0, err
	}
	if b[0] == '\n' {
		return off, nil
	}
	rest, err := l.line(off)
	if err != nil {
		return 0, err
	}
	return off + int64(len(rest)) + 1, nil
}

// name reads the name at the start of the entry line at off.
func (l *lineReader) name(off int64) (string, error) {
	buf := make([]byte, 160)
	n, err := l.r.ReadAt(buf[:min(int64(len(buf)), l.size-off)], off)
	if err != nil && err != io.EOF {
		return "", err
	}
	buf = buf[:n]
	if len(buf) < 2 || buf[0] != '"' {
		return "", errors.New("malformed entry")
	}
	end := bytes.IndexByte(buf[1:], '"')
	if end < 0 {
		return "", errors.New("malformed entry")
	}
	return string(buf[1 : 1+end]), nil
}
