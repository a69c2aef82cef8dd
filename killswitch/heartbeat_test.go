package killswitch_test

import (
	"testing"
	"time"

	"github.com/agent-secrets/secrets/killswitch"
)

// TestObserveFiresOncePerOutage: with 3 failures before action, the action fires at the
// third consecutive failure, not again in the same outage, and again in the next one.
func TestObserveFiresOncePerOutage(t *testing.T) {
	var hb killswitch.Heartbeat
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	var fired []int
	results := []bool{false, false, true, false, false, false, false, false, true, false, false, false}
	var events []string
	for i, ok := range results {
		ev, fire := killswitch.Observe(&hb, ok, "status 500", now.Add(time.Duration(i)*time.Minute), 3)
		events = append(events, ev)
		if fire {
			fired = append(fired, i)
		}
	}
	if len(fired) != 2 || fired[0] != 5 || fired[1] != 11 {
		t.Fatalf("fired at %v, want [5 11]", fired)
	}
	if events[2] != "heartbeat_recovered" || events[8] != "heartbeat_recovered" || events[0] != "heartbeat_failed" {
		t.Fatalf("events %v", events)
	}
	if hb.Failures != 3 || !hb.Fired || hb.LastOK || hb.LastError != "status 500" {
		t.Fatalf("state %+v", hb)
	}
}
