package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/agent-secrets/secrets/internal/codec"
	"github.com/agent-secrets/secrets/internal/duration"
)

// Duration is a time.Duration written in config.json as a string such as "1h" or "30m".
type Duration time.Duration

// MarshalJSON writes the shortest form of the duration ("24h", not "24h0m0s").
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(duration.Format(time.Duration(d)))
}

// FailAction says what the heartbeat does when the endpoint stops answering.
type FailAction struct {
	RevokeAll bool `json:"revoke_all"`
	RotateAll bool `json:"rotate_all"`
	WipeStore bool `json:"wipe_store"`
}

// Heartbeat configures `secrets watch`.
type Heartbeat struct {
	Enabled              bool       `json:"enabled"`
	URL                  string     `json:"url"`
	Interval             Duration   `json:"interval"`
	Timeout              Duration   `json:"timeout"`
	FailuresBeforeAction int        `json:"failures_before_action"`
	FailAction           FailAction `json:"fail_action"`
}

// Config is config.json. Keys and string durations follow the earlier tool; socket_path
// is read and ignored because there is no daemon.
type Config struct {
	Directory       string   `json:"directory,omitempty"`
	SocketPath      string   `json:"socket_path,omitempty"`
	DefaultLeaseTTL Duration `json:"default_lease_ttl"`
	MaxLeaseTTL     Duration `json:"max_lease_ttl"`
	RotationTimeout Duration `json:"rotation_timeout"`
	LockTimeout     Duration `json:"lock_timeout"`
	// AuditRotateSize is the size at which the audit log's current segment is sealed and a
	// new one started (secrets audit --rotate does it by hand); 0 never. A size in bytes,
	// or a string such as "8MiB".
	AuditRotateSize Size      `json:"audit_rotate_size"`
	Heartbeat       Heartbeat `json:"heartbeat"`
	// CanaryAction is what leasing a canary secret fires, besides the lockdown it always causes.
	CanaryAction FailAction `json:"canary_action"`
}

// DefaultConfig returns the configuration `init` writes.
func DefaultConfig(dir string) Config {
	return Config{
		Directory:       dir,
		DefaultLeaseTTL: Duration(time.Hour),
		MaxLeaseTTL:     Duration(24 * time.Hour),
		RotationTimeout: Duration(30 * time.Second),
		LockTimeout:     Duration(10 * time.Second),
		AuditRotateSize: 8 << 20,
		Heartbeat: Heartbeat{
			Interval:             Duration(time.Minute),
			Timeout:              Duration(10 * time.Second),
			FailuresBeforeAction: 3,
			FailAction:           FailAction{RevokeAll: true},
		},
		CanaryAction: FailAction{RevokeAll: true},
	}
}

// ParseConfig decodes config.json over the defaults. Keys that are absent keep their
// default; an unknown key or an invalid value is a *ConfigError naming the key, because a
// misspelt max_lease_ttl that is silently ignored would widen access unnoticed. It is
// read on every call, so it walks the JSON directly rather than through reflection.
func ParseConfig(path, dir string, data []byte) (Config, error) {
	c := DefaultConfig(dir)
	d := codec.NewDecoder(data)
	if d.Next() != '{' {
		return c, &ConfigError{Path: path, Err: errors.New("not a JSON object")}
	}
	err := c.decode(d)
	if err == nil {
		err = d.End()
	}
	if err != nil {
		ce, ok := err.(*ConfigError)
		if !ok {
			ce = &ConfigError{Err: err}
		}
		ce.Path = path
		return c, ce
	}
	if c.DefaultLeaseTTL > c.MaxLeaseTTL {
		return c, &ConfigError{Path: path, Key: "default_lease_ttl",
			Err: fmt.Errorf("%s is more than max_lease_ttl %s",
				duration.Format(time.Duration(c.DefaultLeaseTTL)), duration.Format(time.Duration(c.MaxLeaseTTL)))}
	}
	if c.Heartbeat.FailuresBeforeAction < 1 {
		return c, &ConfigError{Path: path, Key: "heartbeat.failures_before_action", Err: errors.New("must be at least 1")}
	}
	if c.Heartbeat.Enabled && !strings.HasPrefix(c.Heartbeat.URL, "http://") && !strings.HasPrefix(c.Heartbeat.URL, "https://") {
		return c, &ConfigError{Path: path, Key: "heartbeat.url", Err: errors.New("must be an http:// or https:// URL when heartbeat is enabled")}
	}
	return c, nil
}

