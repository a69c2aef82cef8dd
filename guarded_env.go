package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/agent-secrets/secrets/guard"
	"github.com/agent-secrets/secrets/vault"
)

// .env files in a guarded store (DESIGN.md section 10) belong to the caller: the caller
// side writes them, as the caller, with the bytes the owner side rendered and recorded,
// and removes them once their leases end. The owner side keeps each record (path, hash,
// leases, the caller's uid) and never opens its path: it tells the caller side, in the
// answer to each request, which of its files are due, and forgets a record only when
// the caller side says the file is gone.

// envRequest is secrets env's grant as the caller side asks it.
type envRequest struct {
	File     string        `json:"file,omitempty"`
	Project  []byte        `json:"project,omitempty"`
	Secrets  []string      `json:"secrets,omitempty"`
	Output   string        `json:"output"` // the caller's absolute path: a name to the owner side
	Force    bool          `json:"force,omitempty"`
	TTL      string        `json:"ttl,omitempty"`
	ClientID string        `json:"client_id,omitempty"`
	Wait     time.Duration `json:"wait,omitempty"`
}

// cleanupRequest is secrets cleanup's.
type cleanupRequest struct {
	DryRun   bool   `json:"dry_run,omitempty"`
	All      bool   `json:"all,omitempty"`
	ClientID string `json:"client_id,omitempty"`
}

// secretRequest is an agent user's add: the name and the value a person gave.
type secretRequest struct {
	Name     string `json:"name"`
	Value    []byte `json:"value"`
	ClientID string `json:"client_id,omitempty"`
}

// command is the request as a command line, as an approval records it.
func (r *ownerRequest) command() []string {
	switch {
	case r.Env != nil:
		return []string{"secrets", "env", "--output", r.Env.Output}
	case r.Cleanup != nil:
		return []string{"secrets", "cleanup"}
	case r.Request != nil:
		return []string{"secrets", "add", r.Request.Name}
	}
	return []string{"secrets"}
}

// addGuarded is an agent user's secrets add: a pending-secret request through the owner
// side of c. It fails with approval_required naming the request, since nothing is added
// until an admin approves it.
func (a *app) addGuarded(ctx context.Context, c *guard.Config, name string, value []byte, client string) error {
	resp, err := a.askOwner(ctx, c, ownerRequest{Request: &secretRequest{Name: name, Value: value, ClientID: client}})
	if err != nil {
		return err
	}
	if resp.Error != nil {
		return resp.Error
	}
	return fmt.Errorf("%w: the owner side answered nothing", guard.ErrUnavailable)
}

// envGrant is what the owner side answers an envRequest with: the file's envelope
// result and the bytes to write (none when a canary's trip ended the leases at once).
type envGrant struct {
	Result  vault.EnvResult `json:"result"`
	Content []byte          `json:"content,omitempty"`
}

// ownerError is a refusal of the owner side's, with its stable code and fix.
type ownerError struct {
	Message string `json:"message"`
	Code    string `json:"code"`
	Fix     string `json:"fix"`
}

func (e *ownerError) Error() string { return e.Message }

// askOwner sends req to the owner side of c and returns its answer.
func (a *app) askOwner(ctx context.Context, c *guard.Config, req ownerRequest) (*ownerResponse, error) {
	req.Release, req.ClientID, req.Agent = version, a.clientLabel(), agentLabel(a.environ)
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	resp, err := callSudo(ctx, c, b)
	if err != nil {
		return nil, err
	}
	if resp.Release != version {
		return nil, fmt.Errorf("%w: this secrets is release %s and the guarded store's is %s", guard.ErrUnavailable, version, resp.Release)
	}
	a.stderr.Write(resp.Stderr)
	return resp, nil
}

// envGuarded is secrets env through the owner side of c.
func (a *app) envGuarded(ctx context.Context, c *guard.Config, in vault.EnvInput) (*vault.EnvResult, error) {
	p, err := in.Project.Load()
	if err != nil {
		return nil, err
	}
	out, err := filepath.Abs(in.Output)
	if err != nil {
		return nil, err
	}
	if err := vault.CheckEnvOutput(out, in.Force); err != nil {
		return nil, err
	}
	req := &envRequest{File: p.File, Project: p.Data, Secrets: p.Secrets, Output: out, Force: in.Force, TTL: in.TTL, ClientID: in.ClientID, Wait: in.Wait}
	resp, err := a.askOwner(ctx, c, ownerRequest{Env: req})
	if err != nil {
		return nil, err
	}
	a.removeDue(ctx, c, resp.Due)
	if resp.Error != nil {
		return nil, resp.Error
	}
	if resp.Env == nil {
		return nil, fmt.Errorf("%w: the owner side granted nothing", guard.ErrUnavailable)
	}
	g := resp.Env
	defer clear(g.Content)
	res := g.Result
	res.Source = p.File
	if len(p.Secrets) > 0 {
		res.Source = "--secret"
	}
	if g.Content != nil {
		if err := vault.WriteEnvFile(out, g.Content); err != nil {
			// Its leases end now: nothing holds their values.
			for _, id := range res.LeaseIDs {
				a.askOwner(ctx, c, ownerRequest{Argv: []string{"revoke", id}})
			}
			return nil, err
		}
	}
	res.Gitignore = vault.Gitignore(out)
	return &res, nil
}

