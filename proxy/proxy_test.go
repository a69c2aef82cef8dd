package proxy_test

import (
	"bufio"
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/policy"
	"github.com/agent-secrets/secrets/proxy"
)

const fakeValue = "ghp_FAKEfakeFAKEfakeFAKEfakeFAKEfake0000"

// upstream is a TLS server on 127.0.0.1 that records what it receives and echoes it.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []http.Header
	urls []string
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	mux := http.NewServeMux()
	record := func(r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, r.Header.Clone())
		u.urls = append(u.urls, r.URL.String())
		u.mu.Unlock()
	}
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		w.Header().Set("X-Echo", r.Header.Get("Authorization"))
		json.NewEncoder(w).Encode(map[string]any{"headers": r.Header, "url": r.URL.String(), "proto": r.Proto})
	})
	mux.HandleFunc("/gzip", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			http.Error(w, "want gzip", 400)
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		gz := gzip.NewWriter(w)
		fmt.Fprintf(gz, "token=%s\n", r.Header.Get("Authorization"))
		gz.Close()
	})
	mux.HandleFunc("/br", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "br")
		w.Write([]byte("opaque"))
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		block := strings.Repeat("x", 1<<16)
		for range 64 {
			io.WriteString(w, block)
		}
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		c, brw, ok := switchTo(w, "websocket")
		if !ok {
			return
		}
		defer c.Close()
		line, _ := brw.ReadString('\n')
		fmt.Fprintf(c, "echo:%s", line)
	})
	u.Server = httptest.NewUnstartedServer(mux)
	u.EnableHTTP2 = true
	u.StartTLS()
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) port() string { _, p, _ := net.SplitHostPort(u.Listener.Addr().String()); return p }

func (u *upstream) rootPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: u.Certificate().Raw}))
}

func (u *upstream) last() (http.Header, string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		return nil, ""
	}
	return u.seen[len(u.seen)-1], u.urls[len(u.urls)-1]
}

type run struct {
	p      *proxy.Proxy
	ph     string
	client *http.Client
	mu     sync.Mutex
	events []proxy.Event
}

func start(t *testing.T, u *upstream, rule policy.InjectRule, mod func(*proxy.Config)) *run {
	t.Helper()
	rule.Roots = append(rule.Roots, u.rootPEM())
	if err := rule.Validate("rule", true); err != nil {
		t.Fatal(err)
	}
	r := &run{ph: proxy.Placeholder([]byte(fakeValue))}
	cfg := proxy.Config{
		Secrets: []proxy.Secret{{Name: "gh", Value: []byte(fakeValue), Placeholder: r.ph, Rule: &rule}},
		Event:   func(e proxy.Event) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() },
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := proxy.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.p = p
	t.Cleanup(func() { p.Close() })
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.CA())
	pu, _ := url.Parse(p.Endpoint().URL())
	r.client = &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}}
	return r
}

