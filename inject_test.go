package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
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
