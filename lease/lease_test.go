package lease_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/lease"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newManager() (*clock, lease.Manager) {
	c := &clock{t: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
	return c, lease.Manager{Now: c.now, DefaultTTL: time.Hour, MaxTTL: 24 * time.Hour}
}

func TestParseTTLRejectsZeroAndNegative(t *testing.T) {
	for _, in := range []string{"0", "0s", "-5m", "nope"} {
		if _, err := lease.ParseTTL(in); !errors.Is(err, lease.ErrInvalidTTL) {
			t.Errorf("ParseTTL(%q) = %v, want ErrInvalidTTL", in, err)
		}
	}
}

func TestGrant(t *testing.T) {
	c, m := newManager()
	var ls []lease.Lease
	l, err := m.Grant(&ls, lease.Request{Secret: "k", ClientID: "agent", TTL: "30m"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(l.ID, "lease_") || len(l.ID) != len("lease_")+26 {
		t.Errorf("id %q is not lease_<ULID>", l.ID)
	}
	if !l.CreatedAt.Equal(c.t) || !l.ExpiresAt.Equal(c.t.Add(30*time.Minute)) || l.TTL != "30m" || l.Kind != lease.KindLease {
		t.Errorf("lease %+v", l)
	}
	d, err := m.Grant(&ls, lease.Request{Secret: "k"})
	if err != nil || d.TTL != "1h" || !d.ExpiresAt.Equal(c.t.Add(time.Hour)) {
		t.Errorf("default ttl lease %+v, %v", d, err)
	}
	if d.ID == l.ID {
		t.Error("ids repeat")
	}
	if len(ls) != 2 {
		t.Errorf("%d leases, want 2", len(ls))
	}
}

func TestGrantRefusesWithoutChange(t *testing.T) {
	_, m := newManager()
	var ls []lease.Lease
	if _, err := m.Grant(&ls, lease.Request{Secret: "k", TTL: "25h"}); !errors.Is(err, lease.ErrTTLExceedsMax) {
		t.Errorf("25h: %v", err)
	}
	if _, err := m.Grant(&ls, lease.Request{Secret: "k", TTL: "0"}); !errors.Is(err, lease.ErrInvalidTTL) {
		t.Errorf("0: %v", err)
	}
	if len(ls) != 0 {
		t.Errorf("refused grants left %d leases", len(ls))
	}
	if _, err := m.Grant(&ls, lease.Request{Secret: "k", TTL: "24h"}); err != nil {
		t.Errorf("exactly max: %v", err)
	}
}

func TestExpireWithoutSleeping(t *testing.T) {
	c, m := newManager()
	var ls []lease.Lease
	short, _ := m.Grant(&ls, lease.Request{Secret: "a", TTL: "1m"})
	long, _ := m.Grant(&ls, lease.Request{Secret: "b", TTL: "1h"})
	if got := m.Expire(&ls); len(got) != 0 {
		t.Fatalf("expired %v at once", got)
	}
	c.advance(time.Minute) // expiry is inclusive: at expires_at the lease is over
	got := m.Expire(&ls)
	if len(got) != 1 || got[0].ID != short.ID {
		t.Fatalf("expired %v, want the short lease", got)
	}
	if len(ls) != 1 || ls[0].ID != long.ID {
		t.Fatalf("left %v", ls)
	}
}

func TestRenew(t *testing.T) {
	c, m := newManager()
	var ls []lease.Lease
	l, _ := m.Grant(&ls, lease.Request{Secret: "a", TTL: "10m"})
	c.advance(5 * time.Minute)
	r, err := m.Renew(ls, l.ID, "2h")
	if err != nil || !r.ExpiresAt.Equal(c.t.Add(2*time.Hour)) || r.TTL != "2h" || !ls[0].ExpiresAt.Equal(r.ExpiresAt) {
		t.Fatalf("renew: %+v %v", r, err)
	}
	if r, err = m.Renew(ls, l.ID, ""); err != nil || r.TTL != "2h" {
		t.Fatalf("renew with own ttl: %+v %v", r, err)
	}
	before := ls[0]
	if _, err := m.Renew(ls, l.ID, "48h"); !errors.Is(err, lease.ErrTTLExceedsMax) || ls[0] != before {
		t.Fatalf("over max: %v, lease %+v", err, ls[0])
	}
	if _, err := m.Renew(ls, "lease_missing", ""); !errors.Is(err, lease.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}

func TestRevoke(t *testing.T) {
	_, m := newManager()
	var ls []lease.Lease
	a, _ := m.Grant(&ls, lease.Request{Secret: "a"})
	m.Grant(&ls, lease.Request{Secret: "b"})
	m.Grant(&ls, lease.Request{Secret: "b"})
	got, err := lease.Revoke(&ls, a.ID)
	if err != nil || got.ID != a.ID || len(ls) != 2 {
		t.Fatalf("revoke: %v %v, %d left", got, err, len(ls))
	}
	if _, err := lease.Revoke(&ls, a.ID); !errors.Is(err, lease.ErrNotFound) {
		t.Fatalf("second revoke: %v", err)
	}
	if ended := lease.RevokeSecret(&ls, "b"); len(ended) != 2 || len(ls) != 0 {
		t.Fatalf("revoke secret: %v, %d left", ended, len(ls))
	}
	m.Grant(&ls, lease.Request{Secret: "c"})
	if ended := lease.RevokeAll(&ls); len(ended) != 1 || len(ls) != 0 {
		t.Fatalf("revoke all: %v", ended)
	}
}

// TestRevokeIDs: the named leases end, in grant order; an id already ended is skipped and
// the others are kept.
func TestRevokeIDs(t *testing.T) {
	_, m := newManager()
	var ls []lease.Lease
	a, _ := m.Grant(&ls, lease.Request{Secret: "a"})
	b, _ := m.Grant(&ls, lease.Request{Secret: "b"})
	c, _ := m.Grant(&ls, lease.Request{Secret: "c"})
	ended := lease.RevokeIDs(&ls, []string{c.ID, "lease_gone", a.ID})
	if len(ended) != 2 || ended[0].ID != a.ID || ended[1].ID != c.ID {
		t.Fatalf("ended %v, want a then c", ended)
	}
	if len(ls) != 1 || ls[0].ID != b.ID {
		t.Fatalf("kept %v, want only b", ls)
	}
	if ended := lease.RevokeIDs(&ls, nil); len(ended) != 0 || len(ls) != 1 {
		t.Fatalf("no ids ended %v", ended)
	}
}
