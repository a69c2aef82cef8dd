package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/agent-secrets/secrets/lease"
)

// Duration is a time.Duration written in config.json as a string such as "1h" or "30m".
type Duration time.Duration

// MarshalJSON writes the shortest form of the duration ("24h", not "24h0m0s").
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(lease.FormatDuration(time.Duration(d)))
}

// UnmarshalJSON accepts only a string in Go duration syntax, with "d" for days.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("must be a duration string such as \"1h\"")
	}
	v, err := lease.ParseDuration(s)
	if err != nil {
		return err
	}
	if v <= 0 {
		return fmt.Errorf("must be greater than zero, got %q", s)
	}
	*d = Duration(v)
	return nil
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
	Directory       string    `json:"directory,omitempty"`
	SocketPath      string    `json:"socket_path,omitempty"`
	DefaultLeaseTTL Duration  `json:"default_lease_ttl"`
	MaxLeaseTTL     Duration  `json:"max_lease_ttl"`
	RotationTimeout Duration  `json:"rotation_timeout"`
	LockTimeout     Duration  `json:"lock_timeout"`
	Heartbeat       Heartbeat `json:"heartbeat"`
}

// DefaultConfig returns the configuration `init` writes.
func DefaultConfig(dir string) Config {
	return Config{
		Directory:       dir,
		DefaultLeaseTTL: Duration(time.Hour),
		MaxLeaseTTL:     Duration(24 * time.Hour),
		RotationTimeout: Duration(30 * time.Second),
		LockTimeout:     Duration(10 * time.Second),
		Heartbeat: Heartbeat{
			Interval:             Duration(time.Minute),
			Timeout:              Duration(10 * time.Second),
			FailuresBeforeAction: 3,
			FailAction:           FailAction{RevokeAll: true},
		},
	}
}

// ParseConfig decodes config.json over the defaults. Keys that are absent keep their
// default; an unknown key or an invalid value is a *ConfigError naming the key, because a
// misspelt max_lease_ttl that is silently ignored would widen access unnoticed.
func ParseConfig(path, dir string, data []byte) (Config, error) {
	c := DefaultConfig(dir)
	if err := decodeStrict(data, &c, ""); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			ce.Path = path
			return c, ce
		}
		return c, &ConfigError{Path: path, Err: err}
	}
	if c.DefaultLeaseTTL > c.MaxLeaseTTL {
		return c, &ConfigError{Path: path, Key: "default_lease_ttl",
			Err: fmt.Errorf("%s is more than max_lease_ttl %s",
				lease.FormatDuration(time.Duration(c.DefaultLeaseTTL)), lease.FormatDuration(time.Duration(c.MaxLeaseTTL)))}
	}
	if c.Heartbeat.FailuresBeforeAction < 1 {
		return c, &ConfigError{Path: path, Key: "heartbeat.failures_before_action", Err: errors.New("must be at least 1")}
	}
	if c.Heartbeat.Enabled && !strings.HasPrefix(c.Heartbeat.URL, "http://") && !strings.HasPrefix(c.Heartbeat.URL, "https://") {
		return c, &ConfigError{Path: path, Key: "heartbeat.url", Err: errors.New("must be an http:// or https:// URL when heartbeat is enabled")}
	}
	return c, nil
}

// decodeStrict decodes a JSON object into the struct v key by key, so that an error can
// name the key (prefix.key) that caused it, and rejects keys v does not have.
func decodeStrict(data []byte, v any, prefix string) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		if prefix == "" {
			return fmt.Errorf("not a JSON object: %w", err)
		}
		return &ConfigError{Key: strings.TrimSuffix(prefix, "."), Err: errors.New("must be an object")}
	}
	fields := jsonFields(v)
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		dst, ok := fields[k]
		if !ok {
			return &ConfigError{Key: prefix + k, Err: errors.New("unknown key")}
		}
		var err error
		switch d := dst.(type) {
		case *Heartbeat, *FailAction:
			err = decodeStrict(raw[k], d, prefix+k+".")
		default:
			dec := json.NewDecoder(bytes.NewReader(raw[k]))
			if err = dec.Decode(d); err != nil {
				var te *json.UnmarshalTypeError
				if errors.As(err, &te) {
					err = fmt.Errorf("must be a %s", te.Type)
				}
			}
		}
		if err != nil {
			var ce *ConfigError
			if errors.As(err, &ce) {
				return ce
			}
			return &ConfigError{Key: prefix + k, Err: err}
		}
	}
	return nil
}

// jsonFields maps each JSON key of the config structs to a pointer to its field.
func jsonFields(v any) map[string]any {
	switch c := v.(type) {
	case *Config:
		return map[string]any{
			"directory": &c.Directory, "socket_path": &c.SocketPath,
			"default_lease_ttl": &c.DefaultLeaseTTL, "max_lease_ttl": &c.MaxLeaseTTL,
			"rotation_timeout": &c.RotationTimeout, "lock_timeout": &c.LockTimeout,
			"heartbeat": &c.Heartbeat,
		}
	case *Heartbeat:
		return map[string]any{
			"enabled": &c.Enabled, "url": &c.URL, "interval": &c.Interval, "timeout": &c.Timeout,
			"failures_before_action": &c.FailuresBeforeAction, "fail_action": &c.FailAction,
		}
	case *FailAction:
		return map[string]any{"revoke_all": &c.RevokeAll, "rotate_all": &c.RotateAll, "wipe_store": &c.WipeStore}
	}
	return nil
}
