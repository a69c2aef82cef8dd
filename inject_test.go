//go:build linux

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gofrs/flock"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// injectValue is the fake credential the injection tests store; nothing but the test
// upstream may ever see it.
const injectValue = "ghp_FAKEinjectFAKEinjectFAKEinject0000000"

// injectRig is a store with one secret (gh, injectValue) whose policy injects it into
// requests to localhost, trusting the rig's test CA the way an admin would (the policy's
// roots for the rule, never the supervisor's environment), and a TLS server on
// 127.0.0.1 with a certificate for localhost from that CA that records what it gets.
type injectRig struct {
	bin, dir string
	env      []string
	caFile   string // the test CA, PEM: for the policy, and for a client that bypasses the proxy
	url      string // https://localhost:PORT
	port     string
	srv      *http.Server
	mux      *http.ServeMux
	global   []string // flags before the command, for childEnv

	mu   sync.Mutex
	seen []*http.Request // what the server received (headers and URL)
}

// newInjectRig makes the rig; policyArgs are added to `secrets policy set gh`.
func newInjectRig(t *testing.T, policyArgs ...string) *injectRig {
	t.Helper()
	r := &injectRig{bin: secretsBinary(t), dir: t.TempDir()}
	store := filepath.Join(r.dir, "store")
	home := filepath.Join(r.dir, "home")
	os.MkdirAll(home, 0o700)
	r.env = []string{"SECRETS_DIR=" + store, "HOME=" + home, "PATH=" + os.Getenv("PATH"), "GORACE=atexit_sleep_ms=0", "LANG=C.UTF-8"}
	caPEM, leaf := testCA(t)
	r.caFile = filepath.Join(r.dir, "test-ca.pem")
	if err := os.WriteFile(r.caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	r.mux = http.NewServeMux()
	r.mux.HandleFunc("/echo", func(w http.ResponseWriter, req *http.Request) {
		r.record(req)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Echo-Authorization", req.Header.Get("Authorization"))
		json.NewEncoder(w).Encode(map[string]any{"authorization": req.Header.Get("Authorization"), "url": req.URL.String(), "proto": req.Proto})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, r.port, _ = net.SplitHostPort(ln.Addr().String())
	r.url = "https://localhost:" + r.port
	r.srv = &http.Server{Handler: r.mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{leaf}}, ErrorLog: nil}
	go r.srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { r.srv.Close() })
	r.run(t, "", "init")
	r.run(t, injectValue, "add", "gh")
	r.run(t, "", append([]string{"policy", "set", "gh", "--inject-host", "localhost", "--inject-ca", r.caFile}, policyArgs...)...)
	return r
}

func (r *injectRig) record(req *http.Request) {
	r.mu.Lock()
	r.seen = append(r.seen, req.Clone(req.Context()))
	r.mu.Unlock()
}

// requests returns what the server has received so far.
func (r *injectRig) requests() []*http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*http.Request(nil), r.seen...)
}

