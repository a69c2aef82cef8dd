package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/internal/codec"
	"github.com/agent-secrets/secrets/internal/duration"
	"github.com/agent-secrets/secrets/store"
)

// config.json is plain text a person edits, so it is not trusted blindly (DESIGN.md
// section 7): the values of the keys that bound a control are pinned in the MAC'd state
// as last applied, and a change to one of them that weakens the control takes effect
// only after `secrets config apply`. Until then the applied value holds and status says
// so. A change that only tightens a control takes effect at once, and is recorded.

// AppliedConfig is what the state pins of config.json: the keys that bound a control.
type AppliedConfig struct {
	DefaultLeaseTTL   time.Duration    `json:"default_lease_ttl"`
	MaxLeaseTTL       time.Duration    `json:"max_lease_ttl"`
	HeartbeatEnabled  bool             `json:"heartbeat_enabled"`
	HeartbeatURL      string           `json:"heartbeat_url"`
	HeartbeatInterval time.Duration    `json:"heartbeat_interval"`
	HeartbeatTimeout  time.Duration    `json:"heartbeat_timeout"`
	FailuresBefore    int              `json:"failures_before_action"`
	FailAction        store.FailAction `json:"fail_action"`
	CanaryAction      store.FailAction `json:"canary_action"`
	RotationTimeout   time.Duration    `json:"rotation_timeout"`
	AuditRotateSize   int64            `json:"audit_rotate_size"`
	At                time.Time        `json:"applied_at"`
}

func pinConfig(c store.Config, at time.Time) *AppliedConfig {
	h := c.Heartbeat
	return &AppliedConfig{
		DefaultLeaseTTL: time.Duration(c.DefaultLeaseTTL), MaxLeaseTTL: time.Duration(c.MaxLeaseTTL),
		HeartbeatEnabled: h.Enabled, HeartbeatURL: h.URL, HeartbeatInterval: time.Duration(h.Interval), HeartbeatTimeout: time.Duration(h.Timeout),
		FailuresBefore: h.FailuresBeforeAction, FailAction: h.FailAction, CanaryAction: c.CanaryAction,
		RotationTimeout: time.Duration(c.RotationTimeout), AuditRotateSize: int64(c.AuditRotateSize), At: at.UTC(),
	}
}

// same reports whether a and b pin the same values.
func (a AppliedConfig) same(b AppliedConfig) bool {
	a.At, b.At = time.Time{}, time.Time{}
	return a == b
}

// weakens reports whether going from old to new loosens what an action does.
func weakerAction(old, new store.FailAction) bool {
	return old.RevokeAll && !new.RevokeAll || old.RotateAll && !new.RotateAll || old.WipeStore && !new.WipeStore
}

// effectiveConfig is the file's configuration with every key whose change would weaken a
// control kept at its applied value, and the names of the keys so held back.
func effectiveConfig(file store.Config, applied *AppliedConfig) (store.Config, []string) {
	if applied == nil {
		return file, nil
	}
	c, a := file, *applied
	var held []string
	hold := func(key string, weaker bool, keep func()) {
		if weaker {
			held = append(held, key)
			keep()
		}
	}
	h := &c.Heartbeat
	hold("default_lease_ttl", time.Duration(c.DefaultLeaseTTL) > a.DefaultLeaseTTL, func() { c.DefaultLeaseTTL = store.Duration(a.DefaultLeaseTTL) })
	hold("max_lease_ttl", time.Duration(c.MaxLeaseTTL) > a.MaxLeaseTTL, func() { c.MaxLeaseTTL = store.Duration(a.MaxLeaseTTL) })
	hold("heartbeat.enabled", a.HeartbeatEnabled && !h.Enabled, func() { h.Enabled = true })
	hold("heartbeat.url", a.HeartbeatEnabled && h.URL != a.HeartbeatURL, func() { h.URL = a.HeartbeatURL })
	hold("heartbeat.interval", a.HeartbeatEnabled && time.Duration(h.Interval) > a.HeartbeatInterval, func() { h.Interval = store.Duration(a.HeartbeatInterval) })
	hold("heartbeat.timeout", a.HeartbeatEnabled && time.Duration(h.Timeout) > a.HeartbeatTimeout, func() { h.Timeout = store.Duration(a.HeartbeatTimeout) })
	hold("heartbeat.failures_before_action", a.HeartbeatEnabled && h.FailuresBeforeAction > a.FailuresBefore, func() { h.FailuresBeforeAction = a.FailuresBefore })
	hold("heartbeat.fail_action", a.HeartbeatEnabled && weakerAction(a.FailAction, h.FailAction), func() { h.FailAction = a.FailAction })
	hold("canary_action", weakerAction(a.CanaryAction, c.CanaryAction), func() { c.CanaryAction = a.CanaryAction })
	// A shorter rotation_timeout fails the hooks the killswitch's rotate all runs; a
	// larger (or no) audit_rotate_size widens what the rolling check of the log covers.
	hold("rotation_timeout", a.RotationTimeout > 0 && time.Duration(c.RotationTimeout) < a.RotationTimeout, func() { c.RotationTimeout = store.Duration(a.RotationTimeout) })
	hold("audit_rotate_size", a.AuditRotateSize > 0 && (c.AuditRotateSize == 0 || int64(c.AuditRotateSize) > a.AuditRotateSize), func() { c.AuditRotateSize = store.Size(a.AuditRotateSize) })
	if c.DefaultLeaseTTL > c.MaxLeaseTTL {
		c.DefaultLeaseTTL = c.MaxLeaseTTL
	}
	return c, held
}

