package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/envfile"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/store"
	"github.com/urfave/cli/v3"
)

func (a *app) cmdEnv() *cli.Command {
	return &cli.Command{
		Name:      "env",
		Usage:     "Lease the project's secrets and write them to a managed .env file (0600), removed when the leases end",
		UsageText: "secrets env [--output .env] [--force] [--file .secrets.json | --secret NAME[=ENV_VAR] …] [--ttl D]",
		Flags: append(mappingFlags(),
			&cli.StringFlag{Name: "output", Value: ".env", Usage: "the file to write"},
			&cli.BoolFlag{Name: "force", Usage: "replace an existing file"},
		),
		Action: a.act(a.env),
	}
}

// mappingFlags are the flags that say which secrets go into which variables.
func mappingFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "file", Value: ".secrets.json", Usage: "the project's mapping file"},
		&cli.StringSliceFlag{Name: "secret", Usage: "NAME[=ENV_VAR], repeatable, instead of a mapping file"},
		&cli.StringFlag{Name: "ttl", Usage: "TTL for entries that set none (default: default_lease_ttl)"},
		clientIDFlag(),
	}
}

// mappings reads --secret flags, or else the project file. It returns the mappings,
// where they came from (for error paths) and the file's client_id.
func (a *app) mappings(c *cli.Command) ([]envfile.Mapping, string, string, error) {
	if specs := c.StringSlice("secret"); len(specs) > 0 {
		ms, err := envfile.ParseFlags(specs)
		return ms, "--secret", "", err
	}
	path := c.String("file")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, path, "", &envfile.ProblemError{File: path, Msg: "not found; create it, or name secrets with --secret NAME[=ENV_VAR]"}
	}
	if err != nil {
		return nil, path, "", err
	}
	p, err := envfile.ParseProject(path, data)
	if err != nil {
		return nil, path, "", err
	}
	return p.Secrets, path, p.ClientID, nil
}

// grantMapped checks the mappings against the store and grants one lease each, like
// proto (kind, path, supervisor), returning the leases with their variables. Nothing is
// granted if any check fails, including a value no environment variable can hold (a NUL
// byte), which env and exec would both have to refuse. The session holds the secrets.
func (s *session) grantMapped(source string, ms []envfile.Mapping, ttl string, proto lease.Request) ([]lease.Lease, []envfile.Var, error) {
	sec := s.secrets
	exists := func(name string) bool { _, ok := sec.Secrets[name]; return ok }
	if err := envfile.Check(source, ms, exists, s.mgr.CheckTTL); err != nil {
		return nil, nil, err
	}
	for _, m := range ms {
		if bytes.IndexByte(sec.Secrets[m.Name].Value, 0) >= 0 {
			return nil, nil, fmt.Errorf("%w: %s holds a NUL byte", envfile.ErrNotEnvSafe, m.Name)
		}
	}
	if ttl != "" {
		if err := s.mgr.CheckTTL(ttl); err != nil {
			return nil, nil, err
		}
	}
	leases := make([]lease.Lease, 0, len(ms))
	vars := make([]envfile.Var, 0, len(ms))
	for _, m := range ms {
		t := m.TTL
		if t == "" {
			t = ttl
		}
		r := proto
		r.Secret, r.ClientID, r.TTL = m.Name, s.client, t
		l, err := s.mgr.Grant(&s.state.Leases, r)
		if err != nil {
			lease.RevokeIDs(&s.state.Leases, leaseIDs(leases))
			return nil, nil, err
		}
		leases = append(leases, l)
		vars = append(vars, envfile.Var{Name: m.EnvVar, Value: sec.Secrets[m.Name].Value})
	}
	return leases, vars, nil
}

// projectClient applies a mapping file's client_id unless --client-id was given.
func (s *session) projectClient(c *cli.Command, fileClient string) error {
	if c.String("client-id") != "" || fileClient == "" {
		return nil
	}
	id, err := s.a.clientID(fileClient, s.actor)
	s.client = id
	return err
}

