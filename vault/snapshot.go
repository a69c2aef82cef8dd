package vault

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agent-secrets/secrets/internal/codec"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/store"
)

// leases.age version 3 is one JSON object that age -d shows as it is:
//
//	{"version":3,"store_key":"sk1:…","position":{…},…,"count":130,"next_expiry":"…","mac":"hmac-sha256:…","leases":[
//	{"id":"lease_…",…},
//	… one lease a line, in order of expiry; every 64th line, and the last, ends its block
//	{"id":"lease_…",…,"block_mac":"hmac-sha256:…"}
//	]}
//
// The header line's MAC covers every header field. Each block of 64 leases carries a MAC
// over its lines, bound to the header's MAC and the block's index, so that a command which
// only needs the leases that have expired reads and checks the blocks at the front and
// stops at the first one that reaches past now, and a block cannot be moved from another
// snapshot or another place. A whole read checks every block and the count.

const (
	blockSize    = 64
	snapshotHead = `{"version":3,`
	leasesOpen   = `,"leases":[`
	leasesClose  = "]}\n"
	blockMACKey  = `,"block_mac":"`
)

func blockMAC(key []byte, headerMAC string, index int, block []byte) string {
	return store.MAC(key, []byte("secrets state block v1\x00"), []byte(headerMAC), []byte{0}, strconv.AppendInt(nil, int64(index), 10), []byte{0}, block)
}

// encodeSnapshot writes s and leases as leases.age version 3, MAC'd with key. It sets
// s's Version, Count, NextExpiry and MAC, and sorts leases by expiry.
func encodeSnapshot(s *State, leases []lease.Lease, key []byte) ([]byte, error) {
	slices.SortFunc(leases, func(a, b lease.Lease) int {
		if c := a.ExpiresAt.Compare(b.ExpiresAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	s.Version, s.Count, s.NextExpiry = StateVersion, len(leases), time.Time{}
	if len(leases) > 0 {
		s.NextExpiry = leases[0].ExpiresAt.UTC()
	}
	head, err := encodeHeader(s)
	if err != nil {
		return nil, err
	}
	s.MAC = store.MAC(key, []byte("secrets state header v1\x00"), head)
	b := make([]byte, 0, len(head)+128+len(leases)*200)
	b = append(b, head...)
	b = append(b, `,"mac":"`...)
	b = append(b, s.MAC...)
	b = append(b, '"')
	b = append(b, leasesOpen...)
	b = append(b, '\n')
	start := len(b)
	for i, l := range leases {
		if b, err = appendLease(b, l); err != nil {
			return nil, err
		}
		if i%blockSize == blockSize-1 || i == len(leases)-1 {
			b = b[:len(b)-1] // the closing brace: the block's MAC goes before it
			mac := blockMAC(key, s.MAC, i/blockSize, b[start:])
			b = append(b, blockMACKey...)
			b = append(b, mac...)
			b = append(b, `"}`...)
			if i < len(leases)-1 {
				b = append(b, ',')
			}
			b = append(b, '\n')
			start = len(b)
			continue
		}
		b = append(b, ",\n"...)
	}
	return append(b, leasesClose...), nil
}

// encodeHeader writes the header fields, from "{" up to (not including) the MAC.
func encodeHeader(s *State) ([]byte, error) {
	b := make([]byte, 0, 512)
	b = append(b, snapshotHead...)
	b = append(b, `"store_key":`...)
	b = codec.AppendString(b, s.StoreKey)
	if s.KeyCache != "" {
		b = append(b, `,"store_key_cache":`...)
		b = codec.AppendString(b, s.KeyCache)
	}
	b = append(b, `,"position":{"seq":`...)
	b = strconv.AppendUint(b, s.Position.Seq, 10)
	b = append(b, `,"hash":`...)
	b = codec.AppendString(b, s.Position.Hash)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, s.Position.Offset, 10)
	b = append(b, '}')
	if s.AuditKeySince > 0 {
		b = append(b, `,"audit_key_since":`...)
		b = strconv.AppendUint(b, s.AuditKeySince, 10)
	}
	b = append(b, `,"secrets_generation":`...)
	b = strconv.AppendUint(b, s.SecretsGeneration, 10)
	if s.AuditBroken != "" {
		b = append(b, `,"audit_broken":`...)
		b = codec.AppendString(b, s.AuditBroken)
	}
	if s.ResetFrom.Seq > 0 || s.ResetFrom.Hash != "" {
		b = append(b, `,"reset_from":{"seq":`...)
		b = strconv.AppendUint(b, s.ResetFrom.Seq, 10)
		b = append(b, `,"hash":`...)
		b = codec.AppendString(b, s.ResetFrom.Hash)
		b = append(b, '}')
	}
	if s.AppliedIntent != "" {
		b = append(b, `,"applied_intent":`...)
		b = codec.AppendString(b, s.AppliedIntent)
	}
	for _, f := range []struct {
		key  string
		v    any
		skip bool
	}{
		{"env_files", s.EnvFiles, len(s.EnvFiles) == 0},
		{"lockdown", s.Lockdown, s.Lockdown == nil},
		{"heartbeat", s.Heartbeat, s.Heartbeat == nil},
		{"witness", s.Witness, s.Witness == nil},
		{"converted", s.Converted, s.Converted == nil},
		{"sealed", s.Sealed, len(s.Sealed) == 0},
		{"requests", s.Requests, len(s.Requests) == 0},
		{"hook_changes", s.HookChanges, len(s.HookChanges) == 0},
		{"rotations", s.Rotations, len(s.Rotations) == 0},
		{"pruner", s.Pruner, s.Pruner == nil},
	} {
		if f.skip {
			continue
		}
		v, err := json.Marshal(f.v)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", f.key, err)
		}
		b = append(b, ',')
		b = codec.AppendString(b, f.key)
		b = append(b, ':')
		b = append(b, v...)
	}
	if len(s.Uses) > 0 {
		b = append(b, `,"uses":`...)
		b = appendUses(b, s.Uses)
	}
	if s.Config != nil {
		b = append(b, `,"config":`...)
		b = appendConfig(b, s.Config)
	}
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, int64(s.Count), 10)
	b = append(b, `,"next_expiry":"`...)
	b = codec.AppendTime(b, s.NextExpiry)
	return append(b, '"'), nil
}