func (r *run) get(t *testing.T, u string, header string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	if header != "" {
		req.Header.Set("Authorization", header)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func TestPlaceholderIsNotTheValue(t *testing.T) {
	ph := proxy.Placeholder([]byte(fakeValue))
	if ph == fakeValue || strings.Contains(ph, "FAKEfake") || len(ph) != len(fakeValue) || !strings.HasPrefix(ph, "ghp_") {
		t.Fatalf("placeholder %q", ph)
	}
	if proxy.Placeholder([]byte(fakeValue)) == ph {
		t.Fatal("two placeholders are the same")
	}
	if short := proxy.Placeholder([]byte("hunter2-pass")); len(short) < proxy.MinPlaceholder || strings.Contains(short, "hunter") {
		t.Fatalf("short value's placeholder %q", short)
	}
}

func TestInjectHeaderAndScrub(t *testing.T) {
	u := newUpstream(t)
	r := start(t, u, policy.InjectRule{Hosts: []string{"127.0.0.1"}, Format: "Bearer {value}"}, nil)
	resp, body := r.get(t, u.URL+"/echo", "token "+r.ph)
	h, _ := u.last()
	if got := h.Get("Authorization"); got != "Bearer "+fakeValue {
		t.Fatalf("upstream saw Authorization %q", got)
	}
	if strings.Contains(body, fakeValue) || strings.Contains(resp.Header.Get("X-Echo"), fakeValue) {
		t.Fatalf("the value reached the child: %s %v", body, resp.Header)
	}
	if !strings.Contains(body, r.ph) || resp.Header.Get("X-Echo") != "Bearer "+r.ph {
		t.Fatalf("the echo does not show the placeholder: %s %q", body, resp.Header.Get("X-Echo"))
	}
	if resp.ProtoMajor != 2 || !strings.Contains(body, `"proto":"HTTP/2.0"`) {
		t.Errorf("want HTTP/2 on both legs, got %s and %s", resp.Proto, body)
	}
	rep := r.p.Close()
	if len(rep.Injected) != 1 || rep.Injected[0].N != 1 || rep.Injected[0].Host != "127.0.0.1:"+u.port() {
		t.Fatalf("report %+v", rep)
	}
}

func TestInjectHTTP1AndGzip(t *testing.T) {
	u := newUpstream(t)
	r := start(t, u, policy.InjectRule{Hosts: []string{"127.0.0.1:" + u.port()}}, nil)
	r.client.Transport.(*http.Transport).ForceAttemptHTTP2 = false
	r.client.Transport.(*http.Transport).TLSClientConfig.NextProtos = []string{"http/1.1"}
	req, _ := http.NewRequest("GET", u.URL+"/gzip", nil)
	req.Header.Set("Authorization", "Bearer "+r.ph)
	req.Header.Set("Accept-Encoding", "gzip, br")
	resp, err := r.client.Transport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 1 || resp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("proto %s encoding %q", resp.Proto, resp.Header.Get("Content-Encoding"))
	}
	if string(body) != "token=Bearer "+r.ph+"\n" {
		t.Fatalf("body %q", body)
	}
	if resp, body := r.get(t, u.URL+"/br", ""); resp.StatusCode != 502 || !strings.Contains(body, "br encoding") {
		t.Fatalf("an encoding the proxy cannot read: %d %s", resp.StatusCode, body)
	}
}

func TestInjectBasicAndQuery(t *testing.T) {
	u := newUpstream(t)
	r := start(t, u, policy.InjectRule{Hosts: []string{"127.0.0.1"}, Basic: "password"}, nil)
	req, _ := http.NewRequest("GET", u.URL+"/echo", nil)
	req.SetBasicAuth("x-access-token", r.ph)
	resp, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h, _ := u.last()
	if user, pass, ok := (&http.Request{Header: h}).BasicAuth(); !ok || user != "x-access-token" || pass != fakeValue {
		t.Fatalf("upstream saw basic %q %q", user, pass)
	}

	q := start(t, u, policy.InjectRule{Hosts: []string{"127.0.0.1"}, Query: "key", Methods: []string{"GET"}, Paths: []string{"/echo"}}, nil)
	q.get(t, u.URL+"/echo?a=1&key="+q.ph+"&b=2", "")
	if _, got := u.last(); got != "/echo?a=1&key="+fakeValue+"&b=2" {
		t.Fatalf("upstream saw %q", got)
	}
	// The same placeholder in a path the rule does not name stays a placeholder.
	q.get(t, u.URL+"/gzip?key="+q.ph, "")
	if _, got := u.last(); !strings.Contains(got, q.ph) || strings.Contains(got, fakeValue) {
		t.Fatalf("outside the rule's paths upstream saw %q", got)
	}
	if len(q.events) != 1 || q.events[0].Kind != "inject_blocked" {
		t.Fatalf("events %+v", q.events)
	}
}

func TestPlaceholderOutsideTheRule(t *testing.T) {
	u := newUpstream(t)
	r := start(t, u, policy.InjectRule{Hosts: []string{"127.0.0.1"}, Header: "X-Api-Key"}, nil)
	// In Authorization, where the rule does not put it: never replaced.
	r.get(t, u.URL+"/echo", "Bearer "+r.ph)
	h, _ := u.last()
	if h.Get("Authorization") != "Bearer "+r.ph {
		t.Fatalf("upstream saw %q", h.Get("Authorization"))
	}
	if len(r.events) != 1 || r.events[0].Kind != "inject_blocked" || strings.Contains(r.events[0].Why, fakeValue) {
		t.Fatalf("events %+v", r.events)
	}
	// Strict mode refuses it.
	s := start(t, u, policy.InjectRule{Hosts: []string{"127.0.0.1"}, Header: "X-Api-Key"}, func(c *proxy.Config) { c.Strict = true })
	if resp, _ := s.get(t, u.URL+"/echo", "Bearer "+s.ph); resp.StatusCode != 403 {
		t.Fatalf("strict: %d", resp.StatusCode)
	}
}

func TestOtherHostsTunnelledOrRefused(t *testing.T) {
	u := newUpstream(t)
	other := newUpstream(t)
	r := start(t, u, policy.InjectRule{Hosts: []string{"127.0.0.1:" + u.port()}}, nil)
	roots := x509.NewCertPool()
	roots.AddCert(other.Certificate())
	r.client.Transport.(*http.Transport).TLSClientConfig.RootCAs = roots
	resp, _ := r.get(t, other.URL+"/echo", "Bearer "+r.ph)
	h, _ := other.last()
	if resp.StatusCode != 200 || h.Get("Authorization") != "Bearer "+r.ph {
		t.Fatalf("tunnelled: %d %q", resp.StatusCode, h.Get("Authorization"))
	}
	rep := r.p.Close()
	if len(rep.Tunnelled) != 1 || rep.Tunnelled[0].Host != "127.0.0.1:"+other.port() {
		t.Fatalf("report %+v", rep)
	}

	s := start(t, u, policy.InjectRule{Hosts: []string{"127.0.0.1:" + u.port()}}, func(c *proxy.Config) { c.Strict = true })
	s.client.Transport.(*http.Transport).TLSClientConfig.RootCAs = roots
	_, err := s.client.Get(other.URL + "/echo")
	if err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Fatalf("strict egress: %v", err)
	}
	if len(s.events) != 1 || s.events[0].Kind != "egress_denied" {
		t.Fatalf("events %+v", s.events)
	}
}

