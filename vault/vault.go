// Package vault is the application layer of secrets: the transaction every command runs
// in, the lease state it reads and writes, and one function per use case (lease, env,
// exec, revoke, rotate, killswitch, watch, audit, status, …). It is the only package that
// composes store, audit, lease, envfile and killswitch. The CLI and the MCP server both
// call it with typed inputs and render its typed results; neither re-runs the other.
//
// A use case is a function of Vault. It checks its input, runs one or more transactions
// (Update to change the store, View to read it), and returns a result struct whose json
// tags are the output contract. Library code never prints: warnings go to Options.Warn,
// values a caller must see (a raw lease) come back in the result.
package vault

import (
	"fmt"
	"github.com/agent-secrets/secrets/envfile"
	"os"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/store"
)

// Options says where the store is, how to unlock it and who is calling.
type Options struct {
	// Dir is the store directory, absolute.
	Dir string
	// StateDir holds the store's local part (leases.age, the log, the lock file,
	// killswitch.intent); "" is Dir. The shared part (identity, store key, secrets,
	// config) stays in Dir.
	StateDir string
	// LockTimeout bounds the wait for the store lock; 0 uses config.json's lock_timeout.
	LockTimeout time.Duration
	// IdentityKey ($SECRETS_IDENTITY) and IdentityFile ($SECRETS_IDENTITY_FILE) replace
	// identity.age when set.
	IdentityKey, IdentityFile string
	// Now is the clock; each transaction reads it once.
	Now func() time.Time
	// Environ is the caller's environment: it names the agent host in the audit actor, and
	// is what rotation hooks and exec children start from (without the identity).
	Environ []string
	// ClientID is who is asking when a request names nobody ($SECRETS_CLIENT_ID); empty
	// means <parent process name>-<ppid>.
	ClientID string
	// Agent, when set, is recorded as actor.agent instead of what Environ shows (the MCP
	// server records "mcp").
	Agent string
	// Command is the request's command line as a person approving it reads it
	// (EscapeCommand); it binds an approval to what was asked.
	Command string
	// Warn receives problems that do not fail the call, as they happen. Nil drops them.
	Warn func(msg string)
	// Caller, when set, is who asks instead of this process's user: the owner side of a
	// guarded store runs as the store's user for a caller sudo named (SUDO_UID). It is the
	// audit actor's uid and what policy matches; the working directory, which the caller
	// chose, is not recorded.
	Caller *Caller
	// Due receives, after each transaction that succeeded, the caller's .env files whose
	// leases ended (in a guarded store the caller side removes them, not this process):
	// set only with Caller.
	Due func([]envfile.Record)
}

// Caller is the OS user a guarded store's owner side serves.
type Caller struct {
	UID    int
	User   string
	Groups []string
}

// Vault runs use cases against one store. It holds no open file between calls: each
// transaction takes the store lock and releases it. It is safe to use from one goroutine
// at a time; across processes, the lock makes each transaction the only writer.
type Vault struct {
	o     Options
	actor audit.Actor
}

// New returns a Vault for o. It reads nothing yet.
func New(o Options) *Vault {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Warn == nil {
		o.Warn = func(string) {}
	}
	a := audit.Self(o.Environ)
	if o.Agent != "" {
		a.Agent = o.Agent
	}
	if o.Caller != nil {
		a.UID, a.CWD = o.Caller.UID, ""
	}
	return &Vault{o: o, actor: a}
}

// Dir returns the store directory.
func (v *Vault) Dir() string { return v.o.Dir }

func (v *Vault) storeOptions() store.Options {
	return store.Options{Dir: v.o.Dir, StateDir: v.o.StateDir, LockTimeout: v.o.LockTimeout, IdentityKey: v.o.IdentityKey, IdentityFile: v.o.IdentityFile, Now: v.o.Now}
}

// failsafeOptions are storeOptions for a command that only cuts access
// (store.Options.Failsafe).
func (v *Vault) failsafeOptions() store.Options {
	o := v.storeOptions()
	o.Failsafe = true
	return o
}

// client resolves who is asking: flag (a request's --client-id), else Options.ClientID,
// else <parent process name>-<ppid>. A client id is a label in the audit log, so it is
// bounded and may hold no control character.
func (v *Vault) client(flag string) (string, error) {
	id := flag
	if id == "" {
		id = v.o.ClientID
	}
	if id == "" {
		return fmt.Sprintf("%s-%d", v.actor.Parent, v.actor.PPID), nil
	}
	if len(id) > 128 {
		return "", Usagef("client id is longer than 128 bytes")
	}
	if escapeControl(id) != id {
		// C0 and C1 controls and the marks that reorder text: an approval shows the
		// client id to a person at a terminal.
		return "", Usagef("client id contains a control character")
	}
	return id, nil
}

func (v *Vault) warn(format string, args ...any) { v.o.Warn(fmt.Sprintf(format, args...)) }

// AgentOf names the agent host an environment shows (AI_AGENT, CLAUDECODE, …), or "":
// what the audit actor records as agent.
func AgentOf(environ []string) string { return audit.DetectAgent(environ) }

// DefaultClientID is the client id of a request that names none: the name and pid of
// the process that ran this one. A guarded store's caller side sends its own, since on
// the owner side that process is sudo.
func DefaultClientID() string {
	return fmt.Sprintf("%s-%d", audit.ProcessName(os.Getppid()), os.Getppid())
}