// loadConfig settles the configuration the transaction runs under. A write records a
// change that weakens nothing as applied (config_apply), and pins the file the first
// time a store runs a release that pins it.
func (tx *Tx) loadConfig() {
	file := tx.st.Config()
	tx.cfg, tx.cfgHeld = effectiveConfig(file, tx.state.Config)
	if !tx.writes() || tx.broken != nil || tx.legacy || len(tx.st.Problems()) > 0 {
		return // a config.json that did not parse pins nothing
	}
	// What holds is pinned, key by key: a change that tightens a control is pinned at
	// once even while another key's weakening waits, so it cannot be undone unseen.
	next := pinConfig(tx.cfg, tx.now)
	switch {
	case tx.state.Config == nil:
		tx.applyConfig(next, "pinned: config.json as found when this release first ran")
	case !tx.state.Config.same(*next):
		tx.applyConfig(next, "config.json changed; what weakens no control applied: old "+configText(tx.state.Config)+" new "+configText(next))
	}
}

func (tx *Tx) applyConfig(c *AppliedConfig, detail string) {
	tx.state.Config = c
	tx.Record(audit.Entry{Event: "config_apply", OK: true, Detail: detail, State: change{Config: c}.raw()})
}

func configText(c *AppliedConfig) string {
	if c == nil {
		return "{}"
	}
	shown := *c
	shown.At = time.Time{}
	b, _ := json.Marshal(struct {
		DefaultLeaseTTL   string           `json:"default_lease_ttl"`
		MaxLeaseTTL       string           `json:"max_lease_ttl"`
		HeartbeatEnabled  bool             `json:"heartbeat_enabled"`
		HeartbeatURL      string           `json:"heartbeat_url"`
		HeartbeatInterval string           `json:"heartbeat_interval"`
		HeartbeatTimeout  string           `json:"heartbeat_timeout"`
		FailuresBefore    int              `json:"failures_before_action"`
		FailAction        store.FailAction `json:"fail_action"`
		CanaryAction      store.FailAction `json:"canary_action"`
		RotationTimeout   string           `json:"rotation_timeout"`
		AuditRotateSize   int64            `json:"audit_rotate_size"`
	}{duration.Format(c.DefaultLeaseTTL), duration.Format(c.MaxLeaseTTL), c.HeartbeatEnabled, c.HeartbeatURL,
		duration.Format(c.HeartbeatInterval), duration.Format(c.HeartbeatTimeout), c.FailuresBefore, c.FailAction, c.CanaryAction,
		duration.Format(c.RotationTimeout), c.AuditRotateSize})
	return string(b)
}

// ConfigInfo is how config.json stands against what is applied.
type ConfigInfo struct {
	// HeldBack are the keys whose change in config.json weakens a control and waits for
	// secrets config apply; the applied values hold meanwhile.
	HeldBack  []string `json:"held_back"`
	AppliedAt string   `json:"applied_at,omitempty"`
}

func (tx *Tx) configInfo() ConfigInfo {
	info := ConfigInfo{HeldBack: nonNil(tx.cfgHeld)}
	if c := tx.state.Config; c != nil {
		info.AppliedAt = rfc3339(c.At)
	}
	return info
}

// ConfigApplyInput applies config.json as it is. Confirm shows a person what would change
// and returns what they typed, from the controlling terminal.
type ConfigApplyInput struct {
	Confirm  func(prompt string) (string, error)
	ClientID string
}

// ConfigApplyResult says what was applied.
type ConfigApplyResult struct {
	Applied []string `json:"applied"`
	Old     string   `json:"old"`
	New     string   `json:"new"`
}

