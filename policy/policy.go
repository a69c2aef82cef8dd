// Package policy holds the rules that bound what a lease may be (DESIGN.md section 11):
// who may ask, for how long, how many times, how the value may leave, whether a person
// must approve, and which commands an agent's tool may run with it. It is pure logic: the
// rules live inside the encrypted, MAC'd store, and the vault asks Check before every
// grant.
package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agent-secrets/secrets/internal/codec"
	"github.com/agent-secrets/secrets/internal/duration"
)

// The errors a refused request carries; each is a stable code (vault.Code).
var (
	ErrDeliveryNotAllowed = errors.New("delivery not allowed")
	ErrCallerNotAllowed   = errors.New("caller not allowed")
	ErrUsesExhausted      = errors.New("uses exhausted")
	ErrTTLExceedsMax      = errors.New("ttl exceeds max")
	ErrCommandNotAllowed  = errors.New("command not allowed")
	ErrInvalid            = errors.New("invalid policy")
)

// Delivery is how a value leaves the store. Every path that reveals a value is one of
// them, so a rule covers them all.
type Delivery string

// The deliveries.
const (
	Raw    Delivery = "raw"    // printed: lease, and every helper that prints a value
	Env    Delivery = "env"    // written to a .env file
	Exec   Delivery = "exec"   // placed in a child's environment
	Inject Delivery = "inject" // put into a child's outbound requests, never held by it
)

// Deliveries are the deliveries, in the order they are shown.
var Deliveries = []Delivery{Raw, Env, Exec, Inject}

// The approvals a rule can ask for.
const (
	ApproveNever  = "never"  // no person is asked
	ApproveOnce   = "once"   // an approval stands for the same request until it expires
	ApproveAlways = "always" // each grant needs its own approval, used by that grant
)

// Rule is the policy of one secret, or the default. A field left unset (nil) takes the
// default's; the default's unset fields allow anything.
type Rule struct {
	// Callers are OS users, or groups as %group; "*" is anyone.
	Callers []string `json:"callers,omitempty"`
	// Clients are client ids, exact or with a final * as a prefix; "*" is any. A client
	// id is a label the caller chooses: it is no identity, and the README says so.
	Clients []string `json:"clients,omitempty"`
	// MaxTTL bounds a lease's TTL (Go duration syntax plus d).
	MaxTTL *string `json:"max_ttl,omitempty"`
	// MaxUses is how many leases a value may have on this machine; 0 is no limit, 1 a
	// single-use credential. A new value (rotate, set) starts the count again.
	MaxUses *int `json:"max_uses,omitempty"`
	// Deliver are the deliveries allowed.
	Deliver []Delivery `json:"deliver,omitempty"`
	// Approve is never, once or always.
	Approve *string `json:"approve,omitempty"`
	// Exec are the commands an agent's tool (MCP and OpenClaw secrets_exec) may run with
	// the secret: exact argv, or with a final "*" for any trailing arguments.
	Exec [][]string `json:"exec,omitempty"`
	// Inject is where the value goes when a command uses it without holding it
	// (DESIGN.md section 12): an exec of the secret then injects by this rule, and a
	// project's own rule may only narrow its hosts.
	Inject *InjectRule `json:"inject,omitempty"`
}

// IsZero reports whether the rule sets nothing.
func (r Rule) IsZero() bool {
	return r.Callers == nil && r.Clients == nil && r.MaxTTL == nil && r.MaxUses == nil && r.Deliver == nil && r.Approve == nil && r.Exec == nil && r.Inject == nil
}

// Over returns r with the fields it leaves unset taken from base.
func (r Rule) Over(base Rule) Rule {
	if r.Callers == nil {
		r.Callers = base.Callers
	}
	if r.Clients == nil {
		r.Clients = base.Clients
	}
	if r.MaxTTL == nil {
		r.MaxTTL = base.MaxTTL
	}
	if r.MaxUses == nil {
		r.MaxUses = base.MaxUses
	}
	if r.Deliver == nil {
		r.Deliver = base.Deliver
	}
	if r.Approve == nil {
		r.Approve = base.Approve
	}
	if r.Exec == nil {
		r.Exec = base.Exec
	}
	if r.Inject == nil {
		r.Inject = base.Inject
	}
	return r
}

// Approval returns what the rule asks: never, once or always.
func (r Rule) Approval() string {
	if r.Approve == nil {
		return ApproveNever
	}
	return *r.Approve
}

