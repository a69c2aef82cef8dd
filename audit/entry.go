// Package audit is the append-only, hash-chained, MAC'd JSONL log of every access.
//
// Each line is one canonical JSON object. "prev" is the sha256 of the previous line's
// bytes and "mac" is HMAC-SHA256, under a key derived from the store identity, over the
// line without its mac field. The caller pins the head {seq, hash} somewhere the log's
// writer cannot forge (the encrypted leases file), so cutting lines from the end is seen.
//
// A Log does no locking of its own: every method expects the store lock held.
package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/agent-secrets/secrets/internal/codec"
)

// Entry is one audit record. Values and hook output never belong in any field.
type Entry struct {
	Seq uint64 `json:"seq"`
	// Txn is the seq of the last line of the batch the entry was appended in: a commit is
	// all of its lines or none of them, and a crash can leave a prefix of a batch, whole
	// lines included, which replay must not apply. Lines of older releases have none.
	Txn      uint64    `json:"txn,omitempty"`
	TS       time.Time `json:"ts"`
	Event    string    `json:"event"`
	Secret   string    `json:"secret,omitempty"`
	LeaseID  string    `json:"lease_id,omitempty"`
	ClientID string    `json:"client_id,omitempty"`
	// Holder is the OS user a guarded store granted the entry's lease to (lease.UID),
	// which is what an agent user's own view of the log goes by; 0 elsewhere.
	Holder int    `json:"holder,omitempty"`
	OK     bool   `json:"ok"`
	Code   string `json:"code,omitempty"`
	Detail string `json:"detail,omitempty"`
	Actor  Actor  `json:"actor"`
	// State is what replaying the entry changes, for the log as the state's write-ahead
	// log: its owner's document (a grant's lease, a lockdown, …), opaque to this package.
	State json.RawMessage `json:"state,omitempty"`
	Prev  string          `json:"prev"`
	MAC   string          `json:"mac,omitempty"`
}

// Head identifies the last line of a log: its seq and the sha256 of its bytes.
// The zero Head is the head of an empty log.
type Head struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// Keys are the MAC keys of one log. A log converted from an older release verifies
// under the key it was written with up to the entry that recorded the change (Since),
// and under Current after it; every new line is sealed under the key of its seq.
type Keys struct {
	Current []byte
	Legacy  []byte // nil when the log was never converted
	Since   uint64 // lines with seq <= Since are under Legacy
}

// For returns the key of the line with seq.
func (k Keys) For(seq uint64) []byte {
	if k.Legacy != nil && seq <= k.Since {
		return k.Legacy
	}
	return k.Current
}

// ErrTampered matches every *TamperError.
var ErrTampered = errors.New("audit log tampered")

// ErrFailed reports that an entry could not be made durable; the command must not proceed.
var ErrFailed = errors.New("audit append failed")

// TamperError reports the first seq at which the log stops being the log that was written.
type TamperError struct {
	Seq    uint64
	Reason string
}

func (e *TamperError) Error() string {
	return fmt.Sprintf("audit log tampered at seq %d: %s", e.Seq, e.Reason)
}

func (e *TamperError) Is(target error) bool { return target == ErrTampered }

const (
	hashPrefix = "sha256:"
	macPrefix  = "hmac-sha256:"
	macField   = `,"mac":"` + macPrefix
	prevField  = `"prev":"` + hashPrefix
)

// zeroHash is the prev of the first line of a log that was never reset.
var zeroHash = hashPrefix + "0000000000000000000000000000000000000000000000000000000000000000"

// lineHash is the chain link: the sha256 of a line's bytes without its newline.
func lineHash(line []byte) string {
	sum := sha256.Sum256(line)
	return hashPrefix + hex.EncodeToString(sum[:])
}

// seal encodes e canonically and appends its MAC field.
func seal(key []byte, e *Entry) ([]byte, error) {
	e.MAC = ""
	body, err := encodeEntry(e)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, key)
	m.Write(body)
	line := make([]byte, 0, len(body)+len(macField)+66)
	line = append(line, body[:len(body)-1]...)
	line = append(line, macField...)
	line = hex.AppendEncode(line, m.Sum(nil))
	line = append(line, `"}`...)
	return line, nil
}

// sealed is what a line proves about itself once its MAC checks out. Because only the
// key holder can produce a valid MAC, and it only writes canonical lines, seq and prev
// can be read from their fixed places without a full JSON decode.
type sealed struct {
	seq  uint64
	prev string
	hash string
}

