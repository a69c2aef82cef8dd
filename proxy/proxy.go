// Package proxy is the loopback proxy an exec supervisor runs for its child when a
// mapping asks for injection (DESIGN.md section 12). The child holds a placeholder; for a
// rule's host the proxy terminates TLS with a certificate from the run's own CA, puts the
// value where the rule says, forwards the request over TLS verified against the system's
// roots, and scrubs the value from the response. Every other host is tunnelled untouched,
// or refused in strict mode. It knows nothing of the store: whether the leases still
// stand is what the supervisor tells it (Pause, Resume, Stop).
package proxy

import (
	"bufio"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agent-secrets/secrets/policy"
	"github.com/agent-secrets/secrets/redact"
)

// Secret is one injected value.
type Secret struct {
	Name string
	// Value is nil in a proxy that only routes (the caller side of a guarded store,
	// whose Chain injects).
	Value       []byte
	Placeholder string
	Rule        *policy.InjectRule
}

// Config is what a proxy serves.
type Config struct {
	Secrets []Secret
	// Strict refuses (403) every host no rule names, instead of tunnelling it.
	Strict bool
	// Only refuses every host no rule names, whatever the child asked: the owner side of
	// a guarded store must not reach the network as the store's user for the caller.
	Only bool
	// Chain, when set, is the proxy that injects: a rule's host is passed to it by
	// CONNECT instead of being served here.
	Chain *Endpoint
	// SystemRoots are the system's trust roots as PEM (SystemRoots).
	SystemRoots []byte
	// Expiry is when the first lease ends: no value is injected from then on.
	Expiry time.Time
	Now    func() time.Time
	// Event receives each refusal as it happens, for the audit log; it must not block.
	Event func(Event)
}

// Endpoint is where a proxy listens and the credentials it asks for.
type Endpoint struct {
	Addr string `json:"addr"`
	User string `json:"user"`
	Pass string `json:"pass"`
}

// URL is the endpoint as the proxy variables name it.
func (e Endpoint) URL() string {
	return (&url.URL{Scheme: "http", User: url.UserPassword(e.User, e.Pass), Host: e.Addr}).String()
}

// Event is one refusal: a placeholder sent where its rule does not give the value, a
// host strict mode refused, or a request refused because the leases ended.
type Event struct {
	Kind   string // inject_blocked, egress_denied, inject_refused
	Secret string // for inject_blocked and inject_refused
	Host   string
	Why    string
	// Class is the shape of the refusal (where the placeholder was: header, query,
	// url, basic; plain http; egress; refused), whatever names the request chose: a log
	// that keeps one of each shape is not filled by decoys of one.
	Class string
}

// Count is how many requests (or connections) one host had, with one secret's value or
// without.
type Count struct {
	Secret string `json:"secret,omitempty"`
	Host   string `json:"host"`
	N      int    `json:"n"`
}

// Report is what a run's proxy did, for the audit log.
type Report struct {
	Injected  []Count `json:"injected,omitempty"`  // requests that carried a value, by secret and host
	Tunnelled []Count `json:"tunnelled,omitempty"` // connections passed through untouched, by host
	Refused   []Count `json:"refused,omitempty"`   // connections and requests refused, by host
}

// MaxConns bounds the connections the child may hold open through the proxy at once.
const MaxConns = 512

// Proxy is a running proxy. Its methods are safe for concurrent use.
type Proxy struct {
	cfg   Config
	ln    net.Listener
	ep    Endpoint
	ca    *authority
	gate  *gate
	auth  string // the Proxy-Authorization header the child must send
	mitm  *http.Server
	feed  *feed
	sem   chan struct{}
	scrub *redact.Set // the values, to take out of responses

	mu       sync.Mutex
	conns    map[net.Conn]bool
	upgraded map[net.Conn]bool // WebSockets to rule hosts: closed by Stop
	targets  map[net.Conn]*target
	ports    map[string]*http.Transport
	counts   map[[3]string]int // kind, secret, host
	kinds    map[string]int    // how many hosts of each kind counts names
	plainTr  *http.Transport
	wg       sync.WaitGroup
	closed   bool

	closeOnce sync.Once
	report    Report

	stopped context.Context // done once Stop is called
	stop    context.CancelFunc
}

// target is what one CONNECT asked for.
type target struct {
	host    string
	port    int
	secrets []*Secret // those whose rules cover host:port
}