// run runs secrets with stdin and fails the test if it fails.
func (r *injectRig) run(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(r.bin, args...)
	cmd.Env, cmd.Stdin = r.env, strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("secrets %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// exec runs `secrets exec ARGS` with extra environment and returns its stdout, its
// stderr and its exit code.
func (r *injectRig) exec(t *testing.T, extraEnv []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(r.bin, append([]string{"exec"}, args...)...)
	cmd.Env = append(append([]string{}, r.env...), extraEnv...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// testCA makes a CA and a certificate for localhost and 127.0.0.1 signed by it.
func testCA(t *testing.T) ([]byte, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "secrets test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: key}
}

// TestInjectCurl: curl under secrets exec gets its request authenticated with the value,
// while the child holds a placeholder and the echo comes back scrubbed.
func TestInjectCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("SKIP: curl is not installed (.ci/run installs it)")
	}
	r := newInjectRig(t, "--inject-format", "Bearer {value}")
	out, stderr, code := r.exec(t, nil, "--secret", "gh=GH_TOKEN", "--",
		"sh", "-c", `echo "held=$GH_TOKEN"; curl -sS -D - "$0/echo" -H "Authorization: token $GH_TOKEN"`, r.url)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, stderr)
	}
	reqs := r.requests()
	if len(reqs) != 1 || reqs[0].Header.Get("Authorization") != "Bearer "+injectValue {
		t.Fatalf("the server did not get the value: %v", reqs)
	}
	held := strings.TrimSpace(strings.SplitN(strings.TrimPrefix(out, "held="), "\n", 2)[0])
	if !strings.HasPrefix(held, "ghp_") || len(held) != len(injectValue) || held == injectValue {
		t.Fatalf("the child's variable is %q, not a placeholder", held)
	}
	if strings.Contains(out+stderr, injectValue) {
		t.Fatalf("the value reached the child:\n%s%s", out, stderr)
	}
	if !strings.Contains(out, `"authorization":"Bearer `+held+`"`) || !strings.Contains(strings.ToLower(out), "x-echo-authorization: bearer "+strings.ToLower(held)) {
		t.Fatalf("the echo does not show the placeholder in place of the value:\n%s", out)
	}
	audit := r.run(t, "", "audit", "--tail", "10")
	if !strings.Contains(audit, `"event": "inject_use"`) || !strings.Contains(audit, "localhost:"+r.port+": 1 request") {
		t.Fatalf("the audit log does not say where the value went:\n%s", audit)
	}
}

// childEnv starts `secrets exec ARGS -- sh -c 'env > FILE; exec sleep 300'` (which
// ignores SIGTERM, so that it lives out a grace) and returns
// the child's environment once it has written it, and the running supervisor.
func (r *injectRig) childEnv(t *testing.T, extraEnv []string, args ...string) (map[string]string, <-chan struct{}, *lockedBuffer) {
	t.Helper()
	envFile := filepath.Join(r.dir, "child.env")
	os.Remove(envFile)
	cmd := exec.Command(r.bin, append(append(append(append([]string{}, r.global...), "exec"), args...), "--", "sh", "-c", `trap "" TERM; env > "$0.tmp" && mv "$0.tmp" "$0"; exec sleep 300`, envFile)...)
	cmd.Env = append(append([]string{}, r.env...), extraEnv...)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}) // closed when the supervisor has exited
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, err := os.ReadFile(envFile)
		if err == nil {
			env := map[string]string{}
			for _, line := range strings.Split(string(data), "\n") {
				if k, v, ok := strings.Cut(line, "="); ok {
					env[k] = v
				}
			}
			return env, done, stderr
		}
		if time.Now().After(deadline) {
			t.Fatalf("the command never started: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lockedBuffer is a buffer a process writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// client is an HTTP client that uses the child's proxy and trusts its bundle, as the
// child's own clients do.
func childClient(t *testing.T, env map[string]string) *http.Client {
	t.Helper()
	pu, err := url.Parse(env["HTTPS_PROXY"])
	if err != nil || pu.Host == "" {
		t.Fatalf("the child has no proxy: %q", env["HTTPS_PROXY"])
	}
	bundle, err := os.ReadFile(env["SSL_CERT_FILE"])
	if err != nil {
		t.Fatalf("the child's CA bundle: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(bundle)
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: roots}, DisableKeepAlives: true}, Timeout: 10 * time.Second}
}

func get(c *http.Client, u, auth string) (int, string, error) {
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Authorization", auth)
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), nil
}