func (c *Config) decode(d *codec.Decoder) error {
	return d.Object(func(key string) error {
		var err error
		switch key {
		case "directory":
			err = d.Text(&c.Directory)
		case "socket_path":
			err = d.Text(&c.SocketPath)
		case "default_lease_ttl":
			err = readDuration(d, &c.DefaultLeaseTTL)
		case "max_lease_ttl":
			err = readDuration(d, &c.MaxLeaseTTL)
		case "rotation_timeout":
			err = readDuration(d, &c.RotationTimeout)
		case "lock_timeout":
			err = readDuration(d, &c.LockTimeout)
		case "audit_rotate_size":
			err = readSize(d, &c.AuditRotateSize)
		case "heartbeat":
			err = section(d, c.Heartbeat.decode)
		case "canary_action":
			err = section(d, c.CanaryAction.decode)
		default:
			err = errors.New("unknown key")
		}
		return inKey(key, err)
	})
}

func (h *Heartbeat) decode(d *codec.Decoder) error {
	return d.Object(func(key string) error {
		var err error
		switch key {
		case "enabled":
			err = d.Bool(&h.Enabled)
		case "url":
			err = d.Text(&h.URL)
		case "interval":
			err = readDuration(d, &h.Interval)
		case "timeout":
			err = readDuration(d, &h.Timeout)
		case "failures_before_action":
			err = d.Integer(&h.FailuresBeforeAction)
		case "fail_action":
			err = section(d, h.FailAction.decode)
		default:
			err = errors.New("unknown key")
		}
		return inKey(key, err)
	})
}

func (f *FailAction) decode(d *codec.Decoder) error {
	return d.Object(func(key string) error {
		var err error
		switch key {
		case "revoke_all":
			err = d.Bool(&f.RevokeAll)
		case "rotate_all":
			err = d.Bool(&f.RotateAll)
		case "wipe_store":
			err = d.Bool(&f.WipeStore)
		default:
			err = errors.New("unknown key")
		}
		return inKey(key, err)
	})
}

// inKey names the key an error belongs to, prefixing the keys of nested sections.
func inKey(key string, err error) error {
	if err == nil {
		return nil
	}
	if ce, ok := err.(*ConfigError); ok {
		ce.Key = key + "." + ce.Key
		return ce
	}
	return &ConfigError{Key: key, Err: err}
}

// Size is a number of bytes, written in config.json as a string such as "8MiB".
type Size int64

// MarshalJSON writes the size in the largest unit that divides it.
func (z Size) MarshalJSON() ([]byte, error) {
	for _, u := range []struct {
		name string
		n    int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if z > 0 && int64(z)%u.n == 0 {
			return json.Marshal(fmt.Sprintf("%d%s", int64(z)/u.n, u.name))
		}
	}
	return json.Marshal(int64(z))
}

// minRotateSize keeps a segment from being sealed after every few commands.
const minRotateSize = 64 << 10

// readSize reads a size: a number of bytes, or a string of digits and KiB, MiB or GiB;
// 0 (never), or at least 64KiB.
func readSize(d *codec.Decoder, dst *Size) error {
	bad := errors.New(`must be 0 (never) or a size of at least 64KiB, such as 8388608 or "8MiB"`)
	var n int64
	if d.Next() == '"' {
		var s string
		if err := d.Text(&s); err != nil {
			return err
		}
		mult := int64(1)
		for _, u := range []struct {
			name string
			n    int64
		}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
			if t, ok := strings.CutSuffix(s, u.name); ok {
				s, mult = t, u.n
				break
			}
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 || v > 1<<40/mult {
			return bad
		}
		n = v * mult
	} else {
		v, err := d.Int()
		if err != nil {
			return bad
		}
		n = v
	}
	if n != 0 && (n < minRotateSize || n > 1<<40) {
		return bad
	}
	*dst = Size(n)
	return nil
}

// readDuration reads a config duration: a string in internal/duration's syntax, above
// zero. null leaves dst as it is.
func readDuration(d *codec.Decoder, dst *Duration) error {
	if d.Null() {
		return nil
	}
	if d.Next() != '"' {
		return errors.New("must be a duration string such as \"1h\"")
	}
	var s string
	if err := d.Text(&s); err != nil {
		return err
	}
	v, err := duration.Positive(s)
	if err != nil {
		return err
	}
	*dst = Duration(v)
	return nil
}

// section reads a nested object, or leaves it as it is for null.
func section(d *codec.Decoder, decode func(*codec.Decoder) error) error {
	if d.Null() {
		return nil
	}
	if d.Next() == '{' {
		return decode(d)
	}
	return errors.New("must be an object")
}