func (t *target) authority() string {
	if t.port == 443 {
		return t.host
	}
	return net.JoinHostPort(t.host, strconv.Itoa(t.port))
}

// Start listens on a random loopback port with fresh credentials and a fresh CA, and
// serves until Close.
func Start(cfg Config) (*Proxy, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Event == nil {
		cfg.Event = func(Event) {}
	}
	for i := range cfg.Secrets {
		s := &cfg.Secrets[i]
		if s.Rule == nil || s.Placeholder == "" {
			return nil, fmt.Errorf("proxy: %s has no rule or placeholder", s.Name)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start the injection proxy: %w", err)
	}
	p := &Proxy{cfg: cfg, ln: ln, gate: newGate(cfg.Expiry), sem: make(chan struct{}, MaxConns), scrub: scrubs(cfg.Secrets),
		conns: map[net.Conn]bool{}, upgraded: map[net.Conn]bool{}, targets: map[net.Conn]*target{}, ports: map[string]*http.Transport{}, counts: map[[3]string]int{}, kinds: map[string]int{}}
	p.stopped, p.stop = context.WithCancel(context.Background())
	p.ep = Endpoint{Addr: ln.Addr().String(), User: "secrets-" + Placeholder(nil)[:8], Pass: Placeholder(nil)}
	p.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(p.ep.User+":"+p.ep.Pass))
	if cfg.Chain == nil {
		rules := make([]*policy.InjectRule, len(cfg.Secrets))
		for i := range cfg.Secrets {
			rules[i] = cfg.Secrets[i].Rule
		}
		if p.ca, err = newAuthority(cfg.Now(), rules); err != nil {
			ln.Close()
			return nil, err
		}
		p.feed = &feed{conns: make(chan net.Conn), done: make(chan struct{})}
		p.mitm = &http.Server{
			Handler:           http.HandlerFunc(p.serveHTTP),
			ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          log.New(io.Discard, "", 0),
			ConnContext: func(ctx context.Context, c net.Conn) context.Context {
				p.mu.Lock()
				t := p.targets[c]
				delete(p.targets, c)
				p.mu.Unlock()
				return context.WithValue(ctx, targetKey{}, t)
			},
		}
		p.wg.Add(1)
		go func() { defer p.wg.Done(); p.mitm.Serve(p.feed) }()
	}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Endpoint is where the child reaches the proxy, with its credentials.
func (p *Proxy) Endpoint() Endpoint { return p.ep }

// CA is the run CA's certificate as PEM (nil for a proxy with a Chain, which mints
// nothing): the child trusts it for the rules' hosts.
func (p *Proxy) CA() []byte {
	if p.ca == nil {
		return nil
	}
	return p.ca.pem
}

// Pause holds every injection until Resume or Stop: a revocation signal arrived and the
// store has not yet said whether the leases stand.
func (p *Proxy) Pause() { p.gate.set(func() { p.gate.paused = true }) }

// Resume lets injection go on, until the leases' earliest expiry, which may have moved
// (zero keeps it).
func (p *Proxy) Resume(until time.Time) {
	p.gate.set(func() {
		p.gate.paused = false
		if !until.IsZero() {
			p.gate.until = until
		}
	})
}

// Stop ends injection for good: every request to a rule's host is answered 403 with why,
// and every WebSocket whose handshake carried a value is closed.
func (p *Proxy) Stop(why string) {
	p.gate.set(func() {
		if p.gate.stopped == "" {
			p.gate.stopped = why
		}
	})
	p.stop() // every request under way to a rule's host is ended
	p.mu.Lock()
	for c := range p.upgraded {
		c.Close()
	}
	p.mu.Unlock()
}

// Close stops listening, ends every connection, and reports what the proxy did. A
// second Close reports the same.
func (p *Proxy) Close() Report {
	p.closeOnce.Do(func() { p.report = p.close() })
	return p.report
}

func (p *Proxy) close() Report {
	p.Stop("the command has ended")
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	if p.mitm != nil {
		close(p.feed.done)
		p.mitm.Close()
	}
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.ports {
		t.CloseIdleConnections()
	}
	var r Report
	for k, n := range p.counts {
		c := Count{Secret: k[1], Host: k[2], N: n}
		switch k[0] {
		case "inject":
			r.Injected = append(r.Injected, c)
		case "tunnel":
			r.Tunnelled = append(r.Tunnelled, c)
		default:
			r.Refused = append(r.Refused, c)
		}
	}
	for _, cs := range [][]Count{r.Injected, r.Tunnelled, r.Refused} {
		slices.SortFunc(cs, func(a, b Count) int { return strings.Compare(a.Host+"\x00"+a.Secret, b.Host+"\x00"+b.Secret) })
	}
	return r
}

// MaxCounted bounds the hosts a run's report names one by one, of each kind (injected,
// tunnelled, refused); the rest are counted as one ("other hosts"): a child may connect
// to as many as it likes, and its tunnels must not crowd out where a value went.
const MaxCounted = 64

// OtherHosts names, in a report, the hosts past MaxCounted.
const OtherHosts = "(other hosts)"

func (p *Proxy) count(kind, secret, host string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := [3]string{kind, secret, host}
	if _, ok := p.counts[k]; !ok && p.kinds[kind] >= MaxCounted {
		k[2] = OtherHosts
	}
	if _, ok := p.counts[k]; !ok {
		p.kinds[kind]++
	}
	p.counts[k]++
}

// track adds c to the connections Close ends; false when the proxy is closing.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = true
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return
		}
		select {
		case p.sem <- struct{}{}:
		default:
			c.Close() // at MaxConns: the child holds enough open
			continue
		}
		if !p.track(c) {
			c.Close()
			<-p.sem
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer func() { <-p.sem }()
			p.serveConn(c)
		}()
	}
}