// ConfigApply makes the keys held back take effect, recorded as config_apply with the old
// and the new values. It is an admin act: in a plain store anyone at the terminal can.
func (v *Vault) ConfigApply(ctx context.Context, in ConfigApplyInput) (*ConfigApplyResult, error) {
	client, err := v.client(in.ClientID)
	if err != nil {
		return nil, err
	}
	var held []string
	var old, next *AppliedConfig
	if err := v.View(ctx, func(tx *Tx) error {
		held, old, next = tx.cfgHeld, tx.state.Config, pinConfig(tx.st.Config(), tx.now)
		return nil
	}); err != nil {
		return nil, err
	}
	out := &ConfigApplyResult{Applied: []string{}, Old: configText(old), New: configText(next)}
	if len(held) == 0 {
		return out, nil
	}
	answer, askErr := in.Confirm(fmt.Sprintf("config.json weakens %s.\n  applied: %s\n  file:    %s\nType apply to apply it: ", strings.Join(held, ", "), out.Old, out.New))
	err = v.update(ctx, write, client, func(tx *Tx) error {
		e := audit.Entry{Event: "config_apply"}
		now := pinConfig(tx.st.Config(), tx.now)
		switch {
		case tx.state.Config == nil || !now.same(*next) || !tx.state.Config.same(*old):
			return tx.Deny(e, Usagef("config.json or the applied configuration changed while you read it; run secrets config apply again"))
		case askErr != nil:
			return tx.Deny(e, fixed{Usagef("applying a weaker configuration needs a person at the controlling terminal (%v)", askErr), "run secrets config apply in a terminal"})
		case strings.TrimSpace(answer) != "apply":
			return tx.Deny(e, Usagef("you did not type apply; nothing applied"))
		}
		tx.applyConfig(now, fmt.Sprintf("applied by hand: %s; old %s new %s", strings.Join(held, ", "), out.Old, out.New))
		return nil
	})
	if err != nil {
		return nil, err
	}
	out.Applied = held
	return out, nil
}

// appendConfig writes c as encoding/json would (TestConfigCodec holds it to that): every
// command reads it in the snapshot's header, where reflection would cost a tenth of a
// lease.
func appendConfig(b []byte, c *AppliedConfig) []byte {
	action := func(b []byte, key string, a store.FailAction) []byte {
		b = append(b, `,"`+key+`":{"revoke_all":`...)
		b = strconv.AppendBool(b, a.RevokeAll)
		b = append(b, `,"rotate_all":`...)
		b = strconv.AppendBool(b, a.RotateAll)
		b = append(b, `,"wipe_store":`...)
		b = strconv.AppendBool(b, a.WipeStore)
		return append(b, '}')
	}
	b = append(b, `{"default_lease_ttl":`...)
	b = strconv.AppendInt(b, int64(c.DefaultLeaseTTL), 10)
	b = append(b, `,"max_lease_ttl":`...)
	b = strconv.AppendInt(b, int64(c.MaxLeaseTTL), 10)
	b = append(b, `,"heartbeat_enabled":`...)
	b = strconv.AppendBool(b, c.HeartbeatEnabled)
	b = append(b, `,"heartbeat_url":`...)
	b = codec.AppendString(b, c.HeartbeatURL)
	b = append(b, `,"heartbeat_interval":`...)
	b = strconv.AppendInt(b, int64(c.HeartbeatInterval), 10)
	b = append(b, `,"heartbeat_timeout":`...)
	b = strconv.AppendInt(b, int64(c.HeartbeatTimeout), 10)
	b = append(b, `,"failures_before_action":`...)
	b = strconv.AppendInt(b, int64(c.FailuresBefore), 10)
	b = action(b, "fail_action", c.FailAction)
	b = action(b, "canary_action", c.CanaryAction)
	b = append(b, `,"rotation_timeout":`...)
	b = strconv.AppendInt(b, int64(c.RotationTimeout), 10)
	b = append(b, `,"audit_rotate_size":`...)
	b = strconv.AppendInt(b, c.AuditRotateSize, 10)
	b = append(b, `,"applied_at":"`...)
	b = codec.AppendTime(b, c.At)
	return append(b, `"}`...)
}

// decodeConfig reads what appendConfig (or encoding/json) wrote.
func decodeConfig(d *codec.Decoder, c *AppliedConfig) error {
	dur := func(dst *time.Duration) error {
		n, err := d.Int()
		*dst = time.Duration(n)
		return err
	}
	action := func(a *store.FailAction) error {
		return d.Object(func(k string) error {
			switch k {
			case "revoke_all":
				return d.Bool(&a.RevokeAll)
			case "rotate_all":
				return d.Bool(&a.RotateAll)
			case "wipe_store":
				return d.Bool(&a.WipeStore)
			}
			return fmt.Errorf("unknown key config.%s", k)
		})
	}
	return d.Object(func(k string) error {
		switch k {
		case "default_lease_ttl":
			return dur(&c.DefaultLeaseTTL)
		case "max_lease_ttl":
			return dur(&c.MaxLeaseTTL)
		case "heartbeat_enabled":
			return d.Bool(&c.HeartbeatEnabled)
		case "heartbeat_url":
			return d.Text(&c.HeartbeatURL)
		case "heartbeat_interval":
			return dur(&c.HeartbeatInterval)
		case "heartbeat_timeout":
			return dur(&c.HeartbeatTimeout)
		case "failures_before_action":
			return d.Integer(&c.FailuresBefore)
		case "fail_action":
			return action(&c.FailAction)
		case "canary_action":
			return action(&c.CanaryAction)
		case "rotation_timeout":
			return dur(&c.RotationTimeout)
		case "audit_rotate_size":
			n, err := d.Int()
			c.AuditRotateSize = n
			return err
		case "applied_at":
			s, err := d.Str()
			if err == nil {
				err = codec.ParseTime(&c.At, s)
			}
			return err
		}
		return fmt.Errorf("unknown key config.%s", k)
	})
}
