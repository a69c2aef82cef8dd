package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/killswitch"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/store"
	"github.com/urfave/cli/v3"
)

// session is one locked use of the store: it follows DESIGN.md section 1. Open takes the
// lock and checks the audit head, prunes expired leases, the handler records entries and
// marks documents dirty, and commit appends the audit entries (fsync) before it writes
// leases.age and then secrets.age. Close releases the lock.
type session struct {
	a       *app
	st      *store.Store
	state   *store.State
	secrets *store.Secrets
	log     *audit.Log
	head    audit.Head
	mgr     lease.Manager
	actor   audit.Actor
	client  string

	pending      []audit.Entry
	secretsDirty bool
	stateDirty   bool  // leases.age changed with no entry to record (a healthy heartbeat)
	denied       bool  // a handler refused the request and recorded why; commit anyway
	broken       error // the audit log is damaged: nothing may be appended
	unstamped    bool  // the log was read in full and verified, but is not stamped yet
}

// mode says what a command needs from the session.
type mode int

const (
	// modeWrite may append: it refuses a damaged audit log and prunes expired leases.
	modeWrite mode = 1 << iota
	// modeRead only reads; it still opens on a damaged log so status and audit can report it.
	modeRead
	// withSecrets decrypts secrets.age too, alongside leases.age.
	withSecrets
	// readsWholeLog is for a command that verifies the whole audit log itself, so the
	// session does not read it a second time when the stamp does not match.
	readsWholeLog
)

func (a *app) open(ctx context.Context, c *cli.Command, m mode) (*session, error) {
	o, err := a.storeOptions(c)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, o)
	if err != nil {
		return nil, err
	}
	s, err := a.begin(c, st, m)
	if err != nil {
		st.Close()
		return nil, err
	}
	return s, nil
}

// begin loads the state, checks the audit log against its pinned head and prunes.
func (a *app) begin(c *cli.Command, st *store.Store, m mode) (*session, error) {
	state, secrets, err := st.Load(m&withSecrets != 0)
	if err != nil {
		return nil, err
	}
	cfg := st.Config()
	s := &session{
		a: a, st: st, state: state, secrets: secrets,
		log:   audit.New(st.Path(store.AuditFile), st.AuditKey(), a.now),
		mgr:   lease.Manager{Now: a.now, DefaultTTL: time.Duration(cfg.DefaultLeaseTTL), MaxTTL: time.Duration(cfg.MaxLeaseTTL)},
		actor: audit.Self(a.environ),
	}
	flag := ""
	if m&modeWrite != 0 {
		flag = c.String("client-id") // read commands use --client-id as a filter
	}
	s.client, err = a.clientID(flag, s.actor)
	if err != nil {
		return nil, err
	}
	if state.Fresh() {
		if err := s.adoptLog(); err != nil {
			return nil, err
		}
	}
	head, repair, err := s.log.Check(state.AuditHead)
	switch {
	case errors.Is(err, audit.ErrTampered):
		s.broken = err
	case err != nil:
		return nil, fmt.Errorf("%w: %v", audit.ErrFailed, err)
	}
	if s.broken == nil && state.AuditBroken != "" {
		s.broken = recordedTamper(state.AuditBroken)
	}
	s.head = head
	if s.broken == nil && m&readsWholeLog == 0 && !s.log.Stamped(st.LockNote(), head) {
		// Written since the last session stamped it (or never stamped): Check saw only
		// the end, so read all of it before anything is appended or trusted.
		switch _, err := s.log.Verify(head); {
		case errors.Is(err, audit.ErrTampered):
			s.broken = err
		case err != nil:
			return nil, fmt.Errorf("%w: %v", audit.ErrFailed, err)
		default:
			s.unstamped = true
		}
	}
	if s.broken != nil {
		if m&modeWrite != 0 {
			return nil, s.broken
		}
		return s, nil
	}
	if repair != nil {
		s.record(audit.Entry{Event: "repair", OK: true,
			Detail: fmt.Sprintf("cut a torn last line of %d bytes; the log as found is kept at %s", repair.Dropped, repair.Backup)})
	}
	if m&modeWrite != 0 {
		s.end(s.mgr.Expire(&state.Leases), "lease_expire", "expired")
	}
	return s, nil
}

// recordedTamper is a finding of `secrets audit --verify`, read back from leases.age.
type recordedTamper string

func (e recordedTamper) Error() string        { return string(e) + " (found by secrets audit --verify)" }
func (e recordedTamper) Is(target error) bool { return target == audit.ErrTampered }

// adoptLog handles a store with no leases.age (written by the earlier tool, or one whose
// leases.age was lost): a log that no head pins cannot be trusted, so it is moved aside,
// kept, and the new log's first entry says so.
func (s *session) adoptLog() error {
	fi, err := os.Lstat(s.log.Path())
	if err != nil || fi.Size() == 0 {
		return nil
	}
	moved, start, err := s.log.Reset()
	if err != nil {
		return fmt.Errorf("%w: move aside unpinned log: %v", audit.ErrFailed, err)
	}
	s.head = start
	s.record(audit.Entry{Event: audit.EventReset, OK: true,
		Detail: fmt.Sprintf("no leases.age pinned the existing log; it was moved to %s (%s)", moved, start.Hash)})
	s.state.AuditHead = start
	return nil
}

