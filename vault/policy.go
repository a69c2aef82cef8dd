package vault

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/internal/codec"
	"github.com/agent-secrets/secrets/internal/duration"
	names "github.com/agent-secrets/secrets/internal/name"
	"github.com/agent-secrets/secrets/lease"
	"github.com/agent-secrets/secrets/policy"
	"github.com/agent-secrets/secrets/store"
)

// The policy of DESIGN.md section 11: rules in the shared part (secrets.age: the default
// in its header, each secret's in its entry, all MAC'd), counters and approval requests
// in the local state. Every grant of a value asks authorize first, whatever the path
// (lease, env, exec, the MCP tools), so no path reveals a value outside the policy.

// Errors of approval; each is a stable code.
var (
	ErrApprovalRequired = errors.New("approval required")
	ErrApprovalDenied   = errors.New("approval denied")
)

// How long approval requests stand.
const (
	// MaxGuardedWait bounds --wait for a guarded store's caller.
	MaxGuardedWait = time.Hour
	// requestTTL is how long a request waits for a person before it expires.
	requestTTL = 15 * time.Minute
	// onceTTL is how long an approval of a rule with approve once stands for the same
	// request: a working session's worth.
	onceTTL = 8 * time.Hour
)

// UseCount is how many leases one value of a secret has had on this machine.
type UseCount struct {
	Secret string    `json:"secret"`
	Count  int       `json:"count"`
	Value  time.Time `json:"value"` // the value's updated_at: a new value starts again
}

// Approval is a request for a person's approval, bound to what was asked: it is good for
// that request only.
type Approval struct {
	ID       string `json:"id"`
	Secret   string `json:"secret"`
	Delivery string `json:"delivery"`
	Caller   string `json:"caller"`
	Client   string `json:"client_id"`
	// Command is the command line of the request (control characters escaped), Cwd its
	// working directory, Parent the process that ran it (shown, not bound).
	Command string    `json:"command"`
	Cwd     string    `json:"cwd"`
	Parent  string    `json:"parent,omitempty"`
	TTL     string    `json:"ttl"`
	Approve string    `json:"approve"` // the rule's: once or always
	Created time.Time `json:"created_at"`
	Expires time.Time `json:"expires_at"`
	// Status is pending, approved or denied; Decided when and by whom.
	Status    string     `json:"status"`
	Decided   *time.Time `json:"decided_at,omitempty"`
	DecidedBy string     `json:"decided_by,omitempty"`
	// Done is set when an approval was used up (approve always) or expired: replay drops it.
	Done bool `json:"done,omitempty"`
	// UID is the guarded store's caller who asked (0 elsewhere): the entries about the
	// request carry it as their holder, which is what an agent user's own view goes by.
	UID int `json:"uid,omitempty"`
}

// MaxCallerRequests bounds the requests one caller of a guarded store has waiting: each
// is in the state, which every command reads.
const MaxCallerRequests = 16

// requestRoom refuses a new request when the caller has MaxCallerRequests waiting.
func (tx *Tx) requestRoom() error {
	c := tx.v.o.Caller
	if c == nil {
		return nil
	}
	n := 0
	for _, r := range tx.state.Requests {
		if r.UID == c.UID && r.Status == "pending" && r.Expires.After(tx.now) {
			n++
		}
	}
	if n >= MaxCallerRequests {
		return fixed{Usagef("%d requests of yours wait for an admin already", n), "wait for an admin to decide them (sudo secrets approve), or for them to expire in 15 minutes"}
	}
	return nil
}

// binds reports whether a and b ask the same thing.
func (a Approval) binds(b Approval) bool {
	return a.Secret == b.Secret && a.Delivery == b.Delivery && a.Caller == b.Caller && a.Client == b.Client &&
		a.Command == b.Command && a.Cwd == b.Cwd && a.TTL == b.TTL
}

