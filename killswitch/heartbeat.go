package killswitch

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// WitnessHeader carries the log's head to the heartbeat endpoint, and the endpoint's
// reply, the head it saw the time before: "v1 <seq> <hash> <mac>".
const WitnessHeader = "X-Secrets-Witness"

// Probe checks the heartbeat endpoint once: healthy on a 2xx answer within timeout. It
// sends witness (the log head, MAC'd) when it is not "", and returns what the endpoint
// sent back in the same header. It holds no lock; the caller records the result.
func Probe(ctx context.Context, url string, timeout time.Duration, witness string) (ok bool, detail, reply string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error(), ""
	}
	req.Header.Set("User-Agent", "secrets-watch")
	if witness != "" {
		req.Header.Set(WitnessHeader, witness)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return false, fmt.Sprintf("no answer within %s", timeout), ""
		}
		return false, err.Error(), ""
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return false, "status " + resp.Status, ""
	}
	return true, "status " + resp.Status, resp.Header.Get(WitnessHeader)
}

// Heartbeat is the last heartbeat check and the run of failures it belongs to.
type Heartbeat struct {
	LastCheck time.Time `json:"last_check"`
	LastOK    bool      `json:"last_ok"`
	LastError string    `json:"last_error,omitempty"`
	Failures  int       `json:"failures"` // consecutive
	Fired     bool      `json:"fired"`    // the fail action ran for this outage
}

// Observe folds one check into the heartbeat state and says what to record: event is
// heartbeat_failed, heartbeat_recovered or "" (a healthy check in a healthy run), and
// fire is true exactly once per outage, at the failures-th consecutive failure.
func Observe(hb *Heartbeat, ok bool, detail string, now time.Time, failures int) (event string, fire bool) {
	hb.LastCheck, hb.LastOK, hb.LastError = now.UTC(), ok, ""
	if ok {
		if hb.Failures > 0 || hb.Fired {
			event = "heartbeat_recovered"
		}
		hb.Failures, hb.Fired = 0, false
		return event, false
	}
	hb.LastError = detail
	hb.Failures++
	if hb.Failures >= failures && !hb.Fired {
		hb.Fired = true
		fire = true
	}
	return "heartbeat_failed", fire
}
