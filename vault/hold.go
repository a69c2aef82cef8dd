package vault

import (
	"context"
	"fmt"
	"time"

	"github.com/agent-secrets/secrets/audit"
	names "github.com/agent-secrets/secrets/internal/name"
	"github.com/agent-secrets/secrets/proxy"
	"github.com/agent-secrets/secrets/store"
	"github.com/agent-secrets/secrets/supervisor"
)

// HoldLink is how Hold talks to the process that runs the command: in a guarded store,
// the caller side's supervisor, over the pipe sudo gives the owner side (DESIGN.md
// section 10).
type HoldLink interface {
	// Granted hands over the values (placeholders for those injected), when the first
	// lease expires, and where the injection proxy is.
	Granted(g HoldGrant) error
	// Changed says a lease ended (why is not ""), and the command must stop, or that
	// the leases' earliest expiry moved (a renew).
	Changed(why string, expiry time.Time)
	// Ended delivers how the command ended, once; it is closed without a value when the
	// other process went away or the pipe closed.
	Ended() <-chan HoldEnd
}

// HoldGrant is what an exec's holder hands the process that runs the command.
type HoldGrant struct {
	Vars      []Var      `json:"vars,omitempty"`
	Expiry    time.Time  `json:"expiry,omitzero"`
	Injection *Injection `json:"injection,omitempty"`
}

// HoldEnd is how a held command ended, as the process that ran it reports it.
type HoldEnd struct {
	Exit    int
	Stopped string
	Orphans int
	Front   *FrontReport // what its proxy did, when the run injects
}

// FrontReport is what the caller side's proxy did: the hosts it tunnelled and what it
// refused. The owner side logs it as the caller side's word.
type FrontReport struct {
	Report proxy.Report  `json:"report"`
	Events []proxy.Event `json:"events,omitempty"`
}

// MaxFrontEntries bounds what a caller side's report adds to the log.
const MaxFrontEntries = 64

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
	// The proxy runs here, on the owner side, so the value never enters a process the
	// caller owns (DESIGN.md section 10); it serves the rules' hosts and nothing else.
	var inj *injection
	grant := HoldGrant{Vars: g.vars, Expiry: until}
	if len(g.injected) > 0 {
		if inj, err = v.startInjection(g, in.StrictEgress, true, g.client); err != nil {
			v.execEnd(context.Background(), g.client, leaseIDs(g.leases), g.prog, supervisor.Result{ExitCode: supervisor.ExitNotStarted, Stopped: "not started: " + err.Error()}, nil)
			return err
		}
		grant.Injection = &Injection{Endpoint: inj.px.Endpoint(), CA: inj.px.CA(), Routes: inj.routes}
	}
	stopped := ""
	stop := func(why string) {
		inj.verdict(why, time.Time{})
		if stopped == "" {
			stopped = why
			link.Changed(why, time.Time{})
		}
	}
	if err := link.Granted(grant); err != nil {
		stop("the caller side could not be told the values: " + err.Error())
	}
	expiry := time.NewTimer(time.Until(until))
	defer expiry.Stop()
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	var late <-chan time.Time
	var recheck <-chan time.Time
	var unanswered silence
	check := func(timerFired bool) {
		why, at, ok := v.leasesEnded(context.Background(), g.client, g.leases)
		if !ok {
			// The proxy waits for the store's answer, asked again until it comes, and
			// a command that holds values is stopped if it stays silent.
			if why = unanswered.failed(in.OnRevoke == OnRevokeDeny); why == "" {
				inj.hold()
				recheck = time.After(recheckEvery)
				return
			}
		} else {
			unanswered.answered()
		}
		recheck = nil
		switch {
		case why != "":
			stop(why)
		case !at.IsZero() && !at.Equal(until):
			until = at
			expiry.Reset(time.Until(until))
			inj.verdict("", until)
			link.Changed("", until)
		case timerFired:
			stop("lease expired")
		default:
			inj.verdict("", until)
		}
		// A command left running on a lease's end (--on-revoke deny) holds placeholders
		// only; the proxy answers it 403 here until it ends.
		if stopped != "" && late == nil && in.OnRevoke != OnRevokeDeny {
			late = time.After(holdAfterStop)
		}
	}
	ended := link.Ended()
	var front *FrontReport
wait:
	for {
		select {
		case r, ok := <-ended:
			if !ok {
				res.Stopped = "the caller side went away"
			} else {
				res = supervisor.Result{ExitCode: r.Exit, Stopped: r.Stopped, Orphans: r.Orphans}
				front = r.Front
			}
			break wait
		case <-sigs.C():
			if inj != nil {
				inj.px.Pause()
			}
			check(false)
		case <-poll.C:
			if store.IntentWaiting(v.storeOptions()) {
				check(false)
			}
		case <-expiry.C:
			check(true)
		case <-recheck:
			check(false)
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
	extra := inj.close()
	extra = append(extra, frontEntries(front)...)
	// How it ended is the word of the process that ran it, and the log says so.
	v.execEnd(context.Background(), g.client, leaseIDs(g.leases), g.prog+" (as the caller side reports)", res, extra)
	return nil
}

// frontEntries are the log entries of a caller side's proxy report, as its word: at
// most MaxFrontEntries.
func frontEntries(f *FrontReport) []audit.Entry {
	if f == nil {
		return nil
	}
	var out []audit.Entry
	for _, e := range reportEntries(proxy.Report{Tunnelled: f.Report.Tunnelled}) {
		e.Detail += " (as the caller side reports)"
		out = append(out, e)
	}
	for _, e := range f.Events {
		out = append(out, audit.Entry{Event: e.Kind, Secret: e.Secret, Detail: e.Host + ": " + e.Why + " (as the caller side reports)"})
	}
	for i := range out {
		out[i].Detail = escapeControl(out[i].Detail)
		if !names.Valid(out[i].Secret) {
			out[i].Secret = "" // the caller side's word names no secret that cannot be one
		}
		if !validEventKind(out[i].Event) {
			out[i].Event = "egress"
		}
	}
	if len(out) > MaxFrontEntries {
		out = out[:MaxFrontEntries]
	}
	return out
}

func validEventKind(k string) bool {
	return k == "egress" || k == "egress_denied" || k == "inject_blocked" || k == "inject_refused"
}

// stopReason says why ctx is done, for the log.
func stopReason(ctx context.Context) string {
	if cause := context.Cause(ctx); cause != nil && cause != ctx.Err() {
		return cause.Error()
	}
	return fmt.Sprintf("stopped: %v", ctx.Err())
}
