package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/agent-secrets/secrets/audit"
	"github.com/agent-secrets/secrets/envfile"
	"github.com/agent-secrets/secrets/policy"
	"github.com/agent-secrets/secrets/proxy"
	"github.com/agent-secrets/secrets/redact"
	"github.com/agent-secrets/secrets/store"
)

// Injection (DESIGN.md section 12): a mapping with an inject rule, its own or its
// policy's, puts a placeholder in the child's variable; the exec supervisor's proxy puts
// the value into the child's requests to the rule's hosts.

// ErrInjectUnavailable is an injection the proxy cannot serve here: no system trust
// roots, no loopback port.
var ErrInjectUnavailable = errors.New("inject unavailable")

// OnRevoke says what a lease's end does to an exec whose values are all injected: stop
// the command (the default), or only stop injecting (deny), which is enough when the
// command holds nothing but placeholders.
const (
	OnRevokeStop = "stop"
	OnRevokeDeny = "deny"
)

// Injected is one secret a run injects, for its result.
type Injected struct {
	Name  string   `json:"name"`
	Var   string   `json:"env_var"`
	Hosts []string `json:"hosts"`
}

// Route is a secret a run injects, as a proxy that routes its requests sees it: the
// caller side of a guarded store, which never holds the value.
type Route struct {
	Name        string             `json:"name"`
	Placeholder string             `json:"placeholder"`
	Rule        *policy.InjectRule `json:"rule"`
}

// Injection is what a child needs to reach its run's proxy: where it listens with its
// credentials, the run CA's certificate, and the routes. The owner side of a guarded
// store hands it to the caller side, which runs the child.
type Injection struct {
	Endpoint proxy.Endpoint `json:"endpoint"`
	CA       []byte         `json:"ca"`
	Routes   []Route        `json:"routes"`
}

// injectRules returns each mapping's effective inject rule (nil for one that is not
// injected): the policy's when it has one (a mapping may only narrow its hosts), else
// the mapping's own, which counts only where the caller could have the value in a
// child's environment anyway; a rule the policy gives cannot be widened by a project
// file the agent may write.
func (tx *Tx) injectRules(m mapping, found map[string]*store.Secret) ([]*policy.InjectRule, error) {
	rules := make([]*policy.InjectRule, len(m.ms))
	for i, mp := range m.ms {
		s := found[mp.Name]
		if s == nil {
			continue // grantMapped reports it
		}
		rule, err := tx.rule(mp.Name)
		if err != nil {
			return nil, err
		}
		switch {
		case rule.Inject != nil:
			eff, err := mp.Inject.Within(rule.Inject)
			if err != nil {
				return nil, fmt.Errorf("%w (%s, %s)", err, mp.Name, m.source)
			}
			rules[i] = eff
		case mp.Inject != nil:
			if rule.Deliver != nil && !slices.Contains(rule.Deliver, policy.Exec) {
				return nil, fixed{fmt.Errorf("%w: %s has no inject rule in its policy, and may not be put in a child's environment, so a project file may not choose where it goes",
					policy.ErrInjectNotAllowed, mp.Name), fmt.Sprintf("an admin says where it may go: secrets policy set %s --inject-host HOST", mp.Name)}
			}
			rules[i] = mp.Inject
		default:
			continue
		}
		if err := injectable(mp.Name, s.Value, rules[i]); err != nil {
			return nil, err
		}
	}
	return rules, nil
}

// injectable refuses a value the proxy could not put where its rule says, or could not
// scrub from a response.
func injectable(name string, v []byte, r *policy.InjectRule) error {
	if len(v) < redact.MinLen {
		return fixed{fmt.Errorf("%w: %s is shorter than %d bytes: a response could not be scrubbed of it", envfile.ErrNotEnvSafe, name, redact.MinLen),
			"inject only a real credential; a short value matches ordinary text"}
	}
	if r.Query == "" && (!utf8.Valid(v) || bytes.ContainsFunc(v, func(c rune) bool { return c < 0x20 || c == 0x7f })) {
		return fixed{fmt.Errorf("%w: %s holds a control character, which no header may carry", envfile.ErrNotEnvSafe, name),
			"inject it as a query parameter (\"query\": \"NAME\"), or fix the stored value"}
	}
	if r.Basic == "username" && bytes.IndexByte(v, ':') >= 0 {
		return fixed{fmt.Errorf("%w: %s holds a colon, which ends a Basic username", envfile.ErrNotEnvSafe, name), `inject it as the password ("basic": "password")`}
	}
	return nil
}