func TestStopAndPause(t *testing.T) {
	u := newUpstream(t)
	r := start(t, u, policy.InjectRule{Hosts: []string{"127.0.0.1"}}, nil)
	r.p.Pause()
	done := make(chan int)
	go func() { resp, _ := r.get(t, u.URL+"/echo", "Bearer "+r.ph); done <- resp.StatusCode }()
	select {
	case code := <-done:
		t.Fatalf("a request went through a paused proxy: %d", code)
	case <-time.After(100 * time.Millisecond):
	}
	r.p.Stop("lease L1 revoked")
	if code := <-done; code != 403 {
		t.Fatalf("after stop: %d", code)
	}
	resp, body := r.get(t, u.URL+"/echo", "Bearer "+r.ph)
	if resp.StatusCode != 403 || !strings.Contains(body, "revoked") {
		t.Fatalf("after stop: %d %s", resp.StatusCode, body)
	}
	if h, _ := u.last(); h != nil {
		t.Fatalf("upstream got a request: %v", h)
	}

	e := start(t, u, policy.InjectRule{Hosts: []string{"127.0.0.1"}}, func(c *proxy.Config) { c.Expiry = time.Now().Add(-time.Second) })
	if resp, body := e.get(t, u.URL+"/echo", "Bearer "+e.ph); resp.StatusCode != 403 || !strings.Contains(body, "expired") {
		t.Fatalf("expired: %d %s", resp.StatusCode, body)
	}
}

