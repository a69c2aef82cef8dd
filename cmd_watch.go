package main

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"syscall"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/killswitch"
	"github.com/agent-secrets/secrets/store"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdWatch() *cli.Command {
	return &cli.Command{
		Name:      "watch",
		Usage:     "Check the heartbeat endpoint every interval; fire its fail action after failures_before_action misses",
		UsageText: "secrets watch [--once]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "once", Usage: "check once and exit (for cron); the failure count is kept in leases.age"},
			clientIDFlag(),
		},
		Action: a.act(a.watch),
	}
}

func (a *app) watch(ctx context.Context, c *cli.Command) (*reply, error) {
	if c.NArg() > 0 {
		return nil, usagef("watch takes no arguments")
	}
	s, err := a.open(ctx, c, modeRead)
	if err != nil {
		return nil, err
	}
	cfg := s.st.Config()
	s.finish(nil)
	hb := cfg.Heartbeat
	if !hb.Enabled {
		return nil, &store.ConfigError{Path: s.st.Path(store.ConfigFile), Key: "heartbeat.enabled", Err: errors.New("is false; set it, and heartbeat.url, to watch")}
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	checks := 0
	var last beat
	for ctx.Err() == nil {
		ok, detail := killswitch.Probe(ctx, hb.URL, time.Duration(hb.Timeout))
		if ctx.Err() != nil {
			break // interrupted mid-check: that is not the endpoint's failure
		}
		if last, err = a.beat(ctx, c, ok, detail, hb); err != nil {
			return nil, err
		}
		checks++
		if c.Bool("once") {
			break
		}
		wait(ctx, time.Duration(hb.Interval))
	}
	return &reply{
		result: map[string]any{"checks": checks, "healthy": last.ok, "detail": last.detail, "failures": last.failures, "fired": last.fired},
		next:   []action{{"secrets status", "See the heartbeat and any lockdown"}},
	}, nil
}

type beat struct {
	ok       bool
	detail   string
	failures int
	fired    bool
}

// beat records one check under the lock, and runs the fail action when this check is
// the one that crosses failures_before_action; only once per outage.
func (a *app) beat(ctx context.Context, c *cli.Command, ok bool, detail string, hb store.Heartbeat) (beat, error) {
	s, err := a.open(ctx, c, modeWrite)
	if err != nil {
		return beat{}, err
	}
	if s.state.Heartbeat == nil {
		s.state.Heartbeat = &store.HeartbeatState{}
	}
	event, fire := killswitch.Observe(s.state.Heartbeat, ok, detail, a.now(), hb.FailuresBeforeAction)
	s.stateDirty = true
	st := *s.state.Heartbeat
	if event != "" {
		s.record(audit.Entry{Event: event, OK: ok, Detail: fmt.Sprintf("%s: %s; %d consecutive failures", hb.URL, detail, st.Failures)})
		if event == "heartbeat_recovered" {
			a.warn("heartbeat recovered: " + detail)
		} else {
			a.warn(fmt.Sprintf("heartbeat failed (%d of %d): %s", st.Failures, hb.FailuresBeforeAction, detail))
		}
	}
	var out map[string]any
	if fire {
		out = s.lockdown("heartbeat", fmt.Sprintf("%s failed %d times in a row", hb.URL, st.Failures), hb.FailAction)
	}
	if err := s.finish(nil); err != nil {
		return beat{}, err
	}
	if fire {
		a.warn("heartbeat: fail action fired")
		if err := a.afterLockdown(ctx, c, "heartbeat", hb.FailAction, out); err != nil {
			return beat{}, err
		}
	}
	return beat{ok: ok, detail: detail, failures: st.Failures, fired: fire}, nil
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
