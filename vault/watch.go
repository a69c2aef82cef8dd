package vault

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/killswitch"
	"github.com/agent-secrets/secrets/store"
)

// WatchResult is the last heartbeat check of a watch.
type WatchResult struct {
	Checks   int    `json:"checks"`
	Healthy  bool   `json:"healthy"`
	Detail   string `json:"detail"`
	Failures int    `json:"failures"`
	Fired    bool   `json:"fired"`
	// Rollback is why the head the witness saw does not fit the log, when it does not.
	Rollback string `json:"rollback,omitempty"`
}

// beaten is what one heartbeat check found.
type beaten struct {
	failures int
	fired    bool
	rollback string
}

// Watch checks the heartbeat endpoint every interval until ctx is done (once with once),
// recording each result under the lock (never holding it while waiting on the network),
// and fires the fail action through the killswitch when a check is the one that crosses
// failures_before_action: once per outage. A heartbeat that is not enabled is
// store.ErrInvalidConfig naming the key.
func (v *Vault) Watch(ctx context.Context, once bool, clientFlag string) (*WatchResult, error) {
	client, err := v.client(clientFlag)
	if err != nil {
		return nil, err
	}
	var cfg store.Config
	var path string
	var broken []error
	// The heartbeat cuts access when it fires: a config.json someone broke must not
	// stop it (the pinned values hold; see loadConfig).
	err = v.updateWith(ctx, 0, "", txOptions{looseFiles: true}, func(tx *Tx) error {
		cfg, path, broken = tx.cfg, tx.st.Path(store.ConfigFile), tx.st.Problems()
		return nil
	})
	if err != nil {
		return nil, err
	}
	hb := cfg.Heartbeat
	if !hb.Enabled && len(broken) > 0 {
		return nil, broken[0] // nothing pinned to watch: the file's own mistake is the news
	}
	if !hb.Enabled {
		return nil, &store.ConfigError{Path: path, Key: "heartbeat.enabled", Err: errors.New("is false; set it, and heartbeat.url, to watch")}
	}
	out := &WatchResult{}
	for ctx.Err() == nil {
		head, key, err := v.witnessHead(ctx)
		if err != nil {
			return nil, err
		}
		ok, detail, reply := killswitch.Probe(ctx, hb.URL, time.Duration(hb.Timeout), head)
		if ctx.Err() != nil {
			break // interrupted mid-check: that is not the endpoint's failure
		}
		b, err := v.beat(ctx, client, ok, detail, hb, reply, key)
		if err != nil {
			return nil, err
		}
		out.Checks++
		out.Healthy, out.Detail, out.Failures, out.Fired = ok, detail, b.failures, b.fired
		if b.rollback != "" {
			out.Rollback = b.rollback
			if once {
				return out, fmt.Errorf("%w: %s", ErrAuditRollback, b.rollback)
			}
		}
		if once {
			break
		}
		wait(ctx, time.Duration(hb.Interval))
	}
	return out, nil
}

// beat records one check, with what the witness said (reply, checked under key), and
// runs the fail action when this check is the one that crosses failures_before_action,
// or when the witness saw a head the log no longer has.
func (v *Vault) beat(ctx context.Context, client string, ok bool, detail string, hb store.Heartbeat, reply string, key []byte) (beaten, error) {
	var b beaten
	var out *KillswitchResult
	err := v.updateWith(ctx, write, client, txOptions{looseFiles: true}, func(tx *Tx) error {
		if tx.state.Heartbeat == nil {
			tx.state.Heartbeat = &killswitch.Heartbeat{}
		}
		var event string
		event, b.fired = killswitch.Observe(tx.state.Heartbeat, ok, detail, tx.now, hb.FailuresBeforeAction)
		b.failures = tx.state.Heartbeat.Failures
		if event == "" {
			tx.stateDirty = true // a healthy check in a healthy run: no entry replays it
		} else {
			seen := *tx.state.Heartbeat
			tx.Record(audit.Entry{Event: event, OK: ok, Detail: fmt.Sprintf("%s: %s; %d consecutive failures", hb.URL, detail, b.failures),
				State: change{Heartbeat: &seen}.raw()})
			if event == "heartbeat_recovered" {
				v.warn("heartbeat recovered: %s", detail)
			} else {
				v.warn("heartbeat failed (%d of %d): %s", b.failures, hb.FailuresBeforeAction, detail)
			}
		}
		reason := fmt.Sprintf("%s failed %d times in a row", hb.URL, b.failures)
		if ok {
			if b.rollback = tx.witness(reply, key); b.rollback != "" {
				v.warn("the heartbeat witness found a rollback: %s", b.rollback)
				b.fired, reason = true, "audit_rollback: "+b.rollback
			}
		}
		if b.fired {
			var err error
			out, err = tx.lockdown("heartbeat", reason, hb.FailAction, "", tx.now)
			return err
		}
		return nil
	})
	if err != nil {
		return beaten{}, err
	}
	if b.fired {
		v.warn("heartbeat: fail action fired")
		if err := v.afterLockdown(ctx, client, "heartbeat", hb.FailAction, out); err != nil {
			return beaten{}, err
		}
	}
	return b, nil
}

// wait sleeps for d or until ctx is done.
func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