// decodeHeader reads the header fields from the header line's bytes before the MAC.
func decodeHeader(head []byte) (*State, error) {
	s := &State{}
	d := codec.NewDecoder(append(slices.Clone(head), '}'))
	err := d.Object(func(key string) error {
		var err error
		switch key {
		case "version":
			var n int64
			n, err = d.Int()
			s.Version = int(n)
		case "store_key":
			err = d.Text(&s.StoreKey)
		case "store_key_cache":
			err = d.Text(&s.KeyCache)
		case "applied_intent":
			err = d.Text(&s.AppliedIntent)
		case "reset_from":
			err = d.Object(func(k string) error {
				switch k {
				case "seq":
					v, err := d.Uint()
					s.ResetFrom.Seq = v
					return err
				case "hash":
					return d.Text(&s.ResetFrom.Hash)
				}
				return fmt.Errorf("unknown key reset_from.%s", k)
			})
		case "position":
			err = d.Object(func(k string) error {
				switch k {
				case "seq":
					v, err := d.Uint()
					s.Position.Seq = v
					return err
				case "hash":
					return d.Text(&s.Position.Hash)
				case "offset":
					v, err := d.Int()
					s.Position.Offset = v
					return err
				}
				return fmt.Errorf("unknown position key %q", k)
			})
		case "audit_key_since":
			s.AuditKeySince, err = d.Uint()
		case "secrets_generation":
			s.SecretsGeneration, err = d.Uint()
		case "audit_broken":
			err = d.Text(&s.AuditBroken)
		case "env_files", "lockdown", "heartbeat", "witness", "converted", "sealed", "requests", "hook_changes", "rotations", "pruner":
			raw, rerr := d.Raw()
			if rerr != nil {
				return rerr
			}
			ptr := map[string]any{"env_files": &s.EnvFiles, "lockdown": &s.Lockdown, "heartbeat": &s.Heartbeat, "witness": &s.Witness, "converted": &s.Converted, "sealed": &s.Sealed,
				"requests": &s.Requests, "hook_changes": &s.HookChanges, "rotations": &s.Rotations, "pruner": &s.Pruner}[key]
			err = json.Unmarshal(raw, ptr)
		case "uses":
			err = decodeUses(d, &s.Uses)
		case "config":
			s.Config = &AppliedConfig{}
			err = decodeConfig(d, s.Config)
		case "count":
			var n int64
			n, err = d.Int()
			s.Count = int(n)
		case "next_expiry":
			var v string
			if v, err = d.Str(); err == nil {
				err = codec.ParseTime(&s.NextExpiry, v)
			}
		default:
			err = fmt.Errorf("unknown key %q", key)
		}
		return err
	})
	if err == nil {
		err = d.End()
	}
	return s, err
}

// snapshotFile is leases.age version 3 as read: its checked header, and its leases read
// on demand.
type snapshotFile struct {
	path      string
	r         io.ReaderAt
	size      int64
	bodyStart int64
	key       []byte
	state     *State
}

// errLegacySnapshot reports a leases.age of a release before version 3.
var errLegacySnapshot = errors.New("leases.age of an older release")