// appendUses writes the counters as encoding/json writes the map (keys in order): a
// single-use secret's lease reads them in the snapshot's header.
func appendUses(b []byte, uses map[string]UseCount) []byte {
	b = append(b, '{')
	for i, name := range slices.Sorted(maps.Keys(uses)) {
		u := uses[name]
		if i > 0 {
			b = append(b, ',')
		}
		b = codec.AppendString(b, name)
		b = append(b, `:{"secret":`...)
		b = codec.AppendString(b, u.Secret)
		b = append(b, `,"count":`...)
		b = strconv.AppendInt(b, int64(u.Count), 10)
		b = append(b, `,"value":"`...)
		b = codec.AppendTime(b, u.Value)
		b = append(b, `"}`...)
	}
	return append(b, '}')
}

// decodeUses reads what appendUses (or encoding/json) wrote.
func decodeUses(d *codec.Decoder, uses *map[string]UseCount) error {
	*uses = map[string]UseCount{}
	return d.Object(func(name string) error {
		var u UseCount
		err := decodeUse(d, &u)
		(*uses)[name] = u
		return err
	})
}

// decodeUse reads one UseCount object.
func decodeUse(d *codec.Decoder, u *UseCount) error {
	return d.Object(func(k string) error {
		switch k {
		case "secret":
			return d.Text(&u.Secret)
		case "count":
			return d.Integer(&u.Count)
		case "value":
			s, err := d.Str()
			if err == nil {
				err = codec.ParseTime(&u.Value, s)
			}
			return err
		}
		return fmt.Errorf("unknown key use.%s", k)
	})
}

func (s *State) setUses(u UseCount) {
	if u.Count == 0 {
		delete(s.Uses, u.Secret)
		return
	}
	if s.Uses == nil {
		s.Uses = map[string]UseCount{}
	}
	s.Uses[u.Secret] = u
}

// putRequest adds or replaces a request by id; a done one is dropped.
func (s *State) putRequest(a Approval) {
	s.Requests = slices.DeleteFunc(s.Requests, func(r Approval) bool { return r.ID == a.ID })
	if !a.Done {
		s.Requests = append(s.Requests, a)
	}
}

// rule returns the policy of the secret name (its own rule over the default). The secret
// must have been read (lookup or Secrets).
func (tx *Tx) rule(name string) (policy.Rule, error) {
	if r, ok := tx.rules[name]; ok {
		return r, nil
	}
	r, err := tx.readRule(name)
	if err == nil {
		if tx.rules == nil {
			tx.rules = map[string]policy.Rule{}
		}
		tx.rules[name] = r
	}
	return r, err
}

// readRule decodes the rule of the secret name over the default.
func (tx *Tx) readRule(name string) (policy.Rule, error) {
	def := tx.lookedPolicy
	if tx.secrets != nil {
		def = tx.secrets.Policy
	}
	base, err := policy.Decode(def)
	if err != nil {
		return policy.Rule{}, fmt.Errorf("%w: the default policy: %w", store.ErrCorrupt, err)
	}
	var own policy.Rule
	if s := tx.known(name); s != nil {
		if own, err = policy.Decode(s.Policy); err != nil {
			return policy.Rule{}, fmt.Errorf("%w: the policy of %s: %w", store.ErrCorrupt, name, err)
		}
	}
	return own.Over(base), nil
}

// delivery is how a lease of kind k hands its value out.
func delivery(k lease.Kind) policy.Delivery {
	switch k {
	case lease.KindEnv:
		return policy.Env
	case lease.KindExec:
		return policy.Exec
	case lease.KindInject:
		return policy.Inject
	}
	return policy.Raw
}

