// Package envfile is the project side of secrets: the .secrets.json mapping from secret
// names to environment variables, the dotenv encoding of values, and the safe writing and
// removal of the .env files that `secrets env` manages.
package envfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"syscall"

	names "github.com/agent-secrets/secrets/internal/name"
	"github.com/agent-secrets/secrets/policy"
)

// ErrInvalid matches every problem with a .secrets.json file or a --secret flag.
var ErrInvalid = errors.New("invalid project file")

// Mapping places one secret in one environment variable.
type Mapping struct {
	Name   string `json:"name"`
	EnvVar string `json:"env_var"`
	TTL    string `json:"ttl,omitempty"`
	// Inject, when set, keeps the value out of the child: its variable holds a
	// placeholder, and the exec supervisor's proxy puts the value into its requests to
	// the rule's hosts (DESIGN.md section 12).
	Inject *policy.InjectRule `json:"inject,omitempty"`
}

// Project is a .secrets.json file.
type Project struct {
	Secrets  []Mapping `json:"secrets"`
	ClientID string    `json:"client_id,omitempty"`
}

// ProblemError names the JSON path of a problem in a project file. It matches ErrInvalid.
type ProblemError struct {
	File string
	Path string // e.g. secrets[1].env_var
	Msg  string
}

func (e *ProblemError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, e.Path, e.Msg)
}

func (e *ProblemError) Is(target error) bool { return target == ErrInvalid }

// Fix says what to change.
func (e *ProblemError) Fix() string {
	if e.File == "--inject" {
		return "give --inject NAME[=ENV_VAR]@HOST[,HOST…], e.g. --inject github_token=GH_TOKEN@api.github.com; for a header, format, methods or paths, or a shared suffix, write the rule in .secrets.json"
	}
	if strings.Contains(e.Path, ".inject") {
		return fmt.Sprintf(`fix %s in %s; an inject rule is {"hosts":["api.github.com"],"header":"Authorization","format":"Bearer {value}"} (or "basic":"password", or "query":"key"; "methods", "paths")`, orTop(e.Path), e.File)
	}
	return fmt.Sprintf(`fix %s in %s; the format is {"secrets":[{"name":"github_token","env_var":"GITHUB_TOKEN","ttl":"30m"}],"client_id":"my-project"}`, orTop(e.Path), e.File)
}

func orTop(p string) string {
	if p == "" {
		return "the file"
	}
	return p
}