// TestInjectRevokeRefusesNextRequest: a revoke from another terminal makes the next
// request fail with 403 within 100 ms, with the command stopped (the default) or left
// running with placeholders only (--on-revoke deny).
func TestInjectRevokeRefusesNextRequest(t *testing.T) {
	for _, mode := range []string{"stop", "deny"} {
		t.Run(mode, func(t *testing.T) {
			r := newInjectRig(t)
			env, done, stderr := r.childEnv(t, nil, "--secret", "gh=GH", "--on-revoke", mode, "--grace", "1s")
			c := childClient(t, env)
			if code, _, err := get(c, r.url+"/echo", "Bearer "+env["GH"]); err != nil || code != 200 {
				t.Fatalf("before the revoke: %d %v; %s", code, err, stderr)
			}
			r.run(t, "", "revoke", "--all")
			revoked := time.Now()
			code, body, err := get(c, r.url+"/echo", "Bearer "+env["GH"])
			took := time.Since(revoked)
			if err != nil || code != http.StatusForbidden || !strings.Contains(body, "no longer injected") {
				t.Fatalf("the request after the revoke: %d %q %v", code, body, err)
			}
			if took > 100*time.Millisecond {
				t.Fatalf("the refusal took %v", took)
			}
			if n := len(r.requests()); n != 1 {
				t.Fatalf("the server got %d requests; only the one before the revoke may reach it", n)
			}
			select {
			case <-done:
				if mode == "deny" {
					t.Fatalf("--on-revoke deny stopped the command: %s", stderr)
				}
			case <-time.After(3 * time.Second):
				if mode == "stop" {
					t.Fatal("the command was not stopped")
				}
				audit := r.run(t, "", "audit", "--tail", "20")
				if !strings.Contains(audit, `"event": "inject_refused"`) {
					t.Fatalf("the refusal is not in the log:\n%s", audit)
				}
			}
			t.Logf("%s: refused %v after the revoke returned", mode, took)
		})
	}
}

// TestInjectIgnoresTheAgentsTrustAndProxy: a supervisor started with SSL_CERT_FILE,
// SSL_CERT_DIR and HTTPS_PROXY pointing at an attacker's CA and proxy sends the value to
// neither: its own connections trust the system's roots and the policy's, and go direct.
func TestInjectIgnoresTheAgentsTrustAndProxy(t *testing.T) {
	r := newInjectRig(t)
	evil, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()
	var hits atomic.Int32
	go func() {
		for {
			c, err := evil.Accept()
			if err != nil {
				return
			}
			hits.Add(1)
			c.Close()
		}
	}()
	evilCA, _ := testCA(t)
	evilFile := filepath.Join(r.dir, "evil-ca.pem")
	os.WriteFile(evilFile, evilCA, 0o600)
	proxyURL := "http://" + evil.Addr().String()
	attacker := []string{"SSL_CERT_FILE=" + evilFile, "SSL_CERT_DIR=" + r.dir, "HTTPS_PROXY=" + proxyURL, "https_proxy=" + proxyURL,
		"HTTP_PROXY=" + proxyURL, "ALL_PROXY=" + proxyURL, "NO_PROXY=localhost", "no_proxy=*"}
	env, _, stderr := r.childEnv(t, attacker, "--secret", "gh=GH")
	if env["NO_PROXY"] != "" || env["no_proxy"] != "" || strings.Contains(env["HTTPS_PROXY"], evil.Addr().String()) {
		t.Fatalf("the child kept the agent's proxy settings: %v", env)
	}
	code, body, err := get(childClient(t, env), r.url+"/echo", "Bearer "+env["GH"])
	if err != nil || code != 200 || strings.Contains(body, injectValue) {
		t.Fatalf("%d %q %v; %s", code, body, err, stderr)
	}
	if reqs := r.requests(); len(reqs) != 1 || reqs[0].Header.Get("Authorization") != "Bearer "+injectValue {
		t.Fatalf("the real server did not get the value: %v", reqs)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the attacker's proxy got %d connections", n)
	}
}