func TestProxyNeedsItsCredentials(t *testing.T) {
	u := newUpstream(t)
	r := start(t, u, policy.InjectRule{Hosts: []string{"127.0.0.1"}}, nil)
	ep := r.p.Endpoint()
	c, err := net.Dial("tcp", ep.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT 127.0.0.1:%s HTTP/1.1\r\nHost: x\r\n\r\n", u.port())
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 407 {
		t.Fatalf("without credentials: %v %v", resp, err)
	}
}

func TestMisdirectedHost(t *testing.T) {
	u := newUpstream(t)
	r := start(t, u, policy.InjectRule{Hosts: []string{"127.0.0.1"}}, nil)
	req, _ := http.NewRequest("GET", u.URL+"/echo", nil)
	req.Host = "evil.example"
	req.Header.Set("Authorization", "Bearer "+r.ph)
	resp, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("a Host other than the CONNECT target: %d", resp.StatusCode)
	}
}

func TestWebSocketPassedThrough(t *testing.T) {
	u := newUpstream(t)
	r := start(t, u, policy.InjectRule{Hosts: []string{"127.0.0.1"}}, nil)
	tc := r.tunnel(t, u)
	fmt.Fprintf(tc, "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nAuthorization: Bearer %s\r\n\r\n", u.port(), r.ph)
	tb := bufio.NewReader(tc)
	resp, err := http.ReadResponse(tb, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	fmt.Fprintf(tc, "hello\n")
	line, _ := tb.ReadString('\n')
	if line != "echo:hello\n" {
		t.Fatalf("frames: %q", line)
	}
	if h, _ := u.last(); h.Get("Authorization") != "Bearer "+fakeValue {
		t.Fatalf("handshake: %q", h.Get("Authorization"))
	}
}

// tunnel opens a CONNECT tunnel to u through the run's proxy, by hand, and speaks
// HTTP/1.1 over TLS in it, trusting the run's CA.
func (r *run) tunnel(t *testing.T, u *upstream) *tls.Conn {
	t.Helper()
	ep := r.p.Endpoint()
	c, err := net.Dial("tcp", ep.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "CONNECT 127.0.0.1:%s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nProxy-Authorization: Basic %s\r\n\r\n", u.port(), u.port(), basicCred(ep.User, ep.Pass))
	br := bufio.NewReader(c)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("connect: %v %v", resp, err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(r.p.CA())
	return tls.Client(&readConn{c, br}, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
}

type readConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *readConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func basicCred(user, pass string) string {
	req := &http.Request{Header: http.Header{}}
	req.SetBasicAuth(user, pass)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

func pemOf(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}) }

func TestTrailersAndHead(t *testing.T) {
	u := newUpstream(t)
	u.Config.Handler.(*http.ServeMux).HandleFunc("/trailer", func(w http.ResponseWriter, r *http.Request) {
		record := r.Header.Get("Te")
		w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
		w.Header().Set("Content-Length", "2")
		w.Write([]byte("ok"))
		w.Header().Set("Grpc-Status", "0")
		w.Header().Set("Grpc-Message", "te="+record+" auth="+r.Header.Get("Authorization"))
	})
	r := start(t, u, policy.InjectRule{Hosts: []string{"127.0.0.1"}}, nil)
	req, _ := http.NewRequest("POST", u.URL+"/trailer", strings.NewReader("x"))
	req.Header.Set("Te", "trailers")
	req.Header.Set("Authorization", "Bearer "+r.ph)
	resp, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Trailer.Get("Grpc-Status") != "0" || resp.Trailer.Get("Grpc-Message") != "te=trailers auth=Bearer "+r.ph {
		t.Fatalf("trailers %v", resp.Trailer)
	}
	u.Config.Handler.(*http.ServeMux).HandleFunc("/sized", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "f", time.Time{}, strings.NewReader(strings.Repeat("z", 12345)))
	})
	head, err := r.client.Head(u.URL + "/sized")
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	if head.ContentLength != 12345 {
		t.Fatalf("HEAD lost its Content-Length: %d", head.ContentLength)
	}
}

// switchTo answers 101 to upgrade and hands the connection over, as a server does.
func switchTo(w http.ResponseWriter, upgrade string) (net.Conn, *bufio.ReadWriter, bool) {
	c, brw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return nil, nil, false
	}
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n\r\n", upgrade)
	brw.Flush()
	return c, brw, true
}

