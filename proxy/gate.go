package proxy

import (
	"sync"
	"time"
)

// gate says whether the run's leases still stand, as the supervisor last learnt it. A
// revocation signal pauses it at once (Pause), before the store has been asked, so that
// no request is injected between a revoke's signal and its answer.
type gate struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	paused  bool
	stopped string
	until   time.Time // the earliest lease expiry
}

func newGate(until time.Time) *gate { return &gate{changed: make(chan struct{}), until: until} }

func (g *gate) set(f func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f()
	close(g.changed)
	g.changed = make(chan struct{})
}

// pauseLimit is how long a paused gate holds a request before refusing it: the store's
// answer takes milliseconds; a supervisor that cannot get it in this long refuses.
const pauseLimit = 5 * time.Second

// admit returns "" when a value may be injected now, or why not. It waits while the
// gate is paused, up to pauseLimit.
func (g *gate) admit(now func() time.Time) string {
	deadline := time.NewTimer(pauseLimit)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		paused, stopped, until, changed := g.paused, g.stopped, g.until, g.changed
		g.mu.Unlock()
		switch {
		case stopped != "":
			return stopped
		case !until.IsZero() && !now().Before(until):
			return "lease expired"
		case !paused:
			return ""
		}
		select {
		case <-changed:
		case <-deadline.C:
			return "the store did not answer whether the lease still stands"
		}
	}
}