// TestInjectCAKeyNeverOnDisk: the run CA's key exists only in the supervisor's memory;
// the child's bundle holds certificates, is 0600 in a 0700 directory, and goes with the
// run. Nothing the run writes holds the value.
func TestInjectCAKeyNeverOnDisk(t *testing.T) {
	r := newInjectRig(t)
	tmp := filepath.Join(r.dir, "tmp")
	os.Mkdir(tmp, 0o700)
	out, stderr, code := r.exec(t, []string{"TMPDIR=" + tmp}, "--secret", "gh=GH", "--",
		"sh", "-c", `stat -c '%a' "$(dirname "$SSL_CERT_FILE")" "$SSL_CERT_FILE"; grep -c 'BEGIN CERTIFICATE' "$SSL_CERT_FILE"; grep -c PRIVATE "$SSL_CERT_FILE"; echo "$SSL_CERT_FILE"`)
	lines := strings.Fields(out)
	if code != 0 || len(lines) != 5 || lines[0] != "700" || lines[1] != "600" || lines[3] != "0" {
		t.Fatalf("exit %d: %q %s", code, out, stderr)
	}
	if !strings.HasPrefix(lines[4], tmp) {
		t.Fatalf("the bundle %s is not in TMPDIR", lines[4])
	}
	if _, err := os.Stat(lines[4]); !os.IsNotExist(err) {
		t.Fatalf("the bundle outlived the run: %v", err)
	}
	filepath.Walk(r.dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || p == r.caFile {
			return nil
		}
		data, _ := os.ReadFile(p)
		if strings.Contains(string(data), "PRIVATE KEY") || strings.Contains(string(data), injectValue) {
			t.Errorf("%s holds a key or the value", p)
		}
		return nil
	})
}

// TestInjectOtherHosts: a host outside the rule is tunnelled untouched (it gets the
// placeholder, never the value), or refused with --strict-egress; a child that unsets
// the proxy gets nothing but the placeholder through. Each is in the log.
func TestInjectOtherHosts(t *testing.T) {
	r := newInjectRig(t)
	roots := x509.NewCertPool()
	ca, _ := os.ReadFile(r.caFile)
	roots.AppendCertsFromPEM(ca)
	other := "https://127.0.0.1:" + r.port // the same server by another name: no rule names it

	env, _, _ := r.childEnv(t, nil, "--secret", "gh=GH")
	c := childClient(t, env)
	c.Transport.(*http.Transport).TLSClientConfig.RootCAs = roots // the tunnel is end to end: the child must trust the server itself
	if code, _, err := get(c, other+"/echo", "Bearer "+env["GH"]); err != nil || code != 200 {
		t.Fatalf("tunnelled: %d %v", code, err)
	}
	direct := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: roots}}}
	if code, _, err := get(direct, r.url+"/echo", "Bearer "+env["GH"]); err != nil || code != 200 {
		t.Fatalf("direct: %d %v", code, err)
	}
	for _, req := range r.requests() {
		if got := req.Header.Get("Authorization"); got != "Bearer "+env["GH"] {
			t.Fatalf("a request outside the proxy's rule got %q", got)
		}
	}

	strict, _, _ := r.childEnv(t, nil, "--secret", "gh=GH", "--strict-egress")
	sc := childClient(t, strict)
	_, _, err := get(sc, other+"/echo", "Bearer "+strict["GH"])
	if err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Fatalf("strict egress let it through: %v", err)
	}
	if code, _, err := get(sc, r.url+"/echo", "Bearer "+strict["GH"]); err != nil || code != 200 {
		t.Fatalf("strict egress refused the rule's host: %d %v", code, err)
	}
	time.Sleep(1200 * time.Millisecond) // refusals are logged a batch a second
	audit := r.run(t, "", "audit", "--tail", "30")
	if !strings.Contains(audit, `"event": "egress_denied"`) || !strings.Contains(audit, "127.0.0.1:"+r.port) {
		t.Fatalf("the refusal is not in the log:\n%s", audit)
	}
}

