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
	// Prunes counts the prunes of ended leases (and their .env files) watch ran, and
	// Removed the files they removed.
	Prunes  int `json:"prunes"`
	Removed int `json:"removed"`
}

// Pruner is the last time a watch pruned the store, and how often it does: env warns
// when nothing does, since an ended .env file otherwise waits for the next command.
type Pruner struct {
	At    time.Time     `json:"at"`
	Every time.Duration `json:"every"`
}

// WatchInput says what watch does.
type WatchInput struct {
	Once bool // one round, for cron
	// PruneEvery prunes ended leases (removing their .env files) this often, with or
	// without a heartbeat; 0 prunes only with each heartbeat check.
	PruneEvery time.Duration
	ClientID   string
}

// beaten is what one heartbeat check found.
type beaten struct {
	failures int
	fired    bool
	rollback string
	removed  int
}

// Watch checks the heartbeat endpoint every interval until ctx is done (once with once),
// recording each result under the lock (never holding it while waiting on the network),
// and fires the fail action through the killswitch when a check is the one that crosses
// failures_before_action: once per outage. Each check prunes ended leases, and with
// PruneEvery watch prunes that often too, also without a heartbeat. A store lock held by
// another process is waited out with backoff, not an exit. With neither a heartbeat nor
// PruneEvery it is store.ErrInvalidConfig naming the key.
func (v *Vault) Watch(ctx context.Context, in WatchInput) (*WatchResult, error) {
	client, err := v.client(in.ClientID)
	if err != nil {
		return nil, err
	}
	var cfg store.Config
	var path string
	var broken []error
	// The heartbeat cuts access when it fires: a config.json someone broke must not
	// stop it (the pinned values hold; see loadConfig).
	for backoff := time.Second; ; backoff = min(2*backoff, time.Minute) {
		err = v.updateWith(ctx, 0, "", txOptions{looseFiles: true}, func(tx *Tx) error {
			cfg, path, broken = tx.cfg, tx.st.Path(store.ConfigFile), tx.st.Problems()
			return nil
		})
		if !errors.Is(err, store.ErrLocked) || in.Once || ctx.Err() != nil {
			break
		}
		v.warn("the store lock is held by another process; trying again in %s", backoff)
		wait(ctx, backoff)
	}
	if err != nil {
		return nil, err
	}
	hb := cfg.Heartbeat
	if !hb.Enabled && in.PruneEvery == 0 {
		if len(broken) > 0 {
			return nil, broken[0] // nothing pinned to watch: the file's own mistake is the news
		}
		return nil, &store.ConfigError{Path: path, Key: "heartbeat.enabled", Err: errors.New("is false; set it, and heartbeat.url, to watch (or prune only: secrets watch --prune-every 1m)")}
	}
	every := time.Duration(hb.Interval)
	if !hb.Enabled || in.PruneEvery > 0 && in.PruneEvery < every {
		every = in.PruneEvery
	}
	out := &WatchResult{}
	var nextCheck time.Time
	backoff := time.Second
	for ctx.Err() == nil {
		var err error
		if hb.Enabled && !time.Now().Before(nextCheck) {
			err = v.check(ctx, client, hb, every, out)
			if err == nil {
				nextCheck = time.Now().Add(time.Duration(hb.Interval))
			}
		} else {
			err = v.prune(ctx, client, every, out)
		}
		switch {
		case errors.Is(err, store.ErrLocked) && !in.Once:
			v.warn("the store lock is held by another process; trying again in %s", backoff)
			wait(ctx, backoff)
			backoff = min(2*backoff, max(every, time.Second))
			continue
		case err != nil:
			return out, err
		}
		backoff = time.Second
		if in.Once {
			if out.Rollback != "" {
				return out, fmt.Errorf("%w: %s", ErrAuditRollback, out.Rollback)
			}
			break
		}
		wait(ctx, every)
	}
	return out, nil
}

// check runs one heartbeat check and records it (beat), adding to out.
func (v *Vault) check(ctx context.Context, client string, hb store.Heartbeat, every time.Duration, out *WatchResult) error {
	head, key, err := v.witnessHead(ctx)
	if err != nil {
		return err
	}
	ok, detail, reply := killswitch.Probe(ctx, hb.URL, time.Duration(hb.Timeout), head)
	if ctx.Err() != nil {
		return nil // interrupted mid-check: that is not the endpoint's failure
	}
	b, err := v.beat(ctx, client, ok, detail, hb, reply, key, every)
	if err != nil {
		return err
	}
	out.Checks++
	out.Prunes++
	out.Removed += b.removed
	out.Healthy, out.Detail, out.Failures, out.Fired = ok, detail, b.failures, b.fired
	out.Rollback = b.rollback
	return nil
}

// prune runs a transaction that writes: its begin ends the leases that expired, with
// their .env files, and it records when watch last did so.
func (v *Vault) prune(ctx context.Context, client string, every time.Duration, out *WatchResult) error {
	return v.updateWith(ctx, write, client, txOptions{looseFiles: true}, func(tx *Tx) error {
		out.Prunes++
		out.Removed += removedFiles(tx.pruned)
		tx.state.Pruner = &Pruner{At: tx.now.UTC(), Every: every}
		tx.stateDirty = true
		return nil
	})
}

func removedFiles(effects []killswitch.Effect) int {
	n := 0
	for _, e := range effects {
		if e.Event == "env_remove" && e.OK {
			n++
		}
	}
	return n
}

// beat records one check, with what the witness said (reply, checked under key), and
// runs the fail action when this check is the one that crosses failures_before_action,
// or when the witness saw a head the log no longer has.
func (v *Vault) beat(ctx context.Context, client string, ok bool, detail string, hb store.Heartbeat, reply string, key []byte, every time.Duration) (beaten, error) {
	var b beaten
	var out *KillswitchResult
	err := v.updateWith(ctx, write, client, txOptions{looseFiles: true}, func(tx *Tx) error {
		b.removed = removedFiles(tx.pruned)
		tx.state.Pruner = &Pruner{At: tx.now.UTC(), Every: every}
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
