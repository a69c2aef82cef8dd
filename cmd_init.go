package main

import (
	"context"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/store"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdInit() *cli.Command {
	return &cli.Command{
		Name:      "init",
		Usage:     "Create the encrypted store (identity, secrets, leases, audit log, config)",
		UsageText: "secrets init [--pq]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "pq", Usage: "generate a hybrid post-quantum (ML-KEM-768 + X25519) identity"},
		},
		Action: a.act(a.initStore),
	}
}

func (a *app) initStore(ctx context.Context, c *cli.Command) (*reply, error) {
	if c.NArg() > 0 {
		return nil, usagef("init takes no arguments")
	}
	o, err := a.storeOptions(c)
	if err != nil {
		return nil, err
	}
	st, err := store.Init(ctx, store.InitOptions{Options: o, PQ: c.Bool("pq")})
	if err != nil {
		return nil, err
	}
	s, err := a.begin(c, st, modeWrite)
	if err != nil {
		st.Close()
		return nil, err
	}
	kind := "x25519"
	if st.IsPQ() {
		kind = "mlkem768-x25519"
	}
	s.record(audit.Entry{Event: "init", OK: true, Detail: "identity " + kind + " from " + st.IdentitySource()})
	// The audit entry and leases.age first, secrets.age last: its presence is what marks
	// the store initialized, so a crash before it leaves a store that init finishes.
	if err := s.commit(); err != nil {
		st.Close()
		return nil, err
	}
	s.secrets = store.NewSecrets()
	s.secretsDirty = true
	s.stateDirty = false
	if err := st.SaveSecrets(s.secrets); err != nil {
		st.Close()
		return nil, err
	}
	if err := s.finish(nil); err != nil {
		return nil, err
	}
	return &reply{
		result: map[string]any{
			"dir":        st.Dir(),
			"identity":   st.IdentitySource(),
			"public_key": st.PublicKey(),
			"key_type":   kind,
			"config":     st.Path(store.ConfigFile),
		},
		next: []action{
			{"echo \"$VALUE\" | secrets add NAME", "Store a secret from stdin (or run without a pipe to be prompted)"},
			{"secrets status", "Check the store"},
		},
	}, nil
}