// TestInjectRulesAreChecked: a project file's rule is checked with its JSON path, may
// not carry trust roots, may not widen the policy's hosts, and secrets env refuses it.
func TestInjectRulesAreChecked(t *testing.T) {
	r := newInjectRig(t)
	// exec's errors are lines on stderr (its stdout is the command's): the exit code is
	// the code's, 2 for invalid_project_file and 12 for inject_not_allowed.
	for _, c := range []struct {
		file string
		exit int
		want string
	}{
		{`{"secrets":[{"name":"gh","env_var":"GH","inject":{"hosts":["Api.GitHub.com"]}}]}`, 2, "secrets[0].inject.hosts[0]"},
		{`{"secrets":[{"name":"gh","env_var":"GH","inject":{"hosts":["*.github.io"]}}]}`, 2, "anyone can run a host"},
		{`{"secrets":[{"name":"gh","env_var":"GH","inject":{"hosts":["*.com"]}}]}`, 2, "secrets[0].inject.hosts[0]"},
		{`{"secrets":[{"name":"gh","env_var":"GH","inject":{"hosts":["localhost"],"roots":["x"]}}]}`, 2, "secrets[0].inject.roots"},
		{`{"secrets":[{"name":"gh","env_var":"GH","inject":{"hosts":["localhost"],"header":"Host"}}]}`, 2, "secrets[0].inject.header"},
		{`{"secrets":[{"name":"gh","env_var":"GH","inject":{"hosts":["localhost"],"format":"Bearer"}}]}`, 2, "secrets[0].inject.format"},
		{`{"secrets":[{"name":"gh","env_var":"GH","inject":{"hosts":["localhost"],"colour":"red"}}]}`, 2, "secrets[0].inject.colour"},
		{`{"secrets":[{"name":"gh","env_var":"GH","inject":{"hosts":["evil.example"]}}]}`, 12, "evil.example is not among the hosts the policy gives it"},
		{`{"secrets":[{"name":"gh","env_var":"GH","inject":{"hosts":["localhost"],"query":"key"}}]}`, 12, "may not move it"},
	} {
		file := filepath.Join(r.dir, "m.json")
		os.WriteFile(file, []byte(c.file), 0o600)
		out, stderr, code := r.exec(t, nil, "--file", file, "--", "true")
		if code != c.exit || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "secrets: hint: ") || strings.Contains(out+stderr, injectValue) {
			t.Errorf("%s: exit %d\n%s%s", c.file, code, out, stderr)
		}
	}
	os.WriteFile(filepath.Join(r.dir, "m.json"), []byte(`{"secrets":[{"name":"gh","env_var":"GH","inject":{"hosts":["localhost"]}}]}`), 0o600)
	cmd := exec.Command(r.bin, "env", "--file", filepath.Join(r.dir, "m.json"), "--output", filepath.Join(r.dir, ".env"))
	cmd.Env = r.env
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "invalid_project_file") {
		t.Fatalf("secrets env wrote an injected secret to a file: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(r.dir, ".env")); err == nil {
		t.Fatal(".env was written")
	}
}

// TestInjectKillswitchRefuses: the killswitch stops injection as a revoke does.
func TestInjectKillswitchRefuses(t *testing.T) {
	r := newInjectRig(t)
	env, _, stderr := r.childEnv(t, nil, "--secret", "gh=GH", "--on-revoke", "deny")
	c := childClient(t, env)
	if code, _, err := get(c, r.url+"/echo", "Bearer "+env["GH"]); err != nil || code != 200 {
		t.Fatalf("before: %d %v; %s", code, err, stderr)
	}
	cmd := exec.Command(r.bin, "killswitch", "--yes")
	cmd.Env = r.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("killswitch: %v\n%s", err, out)
	}
	code, body, err := get(c, r.url+"/echo", "Bearer "+env["GH"])
	if err != nil || code != http.StatusForbidden || !strings.Contains(body, "killswitch") {
		t.Fatalf("after the killswitch: %d %q %v", code, body, err)
	}
}