// idle is how long a connection to the proxy may wait for its next request.
const idle = 2 * time.Minute

// serveConn reads the child's requests to the proxy itself: CONNECT, or a plain http://
// request in absolute form.
func (p *Proxy) serveConn(c net.Conn) {
	handedOff := false
	defer func() {
		if !handedOff {
			p.untrack(c)
			c.Close()
		}
	}()
	br := bufio.NewReader(c)
	for {
		c.SetReadDeadline(time.Now().Add(idle))
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		c.SetReadDeadline(time.Time{})
		if subtle.ConstantTimeCompare([]byte(req.Header.Get("Proxy-Authorization")), []byte(p.auth)) != 1 {
			reply(c, http.StatusProxyAuthRequired, "secrets: this proxy is for one secrets exec run; use the HTTPS_PROXY it was given",
				http.Header{"Proxy-Authenticate": {`Basic realm="secrets exec"`}})
			return
		}
		req.Header.Del("Proxy-Authorization")
		if req.Method == http.MethodConnect {
			handedOff = p.connect(c, br, req)
			return
		}
		if !p.plain(c, req) {
			return
		}
	}
}

// reply writes a short response on a connection to the proxy.
func reply(c net.Conn, code int, msg string, h http.Header) {
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Connection", "close")
	resp := &http.Response{StatusCode: code, ProtoMajor: 1, ProtoMinor: 1, Header: h,
		Body: io.NopCloser(strings.NewReader(msg + "\n")), ContentLength: int64(len(msg) + 1)}
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	resp.Write(c)
	c.SetWriteDeadline(time.Time{})
}

// splitTarget reads a CONNECT target or a URL's host: lower case, no trailing dot,
// with its port (def when none).
func splitTarget(hostport string, def int) (string, int, error) {
	host, portText, err := net.SplitHostPort(hostport)
	if err != nil {
		host, portText = hostport, strconv.Itoa(def)
		if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
			host = host[1 : len(host)-1]
		}
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("%q has no valid port", hostport)
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if _, err := netip.ParseAddr(host); err != nil {
		if host == "" || strings.ContainsFunc(host, func(c rune) bool {
			return !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_')
		}) {
			return "", 0, fmt.Errorf("%q is not a host name", hostport)
		}
	}
	return host, port, nil
}

// covering are the secrets whose rules cover host:port.
func (p *Proxy) covering(host string, port int) []*Secret {
	var out []*Secret
	for i := range p.cfg.Secrets {
		if s := &p.cfg.Secrets[i]; s.Rule.MatchHost(host, port) {
			out = append(out, s)
		}
	}
	return out
}

