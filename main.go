// Command secrets is portable credential management for AI agents, CI job steps and the
// people who run them: an age-encrypted store, time-bounded leases and a tamper-evident
// audit log, in one daemonless binary.
//
// This package is the face: the command tree, the global flags, the JSON envelope, the
// `secrets: hint:` lines and the one table from error codes to exit statuses. Each
// cmd_<name>.go reads its flags once into a typed input, makes one call into package
// vault and renders the typed result; read them as the table of contents.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/agent-secrets/secrets/guard"
	"github.com/agent-secrets/secrets/internal/duration"
	"github.com/agent-secrets/secrets/internal/sandbox"
	"github.com/agent-secrets/secrets/vault"
	"github.com/urfave/cli/v3"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	sandbox.Main() // the namespace side of a tool's command (secrets mcp), or nothing
	harden()
	if len(os.Args) == 2 && os.Args[1] == guard.OwnerArg {
		os.Exit(ownerSide(os.Stdin, os.Stdout, os.Stderr)) // run by sudo for an agent user
	}
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run executes one invocation and returns its exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return newApp(stdin, stdout, stderr, os.Environ(), time.Now).run(args)
}

// app is one invocation: its streams, environment and clock. Handlers write only here.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	environ        []string
	now            func() time.Time
	args           []string
	exit           int
	caller         *vault.Caller            // who the owner side of a guarded store serves, or nil
	guarded        *guard.Config            // the guarded store this caller side asks, or nil
	due            func([]vault.FileRecord) // the owner side's: the caller's .env files due for removal
}

func newApp(stdin io.Reader, stdout, stderr io.Writer, environ []string, now func() time.Time) *app {
	return &app{stdin: stdin, stdout: stdout, stderr: stderr, environ: environ, now: now}
}