// openSnapshot reads leases.age's header and checks its MAC under the key keyFor gives
// for it: keyFor sees the header unchecked, for its key cache (store.UseKeyCache), which
// it must take for a hint only. A missing file is fs.ErrNotExist; one in an older format
// is errLegacySnapshot; one whose MAC does not check out (anyone with the public key can
// write an age file) is store.ErrCorrupt.
func openSnapshot(st *store.Store, keyFor func(unchecked *State) ([]byte, error)) (*snapshotFile, io.Closer, error) {
	r, size, closer, err := st.OpenState()
	if err != nil {
		return nil, nil, err
	}
	path := st.Path(store.LeasesFile)
	f := &snapshotFile{path: path, r: r, size: size}
	corrupt := func(why string) (*snapshotFile, io.Closer, error) {
		closer.Close()
		return nil, nil, fmt.Errorf("%w: %s: %s", store.ErrCorrupt, path, why)
	}
	line, err := store.LineAt(r, size, 0)
	if !bytes.HasPrefix(line, []byte(snapshotHead)) {
		closer.Close()
		return nil, nil, errLegacySnapshot
	}
	if err != nil {
		return corrupt(err.Error())
	}
	i := bytes.LastIndex(line, []byte(`,"mac":"`))
	if i < 0 || !bytes.HasSuffix(line, []byte(`"`+leasesOpen)) || i+len(`,"mac":"`) > len(line)-len(`"`+leasesOpen) {
		return corrupt("malformed header")
	}
	mac := string(line[i+len(`,"mac":"`) : len(line)-len(`"`+leasesOpen)])
	s, err := decodeHeader(line[:i])
	if err != nil {
		return corrupt(err.Error())
	}
	key, err := keyFor(s)
	if err != nil {
		closer.Close()
		return nil, nil, err
	}
	if key == nil || !store.CheckMAC(mac, key, []byte("secrets state header v1\x00"), line[:i]) {
		return corrupt("its MAC does not check out: it was not written with this store's key")
	}
	f.key = key
	s.MAC = mac
	f.state, f.bodyStart = s, int64(len(line)+1)
	return f, closer, nil
}

// leases reads the snapshot's leases, checking each block: all of them when until is
// zero (and then that they are all there), else only the blocks at the front up to the
// first whose last lease expires after until. It returns the leases that expire at or
// before until (all of them for a zero until).
func (f *snapshotFile) leases(until time.Time) ([]lease.Lease, error) {
	corrupt := func(why string) ([]lease.Lease, error) {
		return nil, fmt.Errorf("%w: %s: %s", store.ErrCorrupt, f.path, why)
	}
	br := bufio.NewReaderSize(io.NewSectionReader(f.r, f.bodyStart, f.size-f.bodyStart), 16<<10)
	out := make([]lease.Lease, 0, min(f.state.Count, 4096))
	var block []byte
	index, n := 0, 0
	for {
		line, err := readLine(br)
		if err != nil {
			return corrupt(err.Error())
		}
		if string(line) == strings.TrimSuffix(leasesClose, "\n") {
			if until.IsZero() && n != f.state.Count {
				return corrupt(fmt.Sprintf("%d leases, the header says %d", n, f.state.Count))
			}
			if len(block) > 0 {
				return corrupt("the last block has no MAC")
			}
			return out, nil
		}
		line = bytes.TrimSuffix(line, []byte(","))
		l, mac, err := decodeLeaseLine(line)
		if err != nil {
			return corrupt(err.Error())
		}
		n++
		if mac == "" {
			block = append(append(block, line...), ",\n"...)
		} else {
			block = append(block, line[:bytes.LastIndex(line, []byte(blockMACKey))]...)
			if !store.CheckMAC(mac, f.key, []byte("secrets state block v1\x00"), []byte(f.state.MAC), []byte{0}, strconv.AppendInt(nil, int64(index), 10), []byte{0}, block) {
				return corrupt(fmt.Sprintf("block %d does not check out", index))
			}
			block, index = block[:0], index+1
		}
		if until.IsZero() || !l.ExpiresAt.After(until) {
			out = append(out, l)
		} else if mac != "" {
			return out, nil // every later lease expires later still
		}
	}
}

// maxLeaseLine bounds one line of the snapshot body: a lease is a few hundred bytes.
const maxLeaseLine = 1 << 20

// readLine returns the next line of br without its newline. The slice is br's own buffer
// when the line fits in it, so it is good only until the next read.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == nil {
		return line[:len(line)-1], nil
	}
	long := append([]byte(nil), line...)
	for err == bufio.ErrBufferFull {
		if len(long) > maxLeaseLine {
			return nil, errors.New("a lease line is too long")
		}
		line, err = br.ReadSlice('\n')
		long = append(long, line...)
	}
	if err != nil {
		return nil, errors.New("the leases end early")
	}
	return long[:len(long)-1], nil
}

// decodeLeaseLine reads one lease of the body and its block MAC, if it ends a block.
func decodeLeaseLine(line []byte) (lease.Lease, string, error) {
	var l lease.Lease
	mac := ""
	d := codec.NewDecoder(line)
	err := d.Object(func(key string) error {
		if key == "block_mac" {
			return d.Text(&mac)
		}
		return decodeLeaseField(d, &l, key)
	})
	if err == nil {
		err = d.End()
	}
	return l, mac, err
}

// reheader writes the snapshot again with s's header and the leases as they are: for the
// one write a damaged log allows (audit --verify's finding), which must not move the
// state's Position or change its leases.
func (f *snapshotFile) reheader(s *State, key []byte) ([]byte, error) {
	leases, err := f.leases(time.Time{})
	if err != nil {
		return nil, err
	}
	return encodeSnapshot(s, leases, key)
}