// cleanupGuarded is secrets cleanup through the owner side of c.
func (a *app) cleanupGuarded(ctx context.Context, c *guard.Config, in vault.CleanupInput) (*vault.CleanupResult, error) {
	resp, err := a.askOwner(ctx, c, ownerRequest{Cleanup: &cleanupRequest{DryRun: in.DryRun, All: in.All, ClientID: in.ClientID}})
	if err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	res := &vault.CleanupResult{Removed: []vault.Cleaned{}, Skipped: []vault.Cleaned{}, DryRun: in.DryRun}
	if resp.Cleanup != nil {
		res.Removed, res.Skipped = append(res.Removed, resp.Cleanup.Removed...), append(res.Skipped, resp.Cleanup.Skipped...)
	}
	if in.DryRun {
		removed, skipped, _ := vault.RemoveFiles(resp.Due, true)
		res.Removed, res.Skipped = append(res.Removed, removed...), append(res.Skipped, skipped...)
		return res, nil
	}
	removed, skipped := a.removeDue(ctx, c, resp.Due)
	res.Removed, res.Skipped = append(res.Removed, removed...), append(res.Skipped, skipped...)
	return res, nil
}

// removeDue removes the caller's .env files whose leases ended, as cleanup would, and
// tells the owner side which are gone so that it forgets them. A file someone changed is
// left, and its record kept for cleanup to report.
func (a *app) removeDue(ctx context.Context, c *guard.Config, due []vault.FileRecord) (removed, skipped []vault.Cleaned) {
	removed, skipped, gone := vault.RemoveFiles(due, false)
	if len(gone) > 0 {
		if _, err := a.askOwner(ctx, c, ownerRequest{Forget: gone}); err != nil {
			a.warn(fmt.Sprintf("the guarded store could not be told that %d .env files are gone: %v", len(gone), err))
		}
	}
	return removed, skipped
}

// ownerFiles serves an env, cleanup, forget or pending-secret request on the owner side.
func ownerFiles(ctx context.Context, o vault.Options, req ownerRequest, stdout io.Writer) int {
	var errs []byte
	o.Warn = func(msg string) { errs = fmt.Appendf(errs, "secrets: warning: %s\n", msg) }
	var due []vault.FileRecord
	o.Due = func(d []vault.FileRecord) { due = d }
	v := vault.New(o)
	resp := ownerResponse{Release: version}
	var err error
	switch {
	case req.Env != nil && req.Env.Project == nil && len(req.Env.Secrets) == 0:
		// The mapping file is the caller's to read; its name here is a label only.
		err = vault.Usagef("the env request names no secrets")
	case req.Env != nil:
		e := req.Env
		var res *vault.EnvResult
		res, err = v.Env(ctx, vault.EnvInput{
			Project: vault.Project{File: printable(e.File, 256), Secrets: e.Secrets, Data: e.Project},
			Output:  e.Output, Force: e.Force, TTL: e.TTL, ClientID: e.ClientID, Wait: max(0, e.Wait), Elsewhere: true,
		})
		if err == nil {
			resp.Env = &envGrant{Result: *res, Content: res.Content}
		}
	case req.Cleanup != nil:
		resp.Cleanup, err = v.Cleanup(ctx, vault.CleanupInput{DryRun: req.Cleanup.DryRun, All: req.Cleanup.All, ClientID: req.Cleanup.ClientID})
	case req.Request != nil:
		err = v.RequestSecret(ctx, vault.RequestInput{Name: req.Request.Name, Value: req.Request.Value, ClientID: req.Request.ClientID})
		clear(req.Request.Value)
	default:
		err = v.Forget(ctx, req.Forget)
	}
	if err != nil {
		p := classify(err)
		resp.Exit, resp.Error = p.exit, &ownerError{Message: err.Error(), Code: p.code, Fix: p.fix}
	}
	resp.Due, resp.Stderr = due, errs
	json.NewEncoder(stdout).Encode(resp)
	return 0
}