// ParseProject decodes a .secrets.json file strictly: "secrets" is required, unknown keys
// are refused, and each entry needs a name and a valid, unique env_var. Whether the
// secrets exist and the TTLs are allowed is for Check, which knows the store.
func ParseProject(file string, data []byte) (*Project, error) {
	bad := func(path, format string, args ...any) error {
		return &ProblemError{File: file, Path: path, Msg: fmt.Sprintf(format, args...)}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, bad("", "not a JSON object: %v", err)
	}
	p := &Project{}
	for _, k := range sortedKeys(top) {
		switch k {
		case "secrets":
		case "client_id":
			if err := json.Unmarshal(top[k], &p.ClientID); err != nil {
				return nil, bad("client_id", "must be a string")
			}
		default:
			return nil, bad(k, "unknown key (allowed: secrets, client_id)")
		}
	}
	raw, ok := top["secrets"]
	if !ok {
		return nil, bad("secrets", "missing; list the secrets to map")
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil || entries == nil {
		return nil, bad("secrets", "must be an array")
	}
	if len(entries) == 0 {
		return nil, bad("secrets", "is empty")
	}
	for i, e := range entries {
		at := fmt.Sprintf("secrets[%d]", i)
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(e, &fields); err != nil || fields == nil {
			return nil, bad(at, "must be an object")
		}
		var m Mapping
		for _, k := range sortedKeys(fields) {
			var dst *string
			switch k {
			case "name":
				dst = &m.Name
			case "env_var":
				dst = &m.EnvVar
			case "ttl":
				dst = &m.TTL
			case "inject":
				rule, err := policy.DecodeInject(fields[k], at+".inject", false)
				if err != nil {
					var ie *policy.InjectError
					if errors.As(err, &ie) {
						return nil, bad(ie.Path, "%s", ie.Msg)
					}
					return nil, bad(at+".inject", "%v", err)
				}
				m.Inject = rule
				continue
			default:
				return nil, bad(at+"."+k, "unknown key (allowed: name, env_var, ttl, inject)")
			}
			if err := json.Unmarshal(fields[k], dst); err != nil {
				return nil, bad(at+"."+k, "must be a string")
			}
		}
		if m.Name == "" {
			return nil, bad(at+".name", "missing")
		}
		if m.EnvVar == "" {
			return nil, bad(at+".env_var", "missing")
		}
		p.Secrets = append(p.Secrets, m)
	}
	for i, m := range p.Secrets {
		if !names.Valid(m.Name) {
			return nil, &ProblemError{File: file, Path: fmt.Sprintf("secrets[%d].name", i), Msg: "not a secret name (" + names.Shown(m.Name) + ")"}
		}
	}
	if err := checkVars(file, p.Secrets); err != nil {
		return nil, err
	}
	return p, nil
}

// ParseFlags reads --secret NAME[=ENV_VAR] values. Without =ENV_VAR the variable is the
// name upper-cased with every other character made an underscore (github_token -> GITHUB_TOKEN).
func ParseFlags(specs []string) ([]Mapping, error) {
	var ms []Mapping
	for _, s := range specs {
		name, env, ok := strings.Cut(s, "=")
		if !ok {
			env = EnvName(name)
		}
		if name == "" || env == "" {
			return nil, &ProblemError{File: "--secret", Path: names.Word(name) + "=…", Msg: "want NAME or NAME=ENV_VAR"}
		}
		if !names.Valid(name) {
			// Perhaps a value pasted in the wrong place: neither it nor the variable made
			// of it is echoed.
			return nil, &ProblemError{File: "--secret", Path: names.Word(name), Msg: "not a secret name (1-128 characters of A-Z a-z 0-9 _ . - /, starting with a letter or digit)"}
		}
		ms = append(ms, Mapping{Name: name, EnvVar: env})
	}
	if err := checkVars("--secret", ms); err != nil {
		return nil, err
	}
	return ms, nil
}

// ParseInjectFlags reads --inject NAME[=ENV_VAR]@HOST[,HOST…] values: the secret goes
// into requests to those hosts in the Authorization header (where the child puts its
// placeholder, Basic credentials included), and the variable holds the placeholder.
func ParseInjectFlags(specs []string) ([]Mapping, error) {
	var ms []Mapping
	for _, s := range specs {
		spec, hosts, ok := strings.Cut(s, "@")
		name, env, named := strings.Cut(spec, "=")
		if !named {
			env = EnvName(name)
		}
		if !ok || name == "" || env == "" || hosts == "" {
			return nil, &ProblemError{File: "--inject", Path: names.Word(name) + "=…", Msg: "want NAME=ENV_VAR@HOST[,HOST…]"}
		}
		if !names.Valid(name) {
			return nil, &ProblemError{File: "--inject", Path: names.Word(name), Msg: "not a secret name (1-128 characters of A-Z a-z 0-9 _ . - /, starting with a letter or digit)"}
		}
		rule := &policy.InjectRule{Hosts: strings.Split(hosts, ",")}
		if err := rule.Validate("--inject "+names.Word(name), false); err != nil {
			var ie *policy.InjectError
			if errors.As(err, &ie) {
				return nil, &ProblemError{File: "--inject", Path: names.Word(name) + "@" + hosts, Msg: ie.Msg}
			}
			return nil, err
		}
		ms = append(ms, Mapping{Name: name, EnvVar: env, Inject: rule})
	}
	return ms, nil
}

// CheckVars refuses invalid and duplicate variable names among mappings from flags.
func CheckVars(ms []Mapping) error { return checkVars("--secret", ms) }

// checkVars refuses invalid and duplicate variable names.
func checkVars(file string, ms []Mapping) error {
	seen := map[string]int{}
	for i, m := range ms {
		at := fmt.Sprintf("secrets[%d].env_var", i)
		if file == "--secret" || file == "--inject" {
			at = names.Word(m.Name) + "=" + m.EnvVar
		}
		if !ValidVar(m.EnvVar) {
			return &ProblemError{File: file, Path: at, Msg: fmt.Sprintf("%q is not an environment variable name (letters, digits and _, not starting with a digit)", m.EnvVar)}
		}
		if j, dup := seen[m.EnvVar]; dup {
			return &ProblemError{File: file, Path: at, Msg: fmt.Sprintf("%s is already set by secrets[%d]", m.EnvVar, j)}
		}
		seen[m.EnvVar] = i
	}
	return nil
}

// Check tests each mapping against the store: the secret must exist and the TTL (when
// given) must be accepted by checkTTL. Errors name the entry.
func Check(file string, ms []Mapping, exists func(string) bool, checkTTL func(string) error) error {
	for i, m := range ms {
		at := fmt.Sprintf("secrets[%d]", i)
		if file == "--secret" || file == "--inject" {
			at = names.Word(m.Name)
		}
		if !exists(m.Name) {
			return &ProblemError{File: file, Path: at + ".name", Msg: fmt.Sprintf("no secret named %s in the store (see secrets list)", names.Shown(m.Name))}
		}
		if m.TTL != "" {
			if err := checkTTL(m.TTL); err != nil {
				return &ProblemError{File: file, Path: at + ".ttl", Msg: err.Error()}
			}
		}
	}
	return nil
}

// ValidVar reports whether s is a portable environment variable name.
func ValidVar(s string) bool {
	if s == "" || '0' <= s[0] && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// EnvName suggests a variable name for a secret: GITHUB_TOKEN for github_token.
func EnvName(secret string) string {
	b := []byte(secret)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		default:
			b[i] = '_'
		}
	}
	if len(b) > 0 && '0' <= b[0] && b[0] <= '9' {
		return "_" + string(b)
	}
	return string(b)
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// MaxProjectFile bounds a mapping file: a real one is a few hundred bytes.
const MaxProjectFile = 1 << 20

// ReadProject reads a mapping file whose path a project or an agent's tool chose: only a
// regular file, and at most MaxProjectFile bytes of it, so that /dev/zero cannot exhaust
// memory and a FIFO cannot hang the caller (it is opened without blocking and refused).
func ReadProject(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &ProblemError{File: path, Msg: "not a regular file"}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxProjectFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxProjectFile {
		return nil, &ProblemError{File: path, Msg: "larger than 1 MiB; a mapping file is a short list of names"}
	}
	return data, nil
}