// authorize checks every request of one grant against its secret's policy, before any
// is granted: the delivery, the caller and client, the TTL, the uses left, and a
// person's approval where the rule asks one. It returns the requests with their TTLs
// resolved (a default TTL above a rule's max_ttl is lowered to it; a TTL asked above it
// is refused). A request that needs approval records one (approval_request) and fails
// with ErrApprovalRequired; the caller's Deny commits it.
func (tx *Tx) authorize(reqs []lease.Request) ([]lease.Request, error) {
	out := slices.Clone(reqs)
	var asked []string
	batch := map[string]int{} // leases of each secret this grant asks before r
	for i, r := range out {
		rule, err := tx.rule(r.Secret)
		if err != nil {
			return nil, err
		}
		ttl := r.TTL
		if ttl == "" {
			d := tx.mgr.DefaultTTL
			if max := rule.TTL(); max > 0 && d > max {
				d = max
			}
			ttl = duration.Format(d)
			out[i].TTL = ttl
		}
		d, err := lease.ParseTTL(ttl)
		if err != nil {
			return nil, err
		}
		req := policy.Request{Secret: r.Secret, Delivery: delivery(r.Kind), Caller: tx.v.caller, Client: r.ClientID, TTL: d, Uses: tx.uses(r.Secret) + batch[r.Secret]}
		batch[r.Secret]++
		if err := rule.Check(req); err != nil {
			return nil, err
		}
		if rule.Approval() == policy.ApproveNever {
			continue
		}
		id, err := tx.approval(Approval{Secret: r.Secret, Delivery: string(req.Delivery), Client: r.ClientID, TTL: ttl, Approve: rule.Approval()})
		if err != nil {
			return nil, err
		}
		if id != "" {
			asked = append(asked, id)
		}
	}
	if len(asked) > 0 {
		return nil, &approvalError{ids: asked}
	}
	return out, nil
}

// approvalError is ErrApprovalRequired with the requests a person must approve.
type approvalError struct{ ids []string }

func (e *approvalError) Error() string {
	return fmt.Sprintf("%v: a person must approve %s (secrets approve %s, at a terminal)", ErrApprovalRequired, strings.Join(e.ids, ", "), e.ids[0])
}
func (e *approvalError) Is(target error) bool { return target == ErrApprovalRequired }

// Fix says what a person runs.
func (e *approvalError) Fix() string {
	return fmt.Sprintf("ask a person to run: secrets approve %s; then run this again (or wait for it with --wait 5m)", e.ids[0])
}

// RequestIDs returns the approval requests an error asks a person to decide, if any.
func RequestIDs(err error) []string {
	var ae *approvalError
	if errors.As(err, &ae) {
		return ae.ids
	}
	return nil
}

// approval finds the request that binds want, approved or not: "" when an approval
// lets it through (and uses it up for approve always), the id of the pending request
// otherwise (recorded now when it is new), or ErrApprovalDenied.
func (tx *Tx) approval(want Approval) (string, error) {
	want.Caller, want.Command, want.Cwd, want.Parent = tx.v.caller().User, tx.v.o.Command, tx.v.cwd(), tx.v.parent()
	for _, r := range tx.state.Requests {
		if !r.binds(want) || !r.Expires.After(tx.now) {
			continue
		}
		switch r.Status {
		case "approved":
			if r.Approve == policy.ApproveAlways {
				r.Done = true
				tx.state.putRequest(r)
				tx.Record(audit.Entry{Event: "approval_used", Secret: r.Secret, Holder: r.UID, OK: true, Detail: r.ID, State: change{Request: &r}.raw()})
			}
			return "", nil
		case "denied":
			return "", fmt.Errorf("%w: %s was denied by %s; a new request can be made once it expires at %s", ErrApprovalDenied, r.ID, r.DecidedBy, rfc3339(r.Expires))
		default:
			return r.ID, nil
		}
	}
	if err := tx.requestRoom(); err != nil {
		return "", err
	}
	want.ID, want.Status = newRequestID(), "pending"
	want.Created, want.Expires = tx.now.UTC(), tx.now.Add(requestTTL).UTC()
	if c := tx.v.o.Caller; c != nil {
		want.UID = c.UID
	}
	tx.state.putRequest(want)
	tx.Record(audit.Entry{Event: "approval_request", Secret: want.Secret, Holder: want.UID, OK: true,
		Detail: fmt.Sprintf("%s: %s as %s by %s, client %s, ttl %s: %s (in %s)", want.ID, want.Secret, want.Delivery, want.Caller, want.Client, want.TTL, want.Command, want.Cwd),
		State:  change{Request: &want}.raw()})
	return want.ID, nil
}