func (a *app) getenv(key string) string {
	for i := len(a.environ) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(a.environ[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// reply is what a handler hands back on success.
type reply struct {
	result any
	next   []action
	raw    []byte // written as is instead of an envelope (secrets lease without --json)
	quiet  bool   // print nothing: stdout was the command's (secrets exec, secrets mcp)
	exit   int    // with quiet, the exit code
}

// action is one entry of next_actions: a command an agent can run next.
type action struct {
	Command     string `json:"command"`
	Description string `json:"description"`
}

type handler func(ctx context.Context, c *cli.Command) (*reply, error)

func (a *app) run(args []string) int { return a.runContext(context.Background(), args) }

// runContext is run with a context that, when done, stops a secrets exec command.
func (a *app) runContext(ctx context.Context, args []string) int {
	a.args = args
	if a.caller == nil {
		if code, ok := a.routeGuarded(ctx, args); ok {
			return code
		}
	}
	root := a.commands()
	if c := invoked(root, args); c != nil && pruneTree {
		// urfave/cli sets up every command of the tree before it runs one (help flags,
		// flag categories, duplicate checks): a tenth of a lease's own work. A command
		// named outright runs in a tree of just itself, which behaves the same
		// (TestPrunedTreeAsFull).
		root.Commands = []*cli.Command{c}
	}
	err := root.Run(ctx, args)
	if err != nil && a.exit == 0 {
		// Errors that reach here were raised before any handler ran: usage errors.
		a.fail(usageCommand(root, args), err)
	}
	return a.exit
}

// pruneTree is false only in the test that holds a pruned tree to the full one.
var pruneTree = true

// invoked returns the command args name after the global flags, or nil when args name
// none, or a flag or word the root does not know comes first (the full tree reports it).
func invoked(root *cli.Command, args []string) *cli.Command {
	for i := 1; i < len(args); i++ {
		arg := args[i]
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			return root.Command(arg)
		}
		name, _, inline := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		var flag cli.Flag
		for _, f := range root.Flags {
			if slices.Contains(f.Names(), name) {
				flag = f
			}
		}
		if flag == nil || arg == "--" {
			return nil
		}
		if _, isBool := flag.(*cli.BoolFlag); !isBool && !inline {
			i++ // the flag's value
		}
	}
	return nil
}

// usageCommand finds the subcommand named in args, so a usage error is reported for it.
func usageCommand(root *cli.Command, args []string) *cli.Command {
	for _, arg := range args[1:] {
		if c := root.Command(arg); c != nil {
			return c
		}
	}
	return root
}

// act wraps a handler: deprecation warnings, then the envelope (or raw bytes) and exit code.
func (a *app) act(h handler) cli.ActionFunc {
	return func(ctx context.Context, c *cli.Command) error {
		a.warnDeprecated(c)
		r, err := h(ctx, c)
		if err != nil {
			a.fail(c, err)
			return nil
		}
		if r.quiet {
			a.exit = r.exit
			return nil
		}
		if r.raw != nil {
			a.stdout.Write(r.raw)
			if isTerminal(a.stdout) {
				io.WriteString(a.stdout, "\n")
			}
			return nil
		}
		if r.next == nil {
			r.next = []action{}
		}
		a.print(envelope{OK: true, Success: true, Command: commandName(c), Result: r.result, NextActions: r.next})
		return nil
	}
}

func (a *app) warnDeprecated(c *cli.Command) {
	if c.Bool("human") {
		a.warn("--human is deprecated and has no effect; output is always JSON. Remove it before v0.6.0")
	}
	if c.IsSet("output") && c.Name != "env" { // env has an --output of its own
		a.warn("--output is deprecated and has no effect; output is always JSON. Remove it before v0.6.0")
	}
}

func (a *app) warn(msg string) { fmt.Fprintf(a.stderr, "secrets: warning: %s\n", msg) }

type envelope struct {
	OK          bool      `json:"ok"`
	Success     bool      `json:"success"`
	Command     string    `json:"command"`
	Result      any       `json:"result,omitempty"`
	Error       *envError `json:"error,omitempty"`
	Fix         string    `json:"fix,omitempty"`
	NextActions []action  `json:"next_actions,omitempty"`
}

type envError struct {
	Message string `json:"message"`
	Code    string `json:"code"`
}

func (a *app) print(e envelope) {
	enc := json.NewEncoder(a.stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	enc.Encode(e)
}

// fail reports err: an envelope on stdout (except for a raw lease, whose stdout is the
// value and must stay empty, exec, whose stdout is the command's, and mcp, whose stdout
// carries nothing but protocol messages), the error line and its fix as a hint on
// stderr, and the exit code from the table.
func (a *app) fail(c *cli.Command, err error) {
	p := classify(err)
	a.exit = p.exit
	msg := err.Error()
	fmt.Fprintf(a.stderr, "secrets: error: %s\nsecrets: hint: %s\n", msg, p.fix)
	// A plugin that runs exec as its tool (--tool) reads why it was refused.
	if c.Name == "lease" && !c.Bool("json") && !a.hasArg("--json") || c.Name == "exec" && !c.IsSet("tool") || c.Name == "mcp" {
		return
	}
	a.print(envelope{Command: commandName(c), Error: &envError{Message: msg, Code: p.code}, Fix: p.fix})
}

// hasArg reports whether arg was given, for errors raised before flags were parsed.
func (a *app) hasArg(arg string) bool {
	for _, s := range a.args {
		if s == arg {
			return true
		}
	}
	return false
}

func commandName(c *cli.Command) string {
	names := []string{}
	for _, l := range c.Lineage() {
		names = append([]string{l.Name}, names...)
	}
	return strings.Join(names, " ")
}

// usageMessage turns the flag parser's wording into ours.
func usageMessage(msg string) string {
	if f, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return "unknown flag --" + strings.TrimPrefix(f, "-")
	}
	// invalid value "x" for flag -tail: strconv.ParseInt: … → --tail: invalid value "x"
	if rest, ok := strings.CutPrefix(msg, "invalid value "); ok {
		if v, flag, ok := strings.Cut(rest, " for flag -"); ok {
			flag, _, _ = strings.Cut(flag, ":")
			return "--" + strings.TrimPrefix(flag, "-") + ": invalid value " + v
		}
	}
	return msg
}

// problem is how an error is reported: its stable code, exit status and fix.
type problem struct {
	code string
	exit int
	fix  string
}

// Exit codes. Documented in the README; TestExitCodes holds them to it.
const (
	exitGeneric   = 1
	exitUsage     = 2 // bad flags, names, values, TTLs, files given to us
	exitSetup     = 3 // not initialized, already initialized, invalid config
	exitNotFound  = 4 // unknown secret or lease
	exitConflict  = 5 // the secret or file already exists
	exitLocked    = 6 // another process held the lock past the deadline
	exitStore     = 7 // undecryptable, corrupt or insecure store files
	exitAudit     = 8 // the audit log cannot be written or was tampered with
	exitLockdown  = 9 // the killswitch put the store in lockdown
	exitRotation  = 10
	exitWriteFail = 11 // a store file could not be written (full disk, I/O error)
	exitPolicy    = 12 // the secret's policy refuses the request
	exitApproval  = 13 // a person must approve the request first (secrets approve REQ)
	exitGuard     = 14 // a guarded store refuses the caller, or cannot be reached
)

// problems is the one table from the stable error codes (vault.Code) to exit statuses
// and the fix printed when an error does not know a better one. TestProblemsCoverCodes
// holds it to every code the vault can return.
var problems = []problem{
	{"generic_error", exitGeneric, "see the message; run `secrets status` to check the store"},
	{"usage", exitUsage, "run `secrets` for the command tree, or `secrets COMMAND --help`"},
	{"invalid_name", exitUsage, "use 1-128 characters of A-Z a-z 0-9 _ . - /, starting with a letter or digit"},
	{"invalid_value", exitUsage, "pipe a non-empty value of at most 1 MiB on stdin, or type it at the prompt"},
	{"invalid_ttl", exitUsage, "give a positive duration such as 30m, 1h30m or 2d"},
	{"ttl_exceeds_max", exitUsage, "ask for a shorter --ttl (max_lease_ttl in config.json, and the secret's max_ttl in secrets policy show, bound it)"},
	{"invalid_policy", exitUsage, "fix the rule the message names: secrets policy set --help"},
	{"delivery_not_allowed", exitPolicy, "ask for it the way its policy allows (secrets policy show lists the deliveries), e.g. secrets exec instead of secrets lease"},
	{"caller_not_allowed", exitPolicy, "this user or client id may not lease it; an admin changes that with secrets policy set NAME --callers/--clients"},
	{"uses_exhausted", exitPolicy, "the value was single use (or its uses are spent): rotate it, or an admin runs secrets policy reset-uses NAME"},
	{"command_not_allowed", exitPolicy, "run a command the policy allows for these secrets (secrets policy show), or an admin adds it: secrets policy set NAME --exec 'ARGV'"},
	{"inject_not_allowed", exitPolicy, "inject it only into the hosts its policy names (secrets policy show), or an admin changes them: secrets policy set NAME --inject-host HOST"},
	{"inject_unavailable", exitSetup, "injection needs the system's trust roots (the ca-certificates package, root-owned) and a loopback port; see the message"},
	{"approval_required", exitApproval, "a person runs secrets approve REQ at a terminal; then run this again, or wait for it with --wait 5m"},
	{"approval_denied", exitPolicy, "a person denied the request; ask them, and make a new request once it expires"},
	{"not_initialized", exitSetup, "run: secrets init"},
	{"already_initialized", exitSetup, "the store exists; use it, or pass --dir for another one"},
	{"invalid_config", exitSetup, "fix config.json in the store directory"},
	{"secret_not_found", exitNotFound, "list the stored names: secrets list"},
	{"lease_not_found", exitNotFound, "list active leases: secrets leases (expired and revoked leases are gone)"},
	{"secret_exists", exitConflict, "replace its value with: secrets set NAME"},
	{"file_exists", exitConflict, "pass --force to replace it, or --output another path"},
	{"path_in_store", exitUsage, "write project files in the project, never in the store's directory: --output .env"},
	{"invalid_project_file", exitUsage, "fix .secrets.json; see the README for its format"},
	{"store_locked", exitLocked, "retry, or wait longer with --lock-timeout 30s"},
	{"decrypt_failed", exitStore, "check that the identity (identity.age, $SECRETS_IDENTITY or $SECRETS_IDENTITY_FILE) is the store's, and restore the damaged file from a backup; nothing was changed"},
	{"store_corrupt", exitStore, "restore the damaged file from a backup; nothing was changed"},
	{"secrets_rollback", exitStore, "restore the newest secrets.age from a backup; an older one is refused, never read"},
	{"insecure_permissions", exitStore, "restrict the file to its owner: chmod 600 FILE (chmod 700 for the directory)"},
	{"audit_tampered", exitAudit, "inspect audit.jsonl with: secrets audit --verify; then start a new log with: secrets audit --reset --yes (the damaged log is kept)"},
	{"audit_rollback", exitAudit, "the heartbeat witness saw a later log than this one: older copies of the store's files were put back; restore the newest ones from a backup, then a person runs secrets unlock"},
	{"audit_failed", exitAudit, "free disk space or fix the permissions of audit.jsonl; nothing was released"},
	{"lockdown", exitLockdown, "a person lifts the lockdown with secrets unlock on a terminal, typing the fingerprint that secrets status shows"},
	{"rotation_failed", exitRotation, "fix the hook (it gets the value on stdin and SECRET_NAME; it prints the new value, or nothing if it refreshed the credential elsewhere); nothing was changed"},
	{"rotation_in_progress", exitRotation, "another command is rotating that secret; wait for it (secrets audit --event rotate), then rotate again if needed"},
	{"write_failed", exitWriteFail, "free disk space or fix the store directory; the previous file is intact"},
	{"not_permitted", exitGuard, "an admin does it: sudo secrets COMMAND (in a guarded store only root changes the store, its policy and its lockdown)"},
	{"guard_unavailable", exitGuard, "check the set-up with: secrets guard --status (an admin repairs it with: sudo secrets guard)"},
}

// classify maps an error to its problem. An error that knows its own fix (a file's chmod
// command, the config key to correct) overrides the table's.
func classify(err error) problem {
	code := vault.Code(err)
	p := problems[0]
	for _, row := range problems {
		if row.code == code {
			p = row
			break
		}
	}
	var f interface{ Fix() string }
	if errors.As(err, &f) {
		p.fix = f.Fix()
	}
	// The owner side of a guarded store classified it already.
	if oe := (*ownerError)(nil); errors.As(err, &oe) {
		for _, row := range problems {
			if row.code == oe.Code {
				p = row
			}
		}
		if oe.Fix != "" {
			p.fix = oe.Fix
		}
	}
	return p
}

// commands is the command tree.
func (a *app) commands() *cli.Command {
	root := &cli.Command{
		Name:      "secrets",
		Usage:     "Portable credential management for AI agents",
		UsageText: "secrets [global flags] <command> [flags] [args]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Usage: "store directory (default $SECRETS_DIR, else ~/.agent-secrets)"},
			&cli.StringFlag{Name: "lock-timeout", Usage: "how long to wait for the store lock (default lock_timeout in config.json, 10s)"},
			&cli.BoolFlag{Name: "json", Usage: "JSON envelope output (the default for every command but lease)"},
			&cli.BoolFlag{Name: "human", Hidden: true},
			&cli.StringFlag{Name: "output", Hidden: true},
		},
		Commands: []*cli.Command{
			a.cmdInit(), a.cmdAdd(), a.cmdSet(), a.cmdRm(), a.cmdList(),
			a.cmdLease(), a.cmdLeases(), a.cmdRenew(), a.cmdRevoke(),
			a.cmdEnv(), a.cmdExec(), a.cmdCleanup(), a.cmdRotate(),
			a.cmdKillswitch(), a.cmdUnlock(), a.cmdWatch(), a.cmdMCP(),
			a.cmdStatus(), a.cmdAudit(), a.cmdVersion(), a.cmdServe(), a.cmdWitnessKey(),
			a.cmdPolicy(), a.cmdApprove(), a.cmdDeny(), a.cmdConfig(), a.cmdGuard(),
		},
		HideHelpCommand: true,
		HideVersion:     true,
		Writer:          a.stdout,
		ErrWriter:       a.stderr,
		Reader:          a.stdin,
		ExitErrHandler:  func(context.Context, *cli.Command, error) {},
	}
	if a.caller != nil {
		agentTree(root)
	}
	onUsage := func(_ context.Context, _ *cli.Command, err error, _ bool) error {
		return vault.Usagef("%s", usageMessage(err.Error()))
	}
	root.OnUsageError = onUsage
	for _, c := range root.Commands {
		c.OnUsageError = onUsage
		for _, sub := range c.Commands {
			sub.OnUsageError = onUsage
		}
	}
	root.Action = a.act(func(ctx context.Context, c *cli.Command) (*reply, error) {
		if c.NArg() > 0 {
			return nil, vault.Usagef("unknown command %q; run `secrets` for the command tree", c.Args().First())
		}
		return a.tree(root), nil
	})
	return root
}

// treeEntry is one command of the root envelope.
type treeEntry struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Usage       string `json:"usage"`
}