// connect serves a CONNECT: a rule's host is served here (or passed to the chain), any
// other tunnelled or refused. It reports whether c was handed to the TLS server.
func (p *Proxy) connect(c net.Conn, br *bufio.Reader, req *http.Request) bool {
	host, port, err := splitTarget(req.Host, 443)
	if err != nil {
		reply(c, http.StatusBadRequest, "secrets: "+err.Error(), nil)
		return false
	}
	t := &target{host: host, port: port, secrets: p.covering(host, port)}
	if len(t.secrets) == 0 {
		if p.cfg.Strict || p.cfg.Only {
			p.refuse(c, "egress_denied", "", t.authority(), "strict egress: no secret of this run is injected into "+t.authority())
			return false
		}
		up, err := (&net.Dialer{Timeout: 10 * time.Second}).Dial("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			reply(c, http.StatusBadGateway, fmt.Sprintf("secrets: could not reach %s: %v", t.authority(), err), nil)
			return false
		}
		if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
			up.Close()
			return false
		}
		p.count("tunnel", "", t.authority())
		p.tunnel(c, br, up, nil)
		return false
	}
	if p.cfg.Chain != nil {
		p.chain(c, br, req, t)
		return false
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return false
	}
	leaf, err := p.ca.leaf(host, p.cfg.Now())
	if err != nil {
		return false
	}
	// The certificate is for the CONNECT target, whatever name the child's hello asks:
	// the host is the CONNECT target and the TLS name (DESIGN.md section 12).
	tc := tls.Server(&bufferedConn{Conn: c, r: br}, &tls.Config{
		Certificates: []tls.Certificate{*leaf},
		NextProtos:   []string{"h2", "http/1.1"},
		MinVersion:   tls.VersionTLS12,
	})
	p.mu.Lock()
	p.targets[tc] = t
	delete(p.conns, c)
	p.conns[tc] = true
	p.mu.Unlock()
	select {
	case p.feed.conns <- tc:
		return true
	case <-p.feed.done:
		p.untrack(tc)
		tc.Close()
		return true
	}
}

// refuse answers 403 and records it.
func (p *Proxy) refuse(c net.Conn, kind, secret, host, why string) {
	p.count("refuse", secret, host)
	p.cfg.Event(Event{Kind: kind, Secret: secret, Host: host, Why: why, Class: kind})
	reply(c, http.StatusForbidden, "secrets: "+why, nil)
}

