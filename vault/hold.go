package vault

import (
	"context"
	"fmt"
	"time"

	"github.com/agent-secrets/secrets/store"
	"github.com/agent-secrets/secrets/supervisor"
)

// HoldLink is how Hold talks to the process that runs the command: in a guarded store,
// the caller side's supervisor, over the pipe sudo gives the owner side (DESIGN.md
// section 10).
type HoldLink interface {
	// Granted hands over the values and when the first lease expires.
	Granted(vars []Var, expiry time.Time) error
	// Changed says a lease ended (why is not ""), and the command must stop, or that
	// the leases' earliest expiry moved (a renew).
	Changed(why string, expiry time.Time)
	// Ended delivers how the command ended, once; it is closed without a value when the
	// other process went away or the pipe closed.
	Ended() <-chan HoldEnd
}

// HoldEnd is how a held command ended, as the process that ran it reports it.
type HoldEnd struct {
	Exit    int
	Stopped string
	Orphans int
}

// holdAfterStop is how long Hold waits for the command's end once it has said stop: the
// longest grace and a margin. The leases have ended already; this is for the log.
const holdAfterStop = MaxGrace + 5*time.Second

// Hold is Exec for a command this process does not run: it grants the leases of in
// (kind exec, naming this process as their holder, so that revocation signals it), hands
// the values over link, tells link when a lease ends or moves, and when the command has
// ended (or link is gone, or ctx done) revokes what is left and records the end. It
// fails before anything is granted with the codes of a grant.
func (v *Vault) Hold(ctx context.Context, in ExecInput, link HoldLink) error {
	self, start, err := supervisor.Self()
	if err != nil {
		return err
	}
	sigs, err := supervisor.ListenRevocations()
	if err != nil {
		return err
	}
	defer sigs.Close()
	g, err := v.grantExec(ctx, in, sigs, self, start)
	if err != nil {
		return err
	}
	until := earliest(g.leases)
	res := supervisor.Result{ExitCode: -1}
	stopped := ""
	stop := func(why string) {
		if stopped == "" {
			stopped = why
			link.Changed(why, time.Time{})
		}
	}
	if err := link.Granted(g.vars, until); err != nil {
		stop("the caller side could not be told the values: " + err.Error())
	}
	expiry := time.NewTimer(time.Until(until))
	defer expiry.Stop()
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	var late <-chan time.Time
	check := func(timerFired bool) {
		why, at := v.execEnded(context.Background(), g.client, g.leases)
		switch {
		case why != "":
			stop(why)
		case !at.IsZero() && !at.Equal(until):
			until = at
			expiry.Reset(time.Until(until))
			link.Changed("", until)
		case timerFired:
			stop("lease expired")
		}
		if stopped != "" && late == nil {
			late = time.After(holdAfterStop)
		}
	}
	ended := link.Ended()
wait:
	for {
		select {
		case r, ok := <-ended:
			if !ok {
				res.Stopped = "the caller side went away"
			} else {
				res = supervisor.Result{ExitCode: r.Exit, Stopped: r.Stopped, Orphans: r.Orphans}
			}
			break wait
		case <-sigs.C():
			check(false)
		case <-poll.C:
			if store.IntentWaiting(v.storeOptions()) {
				check(false)
			}
		case <-expiry.C:
			check(true)
		case <-ctx.Done():
			stop(stopReason(ctx))
			ctx, late = context.Background(), time.After(holdAfterStop)
		case <-late:
			res.Stopped = "the caller side did not report the command's end"
			break wait
		}
	}
	if stopped != "" && res.Stopped == "" {
		res.Stopped = stopped
	}
	// How it ended is the word of the process that ran it, and the log says so.
	v.execEnd(context.Background(), g.client, leaseIDs(g.leases), g.prog+" (as the caller side reports)", res)
	return nil
}

// stopReason says why ctx is done, for the log.
func stopReason(ctx context.Context) string {
	if cause := context.Cause(ctx); cause != nil && cause != ctx.Err() {
		return cause.Error()
	}
	return fmt.Sprintf("stopped: %v", ctx.Err())
}
