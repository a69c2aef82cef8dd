package killswitch

import (
	"errors"
	"time"
)

// ErrLockdown reports a request refused because the store is in lockdown.
var ErrLockdown = errors.New("lockdown")

// Lockdown records why and when the killswitch fired. While it is set, nothing is
// handed out.
type Lockdown struct {
	Since   time.Time `json:"since"`
	Trigger string    `json:"trigger"` // manual, heartbeat or canary
	Reason  string    `json:"reason,omitempty"`
}

// Lock returns the lockdown the store is in after the killswitch fires: the current one
// if there is one, so a rerun after a crash finishes the same job under its first time
// and trigger, else a new one.
func Lock(current *Lockdown, trigger, reason string, now time.Time) *Lockdown {
	if current != nil {
		return current
	}
	return &Lockdown{Since: now.UTC(), Trigger: trigger, Reason: reason}
}