// TestInjectMCPExec: MCP's secrets_exec injects every mapping that has a rule, and says
// so in its result; neither the result nor the command's output holds the value.
func TestInjectMCPExec(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("SKIP: curl is not installed (.ci/run installs it)")
	}
	r := newInjectRig(t, "--exec", "sh -c *")
	cr, sw := io.Pipe()
	sr, cw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- newApp(sr, sw, io.Discard, r.env, time.Now).runContext(ctx, []string{"secrets", "mcp"})
		sw.Close()
	}()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "test-agent", Version: "1.0"}, nil).Connect(ctx, &sdk.IOTransport{Reader: cr, Writer: cw}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cs.Close(); cw.Close(); cancel(); <-done }()
	res, out := callTool(t, cs, "secrets_exec", map[string]any{
		"command": []string{"sh", "-c", `echo "held=$GH"; curl -sS "$0/echo" -H "Authorization: Bearer $GH"`, r.url},
		"secrets": []map[string]any{{"name": "gh", "env_var": "GH"}},
	})
	raw, _ := json.Marshal(res)
	if res.IsError || strings.Contains(string(raw), injectValue) || leaked(res) {
		t.Fatalf("secrets_exec: %s", raw)
	}
	inj, _ := out["injected"].([]any)
	if len(inj) != 1 || !strings.Contains(string(raw), `\"hosts\":[\"localhost\"]`) && !strings.Contains(string(raw), `"hosts":["localhost"]`) {
		t.Fatalf("the result does not say what was injected: %s", raw)
	}
	if reqs := r.requests(); len(reqs) != 1 || reqs[0].Header.Get("Authorization") != "Bearer "+injectValue {
		t.Fatalf("the server did not get the value: %v (%s)", reqs, raw)
	}
}

// TestInjectFailsClosedWithoutTheStore is the review's F2: a process that holds the
// store's lock when the supervisor checks its leases after a revocation signal does not
// let injection go on unchecked; it waits for the store's answer, and refuses meanwhile.
func TestInjectFailsClosedWithoutTheStore(t *testing.T) {
	r := newInjectRig(t)
	r.global = []string{"--lock-timeout", "1s"} // the supervisor's check gives up after 1s
	env, _, stderr := r.childEnv(t, nil, "--secret", "gh=GH", "--on-revoke", "deny")
	c := childClient(t, env)
	if code, _, err := get(c, r.url+"/echo", "Bearer "+env["GH"]); err != nil || code != 200 {
		t.Fatalf("before: %d %v; %s", code, err, stderr)
	}
	lock := flock.New(filepath.Join(r.dir, "store", ".lock"))
	if err := lock.Lock(); err != nil {
		t.Fatal(err)
	}
	supervisor := 0
	for _, p := range procsWith(r.bin + " --lock-timeout 1s exec --secret gh=GH") {
		pid, _, _ := strings.Cut(p, ":")
		supervisor, _ = strconv.Atoi(pid)
	}
	if supervisor == 0 {
		t.Fatal("no supervisor found")
	}
	syscall.Kill(supervisor, syscall.Signal(34+6)) // SIGRTMIN+6: a lease may have ended
	if !waitFor(5*time.Second, func() bool { return strings.Contains(stderr.String(), "could not check the leases") }) {
		t.Fatalf("the supervisor's check did not fail: %s", stderr)
	}
	// The check failed: the lease may have been revoked. Nothing is injected unchecked.
	start := time.Now()
	code, body, err := get(c, r.url+"/echo", "Bearer "+env["GH"])
	if err != nil || code != http.StatusForbidden || !strings.Contains(body, "did not answer") {
		t.Fatalf("while the store could not be read: %d %q %v (after %v)", code, body, err, time.Since(start))
	}
	lock.Unlock()
	// The store answers again: the lease stands, injection goes on.
	if !waitFor(15*time.Second, func() bool { code, _, _ := get(c, r.url+"/echo", "Bearer "+env["GH"]); return code == 200 }) {
		t.Fatalf("injection did not come back once the store answered; %s", stderr)
	}
	if n := len(r.requests()); n != 2 {
		t.Fatalf("%d requests reached the server; the one while the lock was held must not", n)
	}
}