func (a *app) env(ctx context.Context, c *cli.Command) (*reply, error) {
	if c.NArg() > 0 {
		return nil, usagef("env takes no arguments; name secrets with --secret or in %s", c.String("file"))
	}
	ms, source, fileClient, err := a.mappings(c)
	if err != nil {
		return nil, err
	}
	out, err := filepath.Abs(c.String("output"))
	if err != nil {
		return nil, err
	}
	s, err := a.open(ctx, c, modeWrite|withSecrets)
	if err != nil {
		return nil, err
	}
	var leases []lease.Lease
	var bashOnly, canaries []string
	canaryAction := s.st.Config().CanaryAction
	err = s.finish(func() error {
		if err := s.projectClient(c, fileClient); err != nil {
			return err
		}
		denied := audit.Entry{Event: "env_denied", Detail: out}
		if err := s.refuseInLockdown(denied); err != nil {
			return err
		}
		// A file secrets wrote before is replaced by ending its leases, which removes it.
		if i := slices.IndexFunc(s.state.EnvFiles, func(r envfile.Record) bool { return r.Path == out }); i >= 0 && c.Bool("force") {
			s.end(lease.RevokeIDs(&s.state.Leases, s.state.EnvFiles[i].LeaseIDs), "lease_revoke", "replaced by secrets env --force")
		}
		if err := envfile.CheckOutput(out, c.Bool("force")); err != nil {
			return s.deny(denied, err)
		}
		var vars []envfile.Var
		leases, vars, err = s.grantMapped(source, ms, c.String("ttl"), lease.Request{Kind: lease.KindEnv, Path: out})
		if err != nil {
			return s.deny(denied, err)
		}
		ids, expires := leaseIDs(leases), latest(leases)
		content, only, err := envfile.Render(vars, ids, expires)
		if err != nil {
			lease.RevokeIDs(&s.state.Leases, ids)
			return s.deny(denied, err)
		}
		defer clear(content)
		bashOnly, canaries = only, s.canaries(leases)
		s.state.EnvFiles = append(s.state.EnvFiles, envfile.Record{Path: out, SHA256: envfile.Hash(content), LeaseIDs: ids, CreatedAt: a.now().UTC()})
		for _, l := range leases {
			s.record(audit.Entry{Event: "lease_grant", Secret: l.Secret, LeaseID: l.ID, OK: true, Detail: "env " + out + ", ttl " + l.TTL})
		}
		s.record(audit.Entry{Event: "env_write", OK: true, Detail: fmt.Sprintf("%s: %d variables", out, len(vars))})
		// The grant is durable before any value reaches the disk.
		if err := s.commit(); err != nil {
			return err
		}
		if err := envfile.Write(out, content); err != nil {
			s.end(lease.RevokeIDs(&s.state.Leases, ids), "lease_revoke", "writing the .env file failed")
			return s.deny(audit.Entry{Event: "env_write", Detail: out}, fmt.Errorf("%w: %s: %v", store.ErrWrite, out, err))
		}
		return nil
	}())
	if err != nil {
		return nil, err
	}
	// The file is written as usual; the killswitch then ends its leases, which removes it.
	a.tripCanaries(ctx, c, canaries, s.client, canaryAction)
	for _, name := range bashOnly {
		a.warn(fmt.Sprintf("%s holds characters that only bash reads back exactly from a .env file; other dotenv parsers may misread it or fail on the file. Prefer: secrets exec -- CMD", name))
	}
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.EnvVar
	}
	result := map[string]any{
		"path":       out,
		"variables":  names,
		"lease_ids":  leaseIDs(leases),
		"expires_at": latest(leases).UTC().Format(time.RFC3339),
		"gitignore":  gitignore(out),
		"warnings":   append([]string{}, bashOnly...),
	}
	return &reply{result: result, next: []action{
		{"set -a; source " + shellWord(out) + "; set +a", "Load the variables into the current shell"},
		{"secrets cleanup", "Remove the file now (it is also removed when its leases end)"},
		{"secrets exec --file " + shellWord(source) + " -- CMD", "Run a command with the secrets and no file at all"},
	}}, nil
}

// latest is the expiry of the longest lease: when the file will certainly be gone.
func latest(ls []lease.Lease) time.Time {
	var t time.Time
	for _, l := range ls {
		if l.ExpiresAt.After(t) {
			t = l.ExpiresAt
		}
	}
	return t
}

// gitignore adds the file to .gitignore when it is in a git work tree and not ignored
// yet, and says what it did. Git missing or failing is not an error: the file is written.
func gitignore(path string) string {
	dir, base := filepath.Split(path)
	git := func(args ...string) error {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		return cmd.Run()
	}
	if git("rev-parse", "--is-inside-work-tree") != nil {
		return "not in a git work tree"
	}
	if git("check-ignore", "-q", "--", base) == nil {
		return "already ignored by git"
	}
	gi := filepath.Join(dir, ".gitignore")
	old, err := os.ReadFile(gi)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "could not read .gitignore: " + err.Error()
	}
	f, err := os.OpenFile(gi, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return "could not update .gitignore: " + err.Error()
	}
	defer f.Close()
	line := base + "\n"
	if len(old) > 0 && old[len(old)-1] != '\n' {
		line = "\n" + line
	}
	if _, err := f.WriteString(line); err != nil {
		return "could not update .gitignore: " + err.Error()
	}
	return "added " + base + " to " + gi
}