// chain passes a rule host's CONNECT to the proxy that injects, and the connection to it.
func (p *Proxy) chain(c net.Conn, br *bufio.Reader, req *http.Request, t *target) {
	up, err := (&net.Dialer{Timeout: 10 * time.Second}).Dial("tcp", p.cfg.Chain.Addr)
	if err != nil {
		reply(c, http.StatusBadGateway, "secrets: the guarded store's proxy is gone: "+err.Error(), nil)
		return
	}
	auth := base64.StdEncoding.EncodeToString([]byte(p.cfg.Chain.User + ":" + p.cfg.Chain.Pass))
	fmt.Fprintf(up, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n", net.JoinHostPort(t.host, strconv.Itoa(t.port)), t.authority(), auth)
	ubr := bufio.NewReader(up)
	resp, err := http.ReadResponse(ubr, req)
	if err != nil {
		up.Close()
		reply(c, http.StatusBadGateway, "secrets: the guarded store's proxy did not answer: "+err.Error(), nil)
		return
	}
	if resp.StatusCode != http.StatusOK {
		defer up.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		reply(c, resp.StatusCode, strings.TrimSpace(string(body)), nil)
		return
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		up.Close()
		return
	}
	p.tunnel(c, br, up, ubr)
}

// tunnel copies bytes both ways until both are done; what was read ahead on either side
// (rb, ub) goes first.
func (p *Proxy) tunnel(c net.Conn, rb *bufio.Reader, up net.Conn, ub *bufio.Reader) {
	if !p.track(up) {
		up.Close()
		return
	}
	defer func() { p.untrack(up); up.Close() }()
	var from io.Reader = up
	if ub != nil {
		from = ub
	}
	done := make(chan struct{})
	go func() {
		io.Copy(up, rb)
		closeWrite(up)
		close(done)
	}()
	io.Copy(c, from)
	closeWrite(c)
	<-done
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

// bufferedConn is a connection whose first bytes were read ahead into r.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// feed is the listener the TLS server takes the connections of rule hosts from.
type feed struct {
	conns chan net.Conn
	done  chan struct{}
}

func (f *feed) Accept() (net.Conn, error) {
	select {
	case c := <-f.conns:
		return c, nil
	case <-f.done:
		return nil, net.ErrClosed
	}
}
func (f *feed) Close() error   { return nil }
func (f *feed) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

type targetKey struct{}

// Env is base with the child's proxy settings: every proxy variable names ep (NO_PROXY
// is removed, so nothing bypasses it), and every CA variable names bundle (the system's
// roots and the run's CA).
func Env(base []string, ep Endpoint, bundle string) []string {
	proxyVars := []string{"HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy"}
	caVars := []string{"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO", "AWS_CA_BUNDLE"}
	drop := append(append([]string{"NO_PROXY", "no_proxy", "NODE_USE_ENV_PROXY"}, proxyVars...), caVars...)
	out := make([]string, 0, len(base)+len(drop))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(drop, k) {
			out = append(out, kv)
		}
	}
	u := ep.URL()
	for _, k := range proxyVars {
		out = append(out, k+"="+u)
	}
	for _, k := range caVars {
		out = append(out, k+"="+bundle)
	}
	return append(out, "NODE_USE_ENV_PROXY=1")
}

// WriteBundle writes the child's trust bundle, the system's roots and the run's CA, 0600
// in a new private directory, and returns its path and the function that removes it.
// The directory is in the user's own secrets-exec-UID under $TMPDIR, named by this
// process, so that the next run can sweep what a supervisor killed outright left.
func WriteBundle(system, ca []byte) (string, func(), error) {
	parent := bundleParent()
	prefix := fmt.Sprintf("secrets-exec-%d-", os.Getpid())
	if parent != "" {
		sweepBundles(parent)
		prefix = fmt.Sprintf("%d-", os.Getpid())
	}
	dir, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		return "", nil, fmt.Errorf("write the run's CA bundle: %w", err)
	}
	remove := func() { os.RemoveAll(dir) }
	path := filepath.Join(dir, "ca.pem")
	data := append(append(slices.Clip(system), '\n'), ca...)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		remove()
		return "", nil, fmt.Errorf("write the run's CA bundle: %w", err)
	}
	return path, remove, nil
}

// bundleParent is $TMPDIR/secrets-exec-UID, made 0700 if missing, or "" when it is not
// a directory of ours that only we can enter (someone else made it first: the bundle
// then goes straight into $TMPDIR, and is not swept).
func bundleParent() string {
	parent := filepath.Join(os.TempDir(), fmt.Sprintf("secrets-exec-%d", os.Getuid()))
	os.Mkdir(parent, 0o700)
	fi, err := os.Lstat(parent)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		return ""
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Getuid() {
		return ""
	}
	return parent
}

// sweepBundles removes the bundle directories in parent whose supervisor is gone
// without removing its own (a kill -9): they hold certificates only, but nothing else
// would.
func sweepBundles(parent string) {
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		pidText, _, _ := strings.Cut(e.Name(), "-")
		if pid, err := strconv.Atoi(pidText); err == nil && pid > 0 && e.IsDir() && syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(filepath.Join(parent, e.Name()))
		}
	}
}

// transport is the upstream transport for a rule's host: its own connections, trusting
// the system's roots and the rules' own, never a proxy or a root from the environment.
// A request that came over HTTP/2 goes on over HTTP/2 (gRPC needs it, and its trailers);
// one that came over HTTP/1.1 goes on over HTTP/1.1, which is the quicker of the two.
func (p *Proxy) transport(t *target, h2 bool) (*http.Transport, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := t.authority()
	if h2 {
		key += " h2"
	}
	if tr := p.ports[key]; tr != nil {
		return tr, nil
	}
	var extra []*x509.Certificate
	for _, s := range t.secrets {
		for _, r := range s.Rule.Roots {
			c, err := policy.ParseRoot(r)
			if err != nil {
				return nil, err
			}
			extra = append(extra, c)
		}
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: pool(p.cfg.SystemRoots, extra), MinVersion: tls.VersionTLS12, NextProtos: protos(h2)},
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   h2,
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     90 * time.Second,
	}
	p.ports[key] = tr
	return tr, nil
}

func protos(h2 bool) []string {
	if h2 {
		return []string{"h2", "http/1.1"}
	}
	return []string{"http/1.1"}
}