// injection is a run's proxy and what the supervisor does with it.
type injection struct {
	px     *proxy.Proxy
	roots  []byte // the system's trust roots, as read once for the run
	events *eventLog
	routes []Route
	list   []Injected
}

// startInjection starts the proxy for the secrets g injects. only is set on the owner
// side of a guarded store, whose proxy serves rule hosts and nothing else.
func (v *Vault) startInjection(g *execGrant, strict, only bool, client string) (*injection, error) {
	roots, err := proxy.SystemRoots()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInjectUnavailable, err)
	}
	in := &injection{events: &eventLog{v: v, client: client}, roots: roots}
	var secrets []proxy.Secret
	for _, x := range g.injected {
		secrets = append(secrets, proxy.Secret{Name: x.name, Value: x.value, Placeholder: x.placeholder, Rule: x.rule})
		in.routes = append(in.routes, Route{Name: x.name, Placeholder: x.placeholder, Rule: routeRule(x.rule)})
		in.list = append(in.list, Injected{Name: x.name, Var: x.envVar, Hosts: x.rule.Hosts})
	}
	in.px, err = proxy.Start(proxy.Config{Secrets: secrets, Strict: strict, Only: only, SystemRoots: roots,
		Expiry: earliest(g.leases), Now: v.o.Now, Event: in.events.add})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInjectUnavailable, err)
	}
	in.events.start()
	return in, nil
}

// routeRule is what a routing proxy needs of a rule: its hosts (the rest, roots included,
// stays with the proxy that injects).
func routeRule(r *policy.InjectRule) *policy.InjectRule {
	return &policy.InjectRule{Hosts: slices.Clone(r.Hosts), Header: r.Header, Format: r.Format, Basic: r.Basic, Query: r.Query,
		Methods: slices.Clone(r.Methods), Paths: slices.Clone(r.Paths), SharedSuffix: r.SharedSuffix}
}

// verdict is what the supervisor learnt of the leases: stop injecting at once when one
// ended, else go on to the (perhaps renewed) expiry.
func (in *injection) verdict(why string, at time.Time) {
	if in == nil {
		return
	}
	if why != "" {
		in.px.Stop(why)
		return
	}
	in.px.Resume(at)
}

// recheckEvery is how often a supervisor whose store did not answer asks again.
const recheckEvery = 250 * time.Millisecond

// unansweredLimit is how long a store may stay silent after a revocation signal before
// a command that holds values is stopped: each question already waited the lock
// timeout. A process that holds the lock cannot keep a revoked command running.
const unansweredLimit = 5 * time.Second

// silence tracks a store that does not answer whether a run's leases stand.
type silence struct{ since time.Time }

// failed records a question the store did not answer, and returns why the command is to
// be stopped now ("" to ask again): never when it is kept running (it holds placeholders
// only, and the proxy refuses meanwhile).
func (s *silence) failed(keepRunning bool) string {
	if s.since.IsZero() {
		s.since = time.Now()
	}
	if keepRunning || time.Since(s.since) < unansweredLimit {
		return ""
	}
	return fmt.Sprintf("the store did not answer for %s whether its leases stand, after a revocation signal", unansweredLimit)
}

// answered forgets the silence.
func (s *silence) answered() { s.since = time.Time{} }

// hold keeps injection back until the store answers (nil does nothing).
func (in *injection) hold() {
	if in != nil {
		in.px.Pause()
	}
}

// close stops the proxy and returns the audit entries of what it did.
func (in *injection) close() []audit.Entry {
	if in == nil {
		return nil
	}
	rep := in.px.Close()
	in.events.stop()
	return reportEntries(rep)
}