// TestInjectStopsWhenTheStoreIsSilent is the second review's N4: a process that holds
// the lock after a revocation signal cannot keep the command running (the default
// --on-revoke stop): once the store has not answered for a bound, the command is stopped.
// And a supervisor killed outright leaves a bundle the next run sweeps away.
func TestInjectStopsWhenTheStoreIsSilent(t *testing.T) {
	r := newInjectRig(t)
	r.global = []string{"--lock-timeout", "1s"}
	tmp := filepath.Join(r.dir, "tmp")
	os.Mkdir(tmp, 0o700)
	env, done, stderr := r.childEnv(t, []string{"TMPDIR=" + tmp}, "--secret", "gh=GH", "--grace", "1s")
	lock := flock.New(filepath.Join(r.dir, "store", ".lock"))
	if err := lock.Lock(); err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	supervisor := 0
	for _, p := range procsWith(r.bin + " --lock-timeout 1s exec --secret gh=GH") {
		pid, _, _ := strings.Cut(p, ":")
		supervisor, _ = strconv.Atoi(pid)
	}
	syscall.Kill(supervisor, syscall.Signal(34+6))
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the command ran on while the store was silent: %s", stderr)
	}
	if !strings.Contains(stderr.String(), "did not answer") {
		t.Fatalf("stderr: %s", stderr)
	}
	lock.Unlock()

	// A supervisor killed outright cannot remove its bundle; the next run does.
	_, done2, _ := r.childEnv(t, []string{"TMPDIR=" + tmp}, "--secret", "gh=GH")
	for _, p := range procsWith(r.bin + " --lock-timeout 1s exec --secret gh=GH") {
		pid, _, _ := strings.Cut(p, ":")
		if n, _ := strconv.Atoi(pid); n > 0 {
			syscall.Kill(n, syscall.SIGKILL)
		}
	}
	<-done2
	left, _ := filepath.Glob(filepath.Join(tmp, "secrets-exec-*", "*"))
	if len(left) != 1 {
		t.Fatalf("after a kill -9: %v", left)
	}
	r.exec(t, []string{"TMPDIR=" + tmp}, "--secret", "gh=GH", "--", "true")
	if left, _ := filepath.Glob(filepath.Join(tmp, "secrets-exec-*", "*")); len(left) != 0 {
		t.Fatalf("the next run left %v", left)
	}
	_ = env
}

// TestInjectRefusalsAreCounted is the second review's N6: decoy refusals cannot push the
// one that matters out of the log: one of each shape is logged, the rest counted by
// secret at the end of the run.
func TestInjectRefusalsAreCounted(t *testing.T) {
	r := newInjectRig(t)
	env, done, _ := r.childEnv(t, nil, "--secret", "gh=GH", "--grace", "1s")
	c := childClient(t, env)
	for i := range 70 {
		req, _ := http.NewRequest("GET", r.url+"/echo", nil)
		req.Header.Set(fmt.Sprintf("X-Everything-Is-Fine-%d", i), env["GH"])
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	get(c, r.url+"/echo?access_token="+env["GH"], "")
	get(c, r.url+"/echo?access_token="+env["GH"], "")
	r.run(t, "", "revoke", "--all")
	<-done
	out := r.run(t, "", "audit", "--event", "inject_blocked", "--tail", "200")
	// One entry for the headers (the first of them), one for the query, and the count
	// of the 70 that were of a shape already logged.
	if n := strings.Count(out, `"event": "inject_blocked"`); n != 3 {
		t.Fatalf("%d inject_blocked entries, want 3:\n%s", n, out)
	}
	if !strings.Contains(out, `sent in the query \\\"access_token\\\"`) && !strings.Contains(out, `query \"access_token\"`) {
		t.Fatalf("the refusal that matters is not in the log:\n%s", out)
	}
	if !strings.Contains(out, "70 more refusals in this run") || strings.Contains(out, injectValue) {
		t.Fatalf("the count of the rest:\n%s", out)
	}
}
