package store

import (
	"encoding/json"
	"errors"
	"fmt"
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
	d := &decoder{b: string(data)}
	if d.next() != '{' {
		return c, &ConfigError{Path: path, Err: errors.New("not a JSON object")}
	}
	err := c.decode(d)
	if err == nil {
		if d.ws(); d.i != len(d.b) {
			err = d.errorf("data after the object")
		}
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

func (c *Config) decode(d *decoder) error {
	return d.object(func(key string) error {
		var err error
		switch key {
		case "directory":
			err = d.text(&c.Directory)
		case "socket_path":
			err = d.text(&c.SocketPath)
		case "default_lease_ttl":
			err = d.duration(&c.DefaultLeaseTTL)
		case "max_lease_ttl":
			err = d.duration(&c.MaxLeaseTTL)
		case "rotation_timeout":
			err = d.duration(&c.RotationTimeout)
		case "lock_timeout":
			err = d.duration(&c.LockTimeout)
		case "heartbeat":
			err = d.section(c.Heartbeat.decode)
		case "canary_action":
			err = d.section(c.CanaryAction.decode)
		default:
			err = errors.New("unknown key")
		}
		return inKey(key, err)
	})
}

func (h *Heartbeat) decode(d *decoder) error {
	return d.object(func(key string) error {
		var err error
		switch key {
		case "enabled":
			err = d.boolean(&h.Enabled)
		case "url":
			err = d.text(&h.URL)
		case "interval":
			err = d.duration(&h.Interval)
		case "timeout":
			err = d.duration(&h.Timeout)
		case "failures_before_action":
			err = d.integer(&h.FailuresBeforeAction)
		case "fail_action":
			err = d.section(h.FailAction.decode)
		default:
			err = errors.New("unknown key")
		}
		return inKey(key, err)
	})
}

func (f *FailAction) decode(d *decoder) error {
	return d.object(func(key string) error {
		var err error
		switch key {
		case "revoke_all":
			err = d.boolean(&f.RevokeAll)
		case "rotate_all":
			err = d.boolean(&f.RotateAll)
		case "wipe_store":
			err = d.boolean(&f.WipeStore)
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

// duration reads a config duration: a string in Go syntax (with d for days), above zero.
func (d *decoder) duration(dst *Duration) error {
	var s string
	if d.next() != '"' {
		if d.null() {
			return nil
		}
		return errors.New("must be a duration string such as \"1h\"")
	}
	if err := d.text(&s); err != nil {
		return err
	}
	v, err := lease.ParseDuration(s)
	if err != nil {
		return err
	}
	if v <= 0 {
		return fmt.Errorf("must be greater than zero, got %q", s)
	}
	*dst = Duration(v)
	return nil
}

// section reads a nested object, or leaves it as it is for null.
func (d *decoder) section(decode func(*decoder) error) error {
	switch d.next() {
	case '{':
		return decode(d)
	case 'n':
		if d.null() {
			return nil
		}
	}
	return errors.New("must be an object")
}