// tree is the root envelope: what an agent needs to discover the commands.
func (a *app) tree(root *cli.Command) *reply {
	cmds := []treeEntry{}
	for _, c := range root.VisibleCommands() {
		cmds = append(cmds, treeEntry{c.Name, c.Usage, c.UsageText})
	}
	return &reply{
		result: struct {
			Description string      `json:"description"`
			Version     string      `json:"version"`
			Commands    []treeEntry `json:"commands"`
		}{root.Usage, version, cmds},
		next: []action{
			{"secrets status", "Check the store (run `secrets init` first if it is not initialized)"},
			{"secrets list", "See which secrets are stored"},
		},
	}
}

// storeDir resolves --dir, then $SECRETS_DIR, then ~/.agent-secrets, as an absolute path.
func (a *app) storeDir(c *cli.Command) (string, error) {
	dir := c.String("dir")
	if dir == "" {
		dir = a.getenv("SECRETS_DIR")
	}
	if dir == "" {
		home := a.getenv("HOME")
		if home == "" {
			return "", vault.Usagef("no store directory: set --dir, $SECRETS_DIR or $HOME")
		}
		dir = filepath.Join(home, ".agent-secrets")
	}
	return filepath.Abs(dir)
}

// vaultOptions are the store the global flags and the environment name, and who asks.
func (a *app) vaultOptions(c *cli.Command) (vault.Options, error) {
	dir, err := a.storeDir(c)
	if err != nil {
		return vault.Options{}, err
	}
	o := vault.Options{
		Dir: dir, IdentityKey: a.getenv("SECRETS_IDENTITY"), IdentityFile: a.getenv("SECRETS_IDENTITY_FILE"),
		Now: a.now, Environ: a.environ, ClientID: a.getenv("SECRETS_CLIENT_ID"), Warn: a.warn,
		Command: vault.EscapeCommand(withoutWait(a.args)), Caller: a.caller,
	}
	if a.caller != nil {
		o.Due = a.due
	}
	if o.LockTimeout, err = durationFlag(c, "lock-timeout", duration.Positive); err != nil {
		return o, err
	}
	return o, nil
}