// recorder is an upstream that records every request, before any routing a mux would do.
func recorder(t *testing.T, h http.HandlerFunc) (*upstream, *[]*http.Request) {
	u := newUpstream(t)
	var mu sync.Mutex
	var got []*http.Request
	u.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Clone(r.Context()))
		mu.Unlock()
		h(w, r)
	})
	return u, &got
}

// The review's F1: a path a server normalises into one outside the rule gets no value.
func TestPathsAreCanonical(t *testing.T) {
	u, got := recorder(t, func(w http.ResponseWriter, r *http.Request) {})
	r := start(t, u, policy.InjectRule{Hosts: []string{"127.0.0.1"}, Paths: []string{"/repos/"}}, nil)
	for _, path := range []string{"/repos/../user", "/repos/%2e%2e/user", "/repos%2F..%2Fuser", "/repos/.%2E/user", "/repos//x", "/repos/x/..", "/repos/;/../user",
		"/repos/%252e%252e/user", "/repos/%c0%ae%c0%ae/user", "/repos/%ef%bc%8e%ef%bc%8e/user"} {
		req, _ := http.NewRequest("GET", u.URL+"/", nil)
		req.URL.Opaque = "" // keep the path as written
		req.URL.RawPath, req.URL.Path = path, path
		if p, err := url.PathUnescape(path); err == nil {
			req.URL.Path = p
		}
		req.Header.Set("Authorization", "Bearer "+r.ph)
		resp, err := r.client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		resp.Body.Close()
	}
	r.get(t, u.URL+"/repos/ok", "Bearer "+r.ph)
	for _, req := range *got {
		injected := req.Header.Get("Authorization") == "Bearer "+fakeValue
		if injected != (req.URL.EscapedPath() == "/repos/ok") {
			t.Errorf("%s: injected %v", req.URL.EscapedPath(), injected)
		}
	}
	if len(*got) != 11 {
		t.Fatalf("%d requests reached upstream", len(*got))
	}
}

// The review's F3: a range, a second encoding and a header named by the value do not
// bring the value back.
func TestScrubShapes(t *testing.T) {
	u, got := recorder(t, func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		switch r.URL.Path {
		case "/range":
			http.ServeContent(w, r, "f", time.Time{}, strings.NewReader("auth="+auth))
		case "/two-encodings":
			w.Header().Add("Content-Encoding", "identity")
			w.Header().Add("Content-Encoding", "gzip")
			gz := gzip.NewWriter(w)
			io.WriteString(gz, auth)
			gz.Close()
		case "/name":
			w.Header().Set("X-"+strings.TrimPrefix(auth, "Bearer "), "1")
		}
	})
	r := start(t, u, policy.InjectRule{Hosts: []string{"127.0.0.1"}}, nil)
	req, _ := http.NewRequest("GET", u.URL+"/range", nil)
	req.Header.Set("Authorization", "Bearer "+r.ph)
	req.Header.Set("Range", "bytes=5-14")
	resp, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "auth=Bearer "+r.ph || (*got)[0].Header.Get("Range") != "" {
		t.Fatalf("a range: %d %q (upstream saw Range %q)", resp.StatusCode, body, (*got)[0].Header.Get("Range"))
	}
	if resp, body := r.get(t, u.URL+"/two-encodings", "Bearer "+r.ph); resp.StatusCode != 502 || strings.Contains(body, fakeValue) {
		t.Fatalf("two encodings: %d %q", resp.StatusCode, body)
	}
	resp, _ = r.get(t, u.URL+"/name", "Bearer "+r.ph)
	for k := range resp.Header {
		if strings.Contains(strings.ToLower(k), strings.ToLower(fakeValue[4:])) {
			t.Fatalf("a header named by the value reached the child: %s", k)
		}
	}
}