func newRequestID() string {
	b := make([]byte, 10)
	rand.Read(b)
	return "req_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// uses returns how many leases the current value of secret name has had here.
func (tx *Tx) uses(name string) int {
	u, ok := tx.state.Uses[name]
	s := tx.known(name)
	if !ok || s == nil || !u.Value.Equal(s.UpdatedAt) {
		return 0
	}
	return u.Count
}

// countUses records one more use of each granted lease's value whose rule limits uses.
func (tx *Tx) countUses(leases []lease.Lease) error {
	for _, l := range leases {
		rule, err := tx.rule(l.Secret)
		if err != nil {
			return err
		}
		n := rule.Uses()
		if n == 0 {
			continue
		}
		u := UseCount{Secret: l.Secret, Count: tx.uses(l.Secret) + 1, Value: tx.known(l.Secret).UpdatedAt.UTC()}
		tx.state.setUses(u)
		tx.Record(audit.Entry{Event: "lease_use", Secret: l.Secret, LeaseID: l.ID, Holder: l.UID, OK: true, Detail: fmt.Sprintf("use %d of %d", u.Count, n), State: useChange(u)})
	}
	return nil
}

// pruneRequests drops the requests that expired (a write's begin does it, recorded so
// that replay agrees).
func (tx *Tx) pruneRequests() {
	for _, r := range slices.Clone(tx.state.Requests) {
		if !r.Expires.After(tx.now) {
			r.Done = true
			tx.state.putRequest(r)
			tx.Record(audit.Entry{Event: "approval_expire", Secret: r.Secret, Holder: r.UID, OK: true, Detail: r.ID + " " + r.Status, State: change{Request: &r}.raw()})
		}
	}
}

// dropApprovals ends every request for a value, pending or approved: after a revoke
// --all or a killswitch, nothing a person approved before still stands. A pending secret
// (delivery new) hands nothing out and stays for an admin to decide.
func (tx *Tx) dropApprovals(why string) {
	for _, r := range slices.Clone(tx.state.Requests) {
		if r.Delivery == DeliveryNew {
			continue
		}
		r.Done = true
		tx.state.putRequest(r)
		tx.Record(audit.Entry{Event: "approval_expire", Secret: r.Secret, Holder: r.UID, OK: true, Detail: r.ID + " " + r.Status + ": " + why, State: change{Request: &r}.raw()})
	}
}

// who is asking, read once per process: the OS user and its groups.
var whoami = sync.OnceValue(func() policy.Caller {
	c := LookupCaller(os.Getuid(), "")
	return policy.Caller{User: c.User, Groups: c.Groups}
})

// LookupCaller names user uid and its groups; fallback (or the uid) names a user the
// system has no entry for.
func LookupCaller(uid int, fallback string) Caller {
	c := Caller{UID: uid, User: fallback}
	if c.User == "" {
		c.User = fmt.Sprint(uid)
	}
	u, err := user.LookupId(fmt.Sprint(uid))
	if err != nil {
		return c
	}
	c.User = u.Username
	gids, _ := u.GroupIds()
	for _, g := range gids {
		if grp, err := user.LookupGroupId(g); err == nil {
			c.Groups = append(c.Groups, grp.Name)
		}
	}
	return c
}

func (v *Vault) caller() policy.Caller {
	if c := v.o.Caller; c != nil {
		return policy.Caller{User: c.User, Groups: c.Groups}
	}
	return whoami()
}

func (v *Vault) cwd() string {
	if v.o.Caller != nil {
		return "" // the guarded caller's, which the owner side does not see
	}
	d, _ := os.Getwd()
	return escapeControl(d)
}

// parent is the command line of the process that ran this one, for a person to see. On
// the owner side of a guarded store it is sudo, and the command line shown is the one
// the caller side states, which this side cannot check: the person is told so.
func (v *Vault) parent() string {
	if v.o.Caller != nil {
		return "the caller side of a guarded store, as " + v.o.Caller.User + " (the command line is its own account)"
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", os.Getppid()))
	if err != nil {
		return v.actor.Parent
	}
	return shortField(escapeControl(strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ")))
}

// escapeControl shows control characters, and the ones that reorder text on a terminal
// (bidirectional overrides and isolates), as \xNN or \uNNNN, so that a command line
// cannot rewrite what a person reads.
func escapeControl(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&b, `\x%02x`, r)
		case r == 0x200e || r == 0x200f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 || r == 0x061c:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// EscapeCommand is a command line as a request records it: words joined by spaces, a
// word that has a space, a quote or nothing in it single-quoted (so ["a b"] and
// ["a","b"] read differently), control characters escaped.
func EscapeCommand(argv []string) string {
	words := make([]string, len(argv))
	for i, w := range argv {
		if w == "" || strings.ContainsAny(w, " \t\n'\"\\") {
			w = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
		words[i] = w
	}
	return escapeControl(strings.Join(words, " "))
}

// PolicyView is the policy as shown: the default and every secret's own rule, and the
// effective rule of each secret.
type PolicyView struct {
	Default   policy.Rule            `json:"default"`
	Secrets   map[string]policy.Rule `json:"secrets"`
	Effective map[string]policy.Rule `json:"effective"`
	Uses      []UseCount             `json:"uses"`
}

// PolicyShow returns the policy.
func (v *Vault) PolicyShow(ctx context.Context) (*PolicyView, error) {
	out := &PolicyView{Secrets: map[string]policy.Rule{}, Effective: map[string]policy.Rule{}, Uses: []UseCount{}}
	err := v.update(ctx, withSecrets, "", func(tx *Tx) error {
		sec, err := tx.Secrets()
		if err != nil {
			return err
		}
		if out.Default, err = policy.Decode(sec.Policy); err != nil {
			return fmt.Errorf("%w: the default policy: %w", store.ErrCorrupt, err)
		}
		for _, name := range sec.Names() {
			own, err := policy.Decode(sec.Secrets[name].Policy)
			if err != nil {
				return fmt.Errorf("%w: the policy of %s: %w", store.ErrCorrupt, name, err)
			}
			if !own.IsZero() {
				out.Secrets[name] = own
			}
			out.Effective[name] = own.Over(out.Default)
			if n := tx.uses(name); n > 0 {
				out.Uses = append(out.Uses, UseCount{Secret: name, Count: n, Value: sec.Secrets[name].UpdatedAt})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PolicyInput changes one rule: the default's, or one secret's. Change edits the rule in
// place (only what the caller's flags name); Unset removes the whole rule first.
type PolicyInput struct {
	Name     string // "" is the default
	Unset    bool
	Change   func(*policy.Rule)
	ClientID string
}

// PolicySet changes a rule and records policy_set with the old and the new rule. It is
// an admin act: in a plain store anyone can do it, and the README says so.
func (v *Vault) PolicySet(ctx context.Context, in PolicyInput) (*policy.Rule, error) {
	client, err := v.client(in.ClientID)
	if err != nil {
		return nil, err
	}
	var out policy.Rule
	err = v.update(ctx, write|withSecrets, client, func(tx *Tx) error {
		e := audit.Entry{Event: "policy_set", Secret: in.Name}
		sec, err := tx.Secrets()
		if err != nil {
			return err
		}
		raw := &sec.Policy
		if in.Name != "" {
			s, err := sec.Get(in.Name)
			if err != nil {
				return tx.Deny(e, err)
			}
			raw = &s.Policy
		}
		old, err := policy.Decode(*raw)
		if err != nil {
			return fmt.Errorf("%w: %w", store.ErrCorrupt, err)
		}
		next := old
		if in.Unset {
			next = policy.Rule{}
		}
		if in.Change != nil {
			in.Change(&next)
		}
		if err := next.Validate(); err != nil {
			return tx.Deny(e, fixed{err, "fix the flag the message names; secrets policy set --help lists them"})
		}
		what := "the default"
		if in.Name != "" {
			what = in.Name
		}
		*raw = policy.Encode(next)
		tx.secretsDirty = true
		e.OK, e.Detail = true, fmt.Sprintf("%s: old %s new %s", what, ruleText(old), ruleText(next))
		tx.Record(e)
		out = next
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

func ruleText(r policy.Rule) string {
	if r.Inject != nil && len(r.Inject.Roots) > 0 {
		in := *r.Inject
		in.Roots = []string{fmt.Sprintf("(%d certificates)", len(r.Inject.Roots))}
		r.Inject = &in
	}
	if b := policy.Encode(r); b != nil {
		return string(b)
	}
	return "{}"
}

// ResetUses starts the count of a secret's uses again (an admin act), recorded as
// policy_reset_uses with the count it had.
func (v *Vault) ResetUses(ctx context.Context, name, clientFlag string) (*UseCount, error) {
	client, err := v.client(clientFlag)
	if err != nil {
		return nil, err
	}
	var was UseCount
	err = v.update(ctx, write, client, func(tx *Tx) error {
		e := audit.Entry{Event: "policy_reset_uses", Secret: names.Word(name)}
		if _, err := tx.secret(name); err != nil {
			if errors.Is(err, store.ErrSecretNotFound) {
				return tx.Deny(e, err)
			}
			return err
		}
		was = UseCount{Secret: name, Count: tx.uses(name)}
		zero := UseCount{Secret: name}
		tx.state.setUses(zero)
		e.OK, e.Detail, e.State = true, fmt.Sprintf("%d uses counted before", was.Count), useChange(zero)
		tx.Record(e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &was, nil
}

// ApprovalsResult lists the requests that wait for a person, with what each asked.
type ApprovalsResult struct {
	Pending []Approval `json:"pending"`
	Count   int        `json:"count"`
}

// Approvals lists the pending requests that have not expired.
func (v *Vault) Approvals(ctx context.Context) (*ApprovalsResult, error) {
	out := &ApprovalsResult{Pending: []Approval{}}
	err := v.View(ctx, func(tx *Tx) error {
		for _, r := range tx.state.Requests {
			if r.Status == "pending" && r.Expires.After(tx.now) {
				out.Pending = append(out.Pending, r)
			}
		}
		return nil
	})
	out.Count = len(out.Pending)
	return out, err
}

// DecideInput approves or denies one request. Confirm shows a person what was asked and
// returns what they typed; it reads the controlling terminal, never stdin, so that an
// agent told to run secrets approve cannot answer for a person. (In a plain store the
// same user can still approve: approval is advisory there, and the README says so.)
type DecideInput struct {
	ID       string
	Approve  bool
	Confirm  func(prompt string) (string, error)
	ClientID string
}

// Decide approves or denies a pending request, recorded as approval_decided. No lock is
// held while the person reads the request; the state is read again after the answer.
func (v *Vault) Decide(ctx context.Context, in DecideInput) (*Approval, error) {
	client, err := v.client(in.ClientID)
	if err != nil {
		return nil, err
	}
	var seen Approval
	err = v.View(ctx, func(tx *Tx) error {
		i := slices.IndexFunc(tx.state.Requests, func(r Approval) bool { return r.ID == in.ID })
		if i < 0 || !tx.state.Requests[i].Expires.After(tx.now) {
			return Usagef("no pending request %s (it may have expired; secrets approve lists them)", shortField(in.ID))
		}
		seen = tx.state.Requests[i]
		return nil
	})
	if err != nil {
		return nil, err
	}
	verb := "deny"
	if in.Approve {
		verb = "approve"
	}
	shownClient := seen.Client
	if seen.UID != 0 {
		shownClient += " (a label the caller chose)"
	}
	prompt := fmt.Sprintf("Request %s\n  secret:   %s\n  delivery: %s\n  caller:   %s\n  client:   %s\n  command:  %s\n  cwd:      %s\n  parent:   %s\n  ttl:      %s (approve %s)\nType %s to %s it: ",
		seen.ID, seen.Secret, seen.Delivery, seen.Caller, shownClient, seen.Command, seen.Cwd, seen.Parent, seen.TTL, seen.Approve, verb, verb)
	answer, askErr := in.Confirm(prompt)
	var out Approval
	m := write
	if seen.Delivery == DeliveryNew {
		m |= withSecrets // an approved pending secret is added in the same commit
	}
	err = v.update(ctx, m, client, func(tx *Tx) error {
		e := audit.Entry{Event: "approval_decided", Secret: seen.Secret, Holder: seen.UID, Detail: seen.ID}
		i := slices.IndexFunc(tx.state.Requests, func(r Approval) bool { return r.ID == in.ID })
		switch {
		case i < 0 || tx.state.Requests[i] != seen:
			return tx.Deny(e, Usagef("%s changed or expired while you read it; nothing decided", seen.ID))
		case seen.Status != "pending":
			return tx.Deny(e, Usagef("%s was already %s", seen.ID, seen.Status))
		case askErr != nil:
			return tx.Deny(e, fixed{Usagef("deciding a request needs a person at the controlling terminal (%v)", askErr), "run it in a terminal: secrets approve " + seen.ID})
		case strings.TrimSpace(answer) != verb:
			return tx.Deny(e, Usagef("you did not type %s; nothing decided", verb))
		}
		r := seen
		now := tx.now.UTC()
		r.Status, r.Decided, r.DecidedBy = "denied", &now, tx.v.caller().User
		if in.Approve {
			r.Status = "approved"
			if r.Approve == policy.ApproveOnce {
				r.Expires = now.Add(onceTTL)
			}
		}
		if r.Delivery == DeliveryNew {
			// Decided once, whichever way: the value goes into the store or away.
			r.Done = true
			if in.Approve {
				if err := tx.addPending(r); err != nil {
					return tx.Deny(e, err)
				}
			} else {
				tx.OnCommit(tx.v.dropPending)
			}
		}
		tx.state.putRequest(r)
		e.OK, e.Detail, e.State = true, fmt.Sprintf("%s %s: %s as %s for %s", r.ID, r.Status, r.Secret, r.Delivery, r.Client), change{Request: &r}.raw()
		tx.Record(e)
		out = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// retryApproved runs try and, while it fails for want of an approval and wait has not
// run out, waits for a person to decide and runs it again. The store lock is not held
// while it waits: each try is its own transaction.
func (v *Vault) retryApproved(ctx context.Context, wait time.Duration, try func() error) error {
	if v.o.Caller != nil && wait > MaxGuardedWait {
		// An owner-side process waits for as long as it is told: bounded, it cannot be
		// left behind by a caller that went away.
		return Usagef("--wait is %s; a guarded store waits at most %s for an approval", wait, MaxGuardedWait)
	}
	err := try()
	if wait <= 0 || RequestIDs(err) == nil {
		return err
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		ids := RequestIDs(err)
		v.warn("waiting up to %s for a person to run: secrets approve %s", time.Until(deadline).Round(time.Second), ids[0])
		if derr := v.awaitDecision(ctx, ids, deadline); derr != nil {
			return errors.Join(err, derr)
		}
		if err = try(); RequestIDs(err) == nil {
			return err
		}
	}
	return err
}

// awaitDecision polls the state until none of ids is pending or deadline passes.
func (v *Vault) awaitDecision(ctx context.Context, ids []string, deadline time.Time) error {
	for {
		pending := false
		err := v.View(ctx, func(tx *Tx) error {
			pending = slices.ContainsFunc(tx.state.Requests, func(r Approval) bool {
				return slices.Contains(ids, r.ID) && r.Status == "pending" && r.Expires.After(tx.now)
			})
			return nil
		})
		if err != nil || !pending || !time.Now().Before(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
