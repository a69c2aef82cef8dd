package main

import (
	"context"
	"time"

	"github.com/agent-secrets/secrets/store"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdStatus() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "Show the store: secrets, active leases, identity, audit log health",
		UsageText: "secrets status",
		Action:    a.act(a.status),
	}
}

func (a *app) status(ctx context.Context, c *cli.Command) (*reply, error) {
	if c.NArg() > 0 {
		return nil, usagef("status takes no arguments")
	}
	s, err := a.open(ctx, c, modeRead|withSecrets)
	if err != nil {
		return nil, err
	}
	var result map[string]any
	err = s.finish(func() error {
		sec, err := s.loadSecrets()
		if err != nil {
			return err
		}
		auditState := map[string]any{"path": s.log.Path(), "entries": s.head.Seq, "head": s.head, "status": "ok"}
		if s.broken != nil {
			auditState["status"] = "tampered"
			auditState["problem"] = s.broken.Error()
		}
		cfg := s.st.Config()
		result = map[string]any{
			"secrets_count": len(sec.Secrets),
			"active_leases": len(s.active()),
			"dir":           s.st.Dir(),
			"identity":      map[string]any{"source": s.st.IdentitySource(), "public_key": s.st.PublicKey()},
			"audit":         auditState,
			"heartbeat":     heartbeatInfo(cfg.Heartbeat, s.state.Heartbeat),
			"lockdown":      lockdownInfo(s.state.Lockdown, s.st.UnlockCode()),
		}
		return nil
	}())
	if err != nil {
		return nil, err
	}
	next := []action{{"secrets list", "List stored secrets"}, {"secrets leases", "List active leases"}}
	if s.state.Lockdown != nil {
		next = []action{{"secrets unlock", "Lift the lockdown: a person types the fingerprint on a terminal"}}
	}
	if s.broken != nil {
		next = []action{{"secrets audit --verify", "Find where the audit log was changed"}, {"secrets audit --reset --yes", "Move the damaged log aside and start a new one"}}
	}
	return &reply{result: result, next: next}, nil
}

// heartbeatInfo is the heartbeat's configuration and its last result.
func heartbeatInfo(cfg store.Heartbeat, st *store.HeartbeatState) map[string]any {
	m := map[string]any{"enabled": cfg.Enabled, "url": cfg.URL, "failures_before_action": cfg.FailuresBeforeAction}
	if st != nil {
		m["last_check"] = st.LastCheck.UTC().Format(time.RFC3339)
		m["last_ok"] = st.LastOK
		m["last_error"] = st.LastError
		m["failures"] = st.Failures
		m["fired"] = st.Fired
	}
	return m
}
