package vault

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/agent-secrets/secrets/envfile"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/store"
)

// Project says which secrets go into which environment variables: Secrets
// (NAME[=ENV_VAR] each, the --secret flags) when given, else the mapping file File
// (.secrets.json), or Data when it is set: the file's content as another process read
// it (the caller side of a guarded store, which reads what the owner side may not).
type Project struct {
	File    string
	Secrets []string
	Inject  []string // --inject NAME[=ENV_VAR]@HOST[,HOST…]: with Secrets, in place of File
	Data    []byte
}

// MaxMappings bounds the secrets one project or command maps: one grant is one
// transaction, which holds the store lock for every lease it writes.
const MaxMappings = 100

// mapping is a Project read: its mappings, where they came from (for error paths), and
// the file's client_id.
type mapping struct {
	ms       []envfile.Mapping
	source   string
	clientID string
}

func (p Project) read() (mapping, error) {
	if n := len(p.Secrets) + len(p.Inject); n > MaxMappings {
		return mapping{source: "--secret"}, Usagef("--secret and --inject are given %d times; a command maps at most %d secrets", n, MaxMappings)
	}
	if len(p.Secrets) > 0 || len(p.Inject) > 0 {
		ms, err := envfile.ParseFlags(p.Secrets)
		if err != nil {
			return mapping{source: "--secret"}, err
		}
		more, err := envfile.ParseInjectFlags(p.Inject)
		if err != nil {
			return mapping{source: "--inject"}, err
		}
		ms = append(ms, more...)
		source := "--secret"
		if len(p.Secrets) == 0 {
			source = "--inject"
		}
		return mapping{ms: ms, source: source}, envfile.CheckVars(ms)
	}
	data, err := p.data()
	if err != nil {
		return mapping{source: p.File}, err
	}
	proj, err := envfile.ParseProject(p.File, data)
	if err != nil {
		return mapping{source: p.File}, err
	}
	if len(proj.Secrets) > MaxMappings {
		return mapping{source: p.File}, &envfile.ProblemError{File: p.File, Msg: fmt.Sprintf("names %d secrets; a project maps at most %d", len(proj.Secrets), MaxMappings)}
	}
	return mapping{ms: proj.Secrets, source: p.File, clientID: proj.ClientID}, nil
}

// data is the mapping file's content: Data, or what File holds.
func (p Project) data() ([]byte, error) {
	if p.Data != nil {
		if len(p.Data) > envfile.MaxProjectFile {
			return nil, &envfile.ProblemError{File: p.File, Msg: "larger than 1 MiB; a mapping file is a short list of names"}
		}
		return p.Data, nil
	}
	data, err := envfile.ReadProject(p.File)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &envfile.ProblemError{File: p.File, Msg: "not found; create it, or name secrets with --secret NAME[=ENV_VAR]"}
	}
	return data, err
}

// Load is p with the mapping file's content in Data, read once and checked as read
// checks it: for a process that hands the mapping to another (the caller side of a
// guarded store, which reads what the owner side may not).
func (p Project) Load() (Project, error) {
	if len(p.Secrets) > 0 || len(p.Inject) > 0 {
		return p, nil
	}
	data, err := p.data()
	if err != nil {
		return p, err
	}
	p.Data = data
	_, err = p.read()
	return p, err
}

// projectClient is who asks for a project's secrets: the request's --client-id, else the
// mapping file's client_id, else the default.
func (v *Vault) projectClient(flag string, m mapping) (string, error) {
	if flag == "" && m.clientID != "" {
		flag = m.clientID
	}
	return v.client(flag)
}

// lookupMapped reads the secrets the mappings name (those secrets.age holds), before
// anything else a use case does: a store that cannot be read fails it with nothing done.
func (tx *Tx) lookupMapped(m mapping) (map[string]*store.Secret, error) {
	names := make([]string, 0, len(m.ms))
	for _, mp := range m.ms {
		names = append(names, mp.Name)
	}
	return tx.lookup(names...)
}

// grantMapped checks the mappings against the store and grants one lease each, like
// proto (kind, path, supervisor), returning the leases with their variables. Nothing is
// granted if any check fails, including a value no environment variable can hold (a NUL
// byte), which env and exec would both have to refuse.
func (tx *Tx) grantMapped(found map[string]*store.Secret, m mapping, ttl string, proto lease.Request, detail string, each ...func(i int, r *lease.Request, v *envfile.Var)) ([]lease.Lease, []envfile.Var, error) {
	exists := func(name string) bool { return found[name] != nil }
	if err := envfile.Check(m.source, m.ms, exists, tx.mgr.CheckTTL); err != nil {
		return nil, nil, err
	}
	for _, mp := range m.ms {
		if bytes.IndexByte(found[mp.Name].Value, 0) >= 0 {
			return nil, nil, fixed{fmt.Errorf("%w: %s holds a NUL byte", envfile.ErrNotEnvSafe, mp.Name),
				"a value with a NUL byte cannot be an environment variable; use secrets lease for it"}
		}
	}
	if ttl != "" {
		if err := tx.mgr.CheckTTL(ttl); err != nil {
			return nil, nil, err
		}
	}
	reqs := make([]lease.Request, 0, len(m.ms))
	vars := make([]envfile.Var, 0, len(m.ms))
	for _, mp := range m.ms {
		t := mp.TTL
		if t == "" {
			t = ttl
		}
		r := proto
		r.Secret, r.ClientID, r.TTL = mp.Name, tx.client, t
		v := envfile.Var{Name: mp.EnvVar, Value: found[mp.Name].Value}
		for _, f := range each {
			f(len(reqs), &r, &v)
		}
		reqs = append(reqs, r)
		vars = append(vars, v)
	}
	leases, err := tx.grantAll(reqs, detail)
	if err != nil {
		return nil, nil, err
	}
	return leases, vars, nil
}

// ChildEnv is the environment of a program we start (an exec child, a rotation hook):
// ours, or with pristine only a few basics, never the store identity, plus vars.
func ChildEnv(base []string, pristine bool, keep []string, vars []envfile.Var) []string {
	allowed := append([]string{"PATH", "HOME", "USER", "LANG", "TERM"}, keep...)
	set := map[string]bool{}
	for _, v := range vars {
		set[v.Name] = true
	}
	env := make([]string, 0, len(base)+len(vars))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if k == "SECRETS_IDENTITY" || k == "SECRETS_IDENTITY_FILE" || set[k] || pristine && !slices.Contains(allowed, k) {
			continue
		}
		env = append(env, kv)
	}
	for _, v := range vars {
		env = append(env, v.Name+"="+string(v.Value))
	}
	return env
}

// EnvName suggests a variable name for a secret: GITHUB_TOKEN for github_token, as a
// --secret NAME without =ENV_VAR uses.
func EnvName(secret string) string { return envfile.EnvName(secret) }