// loadSecrets decrypts secrets.age once per session.
func (s *session) loadSecrets() (*store.Secrets, error) {
	if s.secrets == nil {
		sec, err := s.st.LoadSecrets()
		if err != nil {
			return nil, err
		}
		s.secrets = sec
	}
	return s.secrets, nil
}

// record queues an audit entry, stamped with the actor and the session's client id.
func (s *session) record(e audit.Entry) {
	e.Actor = s.actor
	if e.ClientID == "" {
		e.ClientID = s.client
	}
	if e.TS.IsZero() {
		e.TS = s.a.now()
	}
	s.pending = append(s.pending, e)
}

// deny records a refused request and returns err, so the refusal is in the log even
// though the command fails.
func (s *session) deny(e audit.Entry, err error) error {
	e.OK = false
	e.Code = classify(err).code
	s.record(e)
	s.denied = true
	return err
}

// end records the end of each lease and applies what ending it means outside the store
// (killswitch.End): the one path every cause of a lease's end goes through.
// It returns the effects, which are also recorded.
func (s *session) end(ended []lease.Lease, event, reason string) []killswitch.Effect {
	var all []killswitch.Effect
	for len(ended) > 0 {
		for _, l := range ended {
			s.record(audit.Entry{Event: event, Secret: l.Secret, LeaseID: l.ID, ClientID: l.ClientID, OK: true, Detail: reason})
		}
		more, effects := killswitch.End(s.state, ended)
		s.effects(effects)
		all = append(all, effects...)
		ended, event, reason = more, "lease_revoke", "its .env file was removed"
	}
	return all
}

// effects records what killswitch did.
func (s *session) effects(effects []killswitch.Effect) {
	for _, e := range effects {
		detail := e.Detail
		if e.Path != "" {
			detail = e.Path + ": " + e.Detail
		}
		s.record(audit.Entry{Event: e.Event, LeaseID: e.LeaseID, OK: e.OK, Detail: detail})
	}
}

// commit makes the session durable. The audit entries are sealed first, so leases.age can
// pin the new head; then the audit append (write, fsync) runs while the documents are
// encrypted and staged, and only once the append is durable are leases.age and, if it
// changed, secrets.age renamed into place. If the append fails nothing is released.
// Nothing is written when nothing happened.
func (s *session) commit() error {
	if len(s.pending) == 0 && !s.secretsDirty && !s.stateDirty {
		return nil
	}
	if s.broken != nil {
		return s.broken
	}
	batch, head, err := s.log.Prepare(s.head, s.pending...)
	if err != nil {
		return err
	}
	s.state.AuditHead = head
	var sec *store.Secrets
	if s.secretsDirty {
		sec = s.secrets
	}
	appended := false // set by the gate, which Save has finished with before it returns
	gate := func() error {
		err := batch.Write()
		appended = err == nil
		return err
	}
	if err := s.st.Save(s.state, sec, gate); err != nil {
		if appended && len(s.pending) > 0 {
			// The entries are durable but what they describe was not written (a full disk):
			// say so in the log, which must not claim what did not happen.
			s.log.Append(head, audit.Entry{Event: "commit_failed", Code: classify(err).code, Actor: s.actor, ClientID: s.client,
				Detail: fmt.Sprintf("seq %d-%d above were recorded but not applied: %v", s.pending[0].Seq, head.Seq, err)})
		}
		return err
	}
	s.head, s.pending, s.secretsDirty, s.stateDirty = head, nil, false, false
	s.stamp()
	return nil
}

// stamp records the log file as this session leaves it, so the next session can tell that
// nothing else wrote it without reading it all (audit.Log.Stamp). It is best effort: a
// stamp that cannot be written only costs the next command a full read.
func (s *session) stamp() {
	if b, err := s.log.Stamp(s.head); err == nil && s.st.SetLockNote(b) == nil {
		s.unstamped = false
	}
}

// finish commits when the handler succeeded or recorded a denial, and releases the lock.
// A store error (a file that would not decrypt) commits nothing, so no file changes.
func (s *session) finish(err error) error {
	defer s.st.Close()
	if err == nil || s.denied {
		if cerr := s.commit(); cerr != nil {
			return cerr
		}
	}
	if err == nil && s.unstamped {
		s.stamp() // a command that wrote nothing still spares the next one the full read
	}
	return err
}

// clientID is --client-id, else $SECRETS_CLIENT_ID, else <parent process name>-<ppid>.
func (a *app) clientID(flag string, actor audit.Actor) (string, error) {
	id := flag
	if id == "" {
		id = a.getenv("SECRETS_CLIENT_ID")
	}
	if id == "" {
		return fmt.Sprintf("%s-%d", actor.Parent, actor.PPID), nil
	}
	if len(id) > 128 {
		return "", usagef("client id is longer than 128 bytes")
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return "", usagef("client id contains a control character")
		}
	}
	return id, nil
}
