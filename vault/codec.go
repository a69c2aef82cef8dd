package vault

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/agent-secrets/secrets/internal/codec"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/store"
)

// Leases are encoded and decoded here by hand instead of with encoding/json's reflection,
// which cost about 4 µs a lease to decode and 2 µs to encode, more than the rest of a
// call at 1,000 leases. The bytes are still plain JSON, and FuzzStateCodec holds the
// codec to encoding/json: whatever the decoders accept, encoding/json reads the same way,
// and encoding/json reads the encoders' output back exactly. Keys they do not know are an
// error, never skipped. (The version 1 leases.age of the release before the store key is
// also read and, for audit --verify's finding on an unconverted store, written here.)

// stateFields maps the keys of leases.age other than "leases" to their fields. These are
// small and decoded with encoding/json from their raw bytes.
func (s *legacyState) stateFields() []struct {
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

// encodeLegacy writes a version 1 state as one JSON object, leases last.
func encodeLegacy(s *legacyState) ([]byte, error) {
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
		b = codec.AppendString(b, f.key)
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
	b = codec.AppendString(b, l.ID)
	b = append(b, `,"secret":`...)
	b = codec.AppendString(b, l.Secret)
	b = append(b, `,"client_id":`...)
	b = codec.AppendString(b, l.ClientID)
	for _, t := range []struct {
		key string
		t   time.Time
	}{{`,"created_at":"`, l.CreatedAt}, {`,"expires_at":"`, l.ExpiresAt}} {
		if y := t.t.Year(); y < 0 || y > 9999 {
			return nil, fmt.Errorf("encode lease %s: year %d out of range", l.ID, y)
		}
		b = append(b, t.key...)
		b = codec.AppendTime(b, t.t)
		b = append(b, '"')
	}
	b = append(b, `,"ttl":`...)
	b = codec.AppendString(b, l.TTL)
	b = append(b, `,"kind":`...)
	b = codec.AppendString(b, string(l.Kind))
	if l.Path != "" {
		b = append(b, `,"path":`...)
		b = codec.AppendString(b, l.Path)
	}
	if l.PID != 0 {
		b = append(b, `,"pid":`...)
		b = strconv.AppendInt(b, int64(l.PID), 10)
	}
	if l.PIDStart != 0 {
		b = append(b, `,"pid_start":`...)
		b = strconv.AppendUint(b, l.PIDStart, 10)
	}
	if l.UID != 0 {
		b = append(b, `,"uid":`...)
		b = strconv.AppendInt(b, int64(l.UID), 10)
	}
	return append(b, '}'), nil
}

// decodeLegacy parses a version 1 leases.age. Any syntax error, unknown key or wrong type
// is store.ErrCorrupt.
func decodeLegacy(name string, data []byte) (*legacyState, error) {
	s := &legacyState{}
	d := codec.NewDecoder(data)
	err := d.Object(func(key string) error {
		if key == "leases" {
			return decodeLeases(d, &s.Leases)
		}
		for _, f := range s.stateFields() {
			if f.key == key {
				raw, err := d.Raw()
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
		err = d.End()
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", store.ErrCorrupt, name, err)
	}
	if s.Version != 1 {
		return nil, fmt.Errorf("%w: %s: unknown version %d", store.ErrCorrupt, name, s.Version)
	}
	return s, nil
}

// leases reads an array of lease objects.
func decodeLeases(d *codec.Decoder, out *[]lease.Lease) error {
	if d.Null() {
		*out = nil
		return nil
	}
	ls := make([]lease.Lease, 0, d.Remaining()/160) // a lease is ~190 bytes of JSON
	err := d.Array(func() error {
		var l lease.Lease
		if err := d.Object(func(key string) error { return decodeLeaseField(d, &l, key) }); err != nil {
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

func decodeLeaseField(d *codec.Decoder, l *lease.Lease, key string) error {
	if d.Null() {
		return nil
	}
	var err error
	switch key {
	case "id":
		l.ID, err = d.Str()
	case "secret":
		l.Secret, err = d.Str()
	case "client_id":
		l.ClientID, err = d.Str()
	case "ttl":
		l.TTL, err = d.Str()
	case "kind":
		var k string
		k, err = d.Str()
		l.Kind = lease.Kind(k)
	case "path":
		l.Path, err = d.Str()
	case "created_at", "expires_at":
		var s string
		if s, err = d.Str(); err != nil {
			return err
		}
		t := &l.CreatedAt
		if key == "expires_at" {
			t = &l.ExpiresAt
		}
		if err := codec.ParseTime(t, s); err != nil {
			return d.Errorf("%s: %v", key, err)
		}
	case "pid":
		var n int64
		n, err = d.Int()
		l.PID = int(n)
	case "pid_start":
		l.PIDStart, err = d.Uint()
	case "uid":
		var n int64
		n, err = d.Int()
		l.UID = int(n)
	default:
		return d.Errorf("unknown lease key %q", key)
	}
	return err
}