// The review's F3d and F4: what a WebSocket server sends is scrubbed, and Stop closes
// the WebSocket.
func TestWebSocketScrubbedAndStopped(t *testing.T) {
	u, _ := recorder(t, func(w http.ResponseWriter, r *http.Request) {
		c, brw, ok := switchTo(w, "websocket")
		if !ok {
			return
		}
		defer c.Close()
		for {
			if _, err := brw.ReadString('\n'); err != nil {
				return
			}
			fmt.Fprintf(c, "you are %s\n", r.Header.Get("Authorization"))
		}
	})
	r := start(t, u, policy.InjectRule{Hosts: []string{"127.0.0.1"}}, nil)
	tc := r.tunnel(t, u)
	fmt.Fprintf(tc, "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nAuthorization: Bearer %s\r\n\r\n", u.port(), r.ph)
	tb := bufio.NewReader(tc)
	if resp, err := http.ReadResponse(tb, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	fmt.Fprintf(tc, "who\n")
	if line, _ := tb.ReadString('\n'); line != "you are Bearer "+r.ph+"\n" {
		t.Fatalf("the frame: %q", line)
	}
	r.p.Stop("lease revoked")
	fmt.Fprintf(tc, "who\n")
	tc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if line, err := tb.ReadString('\n'); err == nil {
		t.Fatalf("the WebSocket outlived Stop: %q", line)
	}
}

// The second review's N1: a WebSocket upgrade is passed on as exactly that, never as
// an h2c upgrade smuggled beside it, and a switch to anything else is refused.
func TestUpgradeIsOnlyAWebSocket(t *testing.T) {
	u, got := recorder(t, func(w http.ResponseWriter, r *http.Request) {
		if c, _, ok := switchTo(w, "h2c"); ok {
			c.Close()
		}
	})
	r := start(t, u, policy.InjectRule{Hosts: []string{"127.0.0.1"}}, nil)
	tc := r.tunnel(t, u)
	fmt.Fprintf(tc, "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nUpgrade: websocket\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nConnection: HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nAuthorization: Bearer %s\r\n\r\n", u.port(), r.ph)
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("a switch to h2c: %v %v", resp, err)
	}
	// Two upgrades asked at once are no WebSocket: neither is passed on.
	if h := (*got)[0].Header; h.Get("Upgrade") != "" || h.Get("Http2-Settings") != "" {
		t.Fatalf("upstream got %v", h)
	}
	// A WebSocket with an h2c settings header beside it: exactly the WebSocket's lines.
	tc = r.tunnel(t, u)
	fmt.Fprintf(tc, "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nConnection: HTTP2-Settings, X-Keep\r\nX-Keep: 1\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n", u.port())
	if resp, err := http.ReadResponse(bufio.NewReader(tc), nil); err != nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("a switch to h2c after a WebSocket's upgrade: %v %v", resp, err)
	}
	h := (*got)[1].Header
	if v := h.Values("Upgrade"); len(v) != 1 || v[0] != "websocket" || h.Get("Http2-Settings") != "" || h.Get("X-Keep") != "" || h.Get("Connection") != "Upgrade" {
		t.Fatalf("upstream got %v", h)
	}
}

// The second review's N3: Stop ends a stream opened with the value, not only the
// requests after it.
func TestStopEndsStreams(t *testing.T) {
	u, _ := recorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	r := start(t, u, policy.InjectRule{Hosts: []string{"127.0.0.1"}}, nil)
	req, _ := http.NewRequest("GET", u.URL+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+r.ph)
	resp, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("the stream: %q %v", line, err)
	}
	r.p.Stop("lease revoked")
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, br); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("the stream outlived Stop")
	}
}

// The second review's N5: a child that connects to many hosts does not grow the report
// (and the log) without end.
func TestReportIsBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	u := newUpstream(t)
	r := start(t, u, policy.InjectRule{Hosts: []string{"localhost"}}, nil)
	ep := r.p.Endpoint()
	for i := 1; i <= proxy.MaxCounted+20; i++ {
		c, err := net.Dial("tcp", ep.Addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "CONNECT 127.0.%d.%d:%s HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic %s\r\n\r\n", i/250, i%250+1, port, basicCred(ep.User, ep.Pass))
		http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
	}
	rep := r.p.Close()
	if n := len(rep.Tunnelled); n != proxy.MaxCounted+1 || rep.Tunnelled[0].Host != proxy.OtherHosts {
		t.Fatalf("%d hosts in the report: %+v", n, rep.Tunnelled[:3])
	}
}