// vault is the use cases of the store the global flags name.
func (a *app) vault(c *cli.Command) (*vault.Vault, error) {
	if a.guarded != nil {
		// A command served on the caller side reaches the store through the owner side
		// only; the caller's own directories are not the store.
		return nil, fmt.Errorf("%w: %s is served through the owner side of the guarded store %s", guard.ErrNotPermitted, c.Name, a.guarded.Store)
	}
	o, err := a.vaultOptions(c)
	if err != nil {
		return nil, err
	}
	return vault.New(o), nil
}

// durationFlag reads a duration flag with parse (duration.Parse or Positive); unset is 0.
func durationFlag(c *cli.Command, name string, parse func(string) (time.Duration, error)) (time.Duration, error) {
	s := c.String(name)
	if s == "" {
		return 0, nil
	}
	d, err := parse(s)
	if err != nil {
		return 0, vault.Usagef("--%s: %v", name, err)
	}
	return d, nil
}

// oneArg returns the single positional argument, or a usage error naming what is missing.
func oneArg(c *cli.Command, what string) (string, error) {
	switch c.NArg() {
	case 1:
		return c.Args().First(), nil
	case 0:
		return "", vault.Usagef("missing <%s>; usage: %s", what, c.UsageText)
	}
	return "", vault.Usagef("too many arguments; usage: %s", c.UsageText)
}

// noArgs refuses positional arguments for a command that takes none.
func noArgs(c *cli.Command) error {
	if c.NArg() > 0 {
		return vault.Usagef("%s takes no arguments", c.Name)
	}
	return nil
}

func clientIDFlag() cli.Flag {
	return &cli.StringFlag{Name: "client-id", Usage: "who is asking, for the audit log (default $SECRETS_CLIENT_ID, else <parent>-<ppid>)"}
}

// shellWord quotes s for a POSIX shell when it holds anything but safe characters.
func shellWord(s string) string {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '/' || c == ':' || c == '@') {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}

// withoutWait is a command line without its --wait flag: an approval is bound to what
// was asked, and waiting for it or not asks the same.
func withoutWait(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--":
			return append(out, args[i:]...)
		case a == "--wait" || a == "-wait":
			i++
		case strings.HasPrefix(a, "--wait=") || strings.HasPrefix(a, "-wait="):
		default:
			out = append(out, filepath.Base(a))
			if i > 0 {
				out[len(out)-1] = a
			}
		}
	}
	return out
}

func waitFlag() cli.Flag {
	return &cli.StringFlag{Name: "wait", Usage: "when the policy asks a person's approval, wait this long for secrets approve (default: fail at once with approval_required)"}
}