// reportEntries are the entries of a proxy's report: each host that received a value and
// how often, each host tunnelled.
func reportEntries(rep proxy.Report) []audit.Entry {
	var out []audit.Entry
	for _, c := range rep.Injected {
		out = append(out, audit.Entry{Event: "inject_use", Secret: c.Secret, OK: true, Detail: fmt.Sprintf("%s: %d %s", c.Host, c.N, plural(c.N, "request"))})
	}
	for _, c := range rep.Tunnelled {
		out = append(out, audit.Entry{Event: "egress", OK: true, Detail: fmt.Sprintf("%s: %d %s, passed through untouched", c.Host, c.N, plural(c.N, "connection"))})
	}
	return out
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// eventLog writes a proxy's refusals to the audit log as they come, a batch a second,
// so that a supervisor killed later loses at most the last second. A run logs at most
// maxEvents distinct ones one by one; repeats and the rest are counted, by kind and
// secret, at the end.
type eventLog struct {
	v      *Vault
	client string

	mu      sync.Mutex
	pending []proxy.Event
	seen    map[string]int    // each shape of refusal logged, and how often it came
	more    map[[2]string]int // kind, secret: refusals not logged one by one
	warned  bool
	done    chan struct{}
	wg      sync.WaitGroup
}

const maxEvents = 64

func (l *eventLog) add(e proxy.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// A refusal of a shape already logged (the same kind, secret, host and kind of
	// place, whatever names the request chose) is counted, not logged again; past
	// maxEvents shapes, each is counted by kind and secret: decoys cannot hide the
	// refusal that matters.
	k := e.Kind + "\x00" + e.Secret + "\x00" + e.Host + "\x00" + e.Class
	if l.seen == nil {
		l.seen, l.more = map[string]int{}, map[[2]string]int{}
	}
	if _, ok := l.seen[k]; ok {
		l.seen[k]++
		l.more[[2]string{e.Kind, e.Secret}]++
		return
	}
	if len(l.seen) >= maxEvents {
		l.more[[2]string{e.Kind, e.Secret}]++
		return
	}
	l.seen[k] = 1
	l.pending = append(l.pending, e)
}

func (l *eventLog) start() {
	l.done = make(chan struct{})
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				l.flush(false)
			case <-l.done:
				l.flush(true)
				return
			}
		}
	}()
}

func (l *eventLog) stop() {
	close(l.done)
	l.wg.Wait()
}

func (l *eventLog) flush(last bool) {
	l.mu.Lock()
	batch := l.pending
	l.pending = nil
	var more []audit.Entry
	if last {
		for k, n := range l.more {
			more = append(more, audit.Entry{Event: k[0], Secret: k[1], Detail: fmt.Sprintf("%d more %s in this run, not logged one by one (repeats, or past the first %d)", n, plural(n, "refusal"), maxEvents)})
		}
		slices.SortFunc(more, func(a, b audit.Entry) int { return strings.Compare(a.Event+a.Secret, b.Event+b.Secret) })
	}
	l.mu.Unlock()
	if len(batch) == 0 && len(more) == 0 {
		return
	}
	write := func() error {
		return l.v.update(context.Background(), write, l.client, func(tx *Tx) error {
			for _, e := range batch {
				// Host and why hold what the request named: never a control character.
				tx.Record(audit.Entry{Event: e.Kind, Secret: e.Secret, Detail: escapeControl(e.Host + ": " + e.Why)})
			}
			for _, e := range more {
				tx.Record(e)
			}
			return nil
		})
	}
	err := write()
	for try := 0; err != nil && last && try < 2; try++ {
		err = write() // the run's end: what is not written now is lost
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil && !last {
		// Kept for the next second's batch (a process holding the lock delays the
		// entries; it does not erase them).
		l.pending = append(batch, l.pending...)
		if !l.warned {
			l.warned = true
			l.v.warn("could not log what the injection proxy refused yet: %v; trying again each second", err)
		}
		return
	}
	if err != nil {
		l.v.warn("could not log what the injection proxy refused: %v", err)
	}
}