// Uses returns the rule's max_uses, 0 for no limit.
func (r Rule) Uses() int {
	if r.MaxUses == nil {
		return 0
	}
	return *r.MaxUses
}

// TTL returns the rule's max_ttl, 0 for none.
func (r Rule) TTL() time.Duration {
	if r.MaxTTL == nil {
		return 0
	}
	d, _ := duration.Positive(*r.MaxTTL) // checked by Validate
	return d
}

// Validate checks every field, naming the first that is wrong.
func (r Rule) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
	}
	for _, c := range r.Callers {
		if c == "" || c == "%" || strings.ContainsAny(c, " \t\n,:") {
			return bad("callers", "%q is not a user or %%group", c)
		}
	}
	for _, c := range r.Clients {
		if c == "" || len(c) > 128 || strings.ContainsFunc(c, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return bad("clients", "%q is not a client id", c)
		}
		if i := strings.IndexByte(c, '*'); i >= 0 && i != len(c)-1 {
			return bad("clients", "%q: * may only end a client id", c)
		}
	}
	if r.MaxTTL != nil {
		if _, err := duration.Positive(*r.MaxTTL); err != nil {
			return bad("max_ttl", "%v", err)
		}
	}
	if r.MaxUses != nil && *r.MaxUses < 0 {
		return bad("max_uses", "%d is negative (0 is no limit)", *r.MaxUses)
	}
	for _, d := range r.Deliver {
		if !slices.Contains(Deliveries, d) {
			return bad("deliver", "%q is not one of raw, env, exec, inject", d)
		}
	}
	if r.Approve != nil && !slices.Contains([]string{ApproveNever, ApproveOnce, ApproveAlways}, *r.Approve) {
		return bad("approve", "%q is not never, once or always", *r.Approve)
	}
	for _, argv := range r.Exec {
		if err := CheckCommand(argv); err != nil {
			return bad("exec", "%v", err)
		}
	}
	if r.Inject != nil {
		if err := r.Inject.Validate("inject", true); err != nil {
			return err
		}
	}
	return nil
}

// CheckCommand checks one command rule: a non-empty argv whose only "*" is its last word,
// and not the first.
func CheckCommand(argv []string) error {
	if len(argv) == 0 || argv[0] == "" {
		return errors.New("a command needs a program")
	}
	for i, w := range argv {
		if w == "*" && (i != len(argv)-1 || i == 0) {
			return fmt.Errorf("%q: * may only be the last word, after the program", strings.Join(argv, " "))
		}
	}
	return nil
}