// open checks a line's MAC and reads its seq and prev. It fails for any line not
// written by a holder of key.
func open(key []byte, line []byte) (sealed, error) {
	i := bytes.LastIndex(line, []byte(macField))
	if i < 0 || len(line) != i+len(macField)+64+2 || !bytes.HasSuffix(line, []byte(`"}`)) {
		return sealed{}, errors.New("malformed line")
	}
	want := make([]byte, 32)
	if _, err := hex.Decode(want, line[i+len(macField):len(line)-2]); err != nil {
		return sealed{}, errors.New("malformed mac")
	}
	m := hmac.New(sha256.New, key)
	m.Write(line[:i])
	m.Write([]byte{'}'})
	if !hmac.Equal(m.Sum(nil), want) {
		return sealed{}, errors.New("mac mismatch")
	}
	body := line[:i]
	const seqKey = `{"seq":`
	if !bytes.HasPrefix(body, []byte(seqKey)) {
		return sealed{}, errors.New("malformed seq")
	}
	end := bytes.IndexByte(body, ',')
	seq, err := strconv.ParseUint(string(body[len(seqKey):end]), 10, 64)
	if err != nil {
		return sealed{}, errors.New("malformed seq")
	}
	p := len(body) - len(prevField) - 64 - 1
	if p < 0 || !bytes.HasPrefix(body[p:], []byte(prevField)) {
		return sealed{}, errors.New("malformed prev")
	}
	return sealed{seq: seq, prev: string(body[p+len(`"prev":"`) : len(body)-1]), hash: lineHash(line)}, nil
}

// open checks a line under the key of the seq it claims, which is read first unchecked:
// a line that lies about its seq gets the wrong key and fails.
func (l *Log) open(line []byte) (sealed, error) {
	const seqKey = `{"seq":`
	seq := uint64(0)
	if bytes.HasPrefix(line, []byte(seqKey)) {
		if end := bytes.IndexByte(line, ','); end > len(seqKey) {
			seq, _ = strconv.ParseUint(string(line[len(seqKey):end]), 10, 64)
		}
	}
	return open(l.keys.For(seq), line)
}

// Open checks line (without its newline) under the log's keys and returns its head. It is
// false for a line the log's key holder did not write.
func (l *Log) Open(line []byte) (Head, bool) {
	s, err := l.open(line)
	if err != nil {
		return Head{}, false
	}
	return Head{Seq: s.seq, Hash: s.hash}, true
}

// encodeEntry writes e as encoding/json would (TestEncodeEntryAsJSON holds it to that),
// but without reflection, which costs a fresh process its first use of the types: every
// command appends. HTML characters are not escaped: the log is read by people and
// tools, not put in a page.
func encodeEntry(e *Entry) ([]byte, error) {
	if y := e.TS.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("time %v out of range", e.TS)
	}
	if len(e.State) > 0 && !json.Valid(e.State) {
		return nil, errors.New("state is not JSON")
	}
	b := make([]byte, 0, 512)
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	if e.Txn != 0 {
		b = append(b, `,"txn":`...)
		b = strconv.AppendUint(b, e.Txn, 10)
	}
	b = append(b, `,"ts":"`...)
	b = codec.AppendTime(b, e.TS)
	b = append(b, `","event":`...)
	b = codec.AppendString(b, e.Event)
	for _, f := range []struct{ key, v string }{{`,"secret":`, e.Secret}, {`,"lease_id":`, e.LeaseID}, {`,"client_id":`, e.ClientID}} {
		if f.v != "" {
			b = append(b, f.key...)
			b = codec.AppendString(b, f.v)
		}
	}
	if e.Holder != 0 {
		b = append(b, `,"holder":`...)
		b = strconv.AppendInt(b, int64(e.Holder), 10)
	}
	b = append(b, `,"ok":`...)
	b = strconv.AppendBool(b, e.OK)
	if e.Code != "" {
		b = append(b, `,"code":`...)
		b = codec.AppendString(b, e.Code)
	}
	if e.Detail != "" {
		b = append(b, `,"detail":`...)
		b = codec.AppendString(b, e.Detail)
	}
	a := e.Actor
	b = append(b, `,"actor":{"pid":`...)
	b = strconv.AppendInt(b, int64(a.PID), 10)
	b = append(b, `,"ppid":`...)
	b = strconv.AppendInt(b, int64(a.PPID), 10)
	b = append(b, `,"parent":`...)
	b = codec.AppendString(b, a.Parent)
	b = append(b, `,"uid":`...)
	b = strconv.AppendInt(b, int64(a.UID), 10)
	b = append(b, `,"cwd":`...)
	b = codec.AppendString(b, a.CWD)
	if a.Agent != "" {
		b = append(b, `,"agent":`...)
		b = codec.AppendString(b, a.Agent)
	}
	b = append(b, '}')
	if len(e.State) > 0 {
		b = append(b, `,"state":`...)
		b = append(b, e.State...)
	}
	b = append(b, `,"prev":`...)
	b = codec.AppendString(b, e.Prev)
	return append(b, '}'), nil
}