// Decode reads a rule as the store keeps it; empty is the zero rule. It is read on the
// lease of every secret that has one, so it walks the JSON directly rather than through
// reflection (TestDecodeAgreesWithJSON holds it to encoding/json).
func Decode(raw []byte) (Rule, error) {
	var r Rule
	if len(raw) == 0 || string(raw) == "null" {
		return r, nil
	}
	d := codec.NewDecoder(raw)
	strs := func(dst *[]string) error {
		*dst = []string{}
		return d.Array(func() error {
			v, err := d.Str()
			*dst = append(*dst, v)
			return err
		})
	}
	text := func(dst **string) error {
		v, err := d.Str()
		*dst = &v
		return err
	}
	err := d.Object(func(k string) error {
		switch k {
		case "callers":
			return strs(&r.Callers)
		case "clients":
			return strs(&r.Clients)
		case "max_ttl":
			return text(&r.MaxTTL)
		case "approve":
			return text(&r.Approve)
		case "max_uses":
			var n int
			err := d.Integer(&n)
			r.MaxUses = &n
			return err
		case "deliver":
			var ds []string
			err := strs(&ds)
			r.Deliver = make([]Delivery, len(ds))
			for i, x := range ds {
				r.Deliver[i] = Delivery(x)
			}
			return err
		case "inject":
			raw, err := d.Raw()
			if err != nil {
				return err
			}
			r.Inject, err = DecodeInject(raw, "inject", true)
			return err
		case "exec":
			r.Exec = [][]string{}
			return d.Array(func() error {
				var argv []string
				err := strs(&argv)
				r.Exec = append(r.Exec, argv)
				return err
			})
		}
		return fmt.Errorf("unknown key %q", k)
	})
	if err == nil {
		err = d.End()
	}
	if err != nil {
		return Rule{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return r, r.Validate()
}

// Encode writes a rule as the store keeps it; the zero rule is empty.
func Encode(r Rule) []byte {
	if r.IsZero() {
		return nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("policy: encode: %v", err)) // strings, ints and slices of them
	}
	return b
}

// Caller is who asks: the OS user the request runs as, and its groups.
type Caller struct {
	User   string
	Groups []string
}

// Request is what a grant asks, as the policy sees it.
type Request struct {
	Secret   string
	Delivery Delivery
	Caller   func() Caller // read only when a rule names callers
	Client   string
	TTL      time.Duration // what the lease would get
	Uses     int           // leases the current value has had on this machine
}

// Check returns why the rule refuses req, or nil. Approval is not checked here: it needs
// the state of pending requests (the vault's).
func (r Rule) Check(req Request) error {
	// Injection hands out less than exec (the child holds a placeholder), so a rule that
	// allows exec allows it too.
	if r.Deliver != nil && !slices.Contains(r.Deliver, req.Delivery) && !(req.Delivery == Inject && slices.Contains(r.Deliver, Exec)) {
		return fmt.Errorf("%w: %s may be delivered as %s, not %s", ErrDeliveryNotAllowed, req.Secret, joinDeliveries(r.Deliver), req.Delivery)
	}
	if r.Callers != nil && !slices.Contains(r.Callers, "*") {
		c := req.Caller()
		ok := slices.ContainsFunc(r.Callers, func(want string) bool {
			if g, isGroup := strings.CutPrefix(want, "%"); isGroup {
				return slices.Contains(c.Groups, g)
			}
			return want == c.User
		})
		if !ok {
			// Who may is the policy's, which a caller refused is not shown (in a guarded
			// store it is an admin's to read): secrets policy show names them.
			return fmt.Errorf("%w: the policy of %s does not let the user %s lease it", ErrCallerNotAllowed, req.Secret, c.User)
		}
	}
	if r.Clients != nil && !slices.ContainsFunc(r.Clients, func(want string) bool { return matchClient(want, req.Client) }) {
		return fmt.Errorf("%w: the policy of %s does not let the client %q lease it", ErrCallerNotAllowed, req.Secret, req.Client)
	}
	if max := r.TTL(); max > 0 && req.TTL > max {
		return fmt.Errorf("%w: %s is more than %s's max_ttl %s", ErrTTLExceedsMax, duration.Format(req.TTL), req.Secret, *r.MaxTTL)
	}
	if n := r.Uses(); n > 0 && req.Uses >= n {
		what := fmt.Sprintf("%d uses", n)
		if n == 1 {
			what = "a single use"
		}
		return fmt.Errorf("%w: %s allows %s of a value and this one has had %d; it can be leased again once it is rotated or an admin runs secrets policy reset-uses %s", ErrUsesExhausted, req.Secret, what, req.Uses, req.Secret)
	}
	return nil
}

func matchClient(want, client string) bool {
	if want == "*" {
		return true
	}
	if p, ok := strings.CutSuffix(want, "*"); ok {
		return strings.HasPrefix(client, p)
	}
	return want == client
}

func joinDeliveries(ds []Delivery) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = string(d)
	}
	if len(s) == 0 {
		return "nothing"
	}
	return strings.Join(s, ", ")
}

// Allows reports whether argv matches one of the command rules: word for word, or with a
// rule's final "*" standing for any (possibly no) trailing arguments.
func Allows(rules [][]string, argv []string) bool {
	return slices.ContainsFunc(rules, func(rule []string) bool { return matchCommand(rule, argv) })
}

func matchCommand(rule, argv []string) bool {
	if n := len(rule); n > 0 && rule[n-1] == "*" {
		return len(argv) >= n-1 && slices.Equal(rule[:n-1], argv[:n-1])
	}
	return slices.Equal(rule, argv)
}

// SplitCommand splits a command rule as a person writes it ('npm test', 'make "a b" *')
// into words: spaces separate, single and double quotes group, a backslash escapes the
// next character. No expansion of any kind.
func SplitCommand(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote == '\'':
			cur.WriteByte(c)
		case c == '\\' && quote != '\'':
			if i+1 == len(s) {
				return nil, fmt.Errorf("%w: %q ends with a backslash", ErrInvalid, s)
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
		case quote == 0 && (c == '\'' || c == '"'):
			quote, inWord = c, true
		case quote == 0 && (c == ' ' || c == '\t'):
			if inWord {
				words, inWord = append(words, cur.String()), false
				cur.Reset()
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("%w: %q has an unclosed quote", ErrInvalid, s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	if err := CheckCommand(words); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return words, nil
}
