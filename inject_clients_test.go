//go:build linux

package main

// End-to-end injection tests with real clients (Python requests and urllib, git over
// https, Node's fetch and https.get, curl bypassing the proxy) on the rig of
// inject_test.go. Each child writes what it saw to a file of its own, which no redactor
// stands between it and the test: the value's absence there means the child never had
// it, not that secrets exec's output redaction hid it.

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// clientPython is Debian's python3, the one .ci/run installs the modules for; the test
// skips where it, or one of the modules, is missing.
func clientPython(t *testing.T, modules ...string) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("SKIP: python3 is not installed (.ci/run installs it)")
	}
	for _, m := range modules {
		if err := exec.Command(py, "-c", "import "+m).Run(); err != nil {
			t.Skipf("SKIP: python3-%s is not installed (.ci/run installs it)", m)
		}
	}
	return py
}

// clientNeed skips the test where the program is not on PATH.
func clientNeed(t *testing.T, prog string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	if err != nil {
		t.Skipf("SKIP: %s is not installed (.ci/run installs it)", prog)
	}
	return p
}

// clientReport is what a child wrote to its file: always the variable it held.
type clientReport map[string]any

func (c clientReport) str(k string) string { s, _ := c[k].(string); return s }

// clientRun runs `secrets exec --secret gh=GH_TOKEN -- ARGV` with CLIENT_URL (the rig's
// server) and CLIENT_OUT (the child's report file) set, fails the test unless it exits
// 0, checks the child's variable held a placeholder and the value reached nothing the
// child printed or wrote, and returns the report and what the child printed.
func clientRun(t *testing.T, r *injectRig, extraEnv []string, argv ...string) (clientReport, string) {
	t.Helper()
	outFile := filepath.Join(t.TempDir(), "report.json")
	env := append([]string{"CLIENT_URL=" + r.url, "CLIENT_OUT=" + outFile}, extraEnv...)
	stdout, stderr, code := r.exec(t, env, append([]string{"--secret", "gh=GH_TOKEN", "--"}, argv...)...)
	printed := stdout + stderr
	if code != 0 {
		t.Fatalf("the child exited %d:\n%s", code, printed)
	}
	raw, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatalf("the child wrote no report: %v\n%s", err, printed)
	}
	clientNoValue(t, "the child's report", string(raw))
	clientNoValue(t, "what the child printed", printed)
	rep := clientReport{}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("the child's report: %v\n%s", err, raw)
	}
	clientPlaceholder(t, rep.str("held"))
	return rep, printed
}

// clientNoValue fails the test if text holds the value, or the mark of its redaction
// (the child had the value and the output redactor caught it).
func clientNoValue(t *testing.T, what, text string) {
	t.Helper()
	if strings.Contains(text, injectValue) || strings.Contains(text, "[REDACTED") {
		t.Fatalf("the value (or the mark of its redaction) reached %s:\n%s", what, text)
	}
}

// clientPlaceholder fails the test unless held has the value's shape and is not it.
func clientPlaceholder(t *testing.T, held string) {
	t.Helper()
	if !strings.HasPrefix(held, "ghp_") || len(held) != len(injectValue) || held == injectValue {
		t.Fatalf("the child's variable is %q, not a placeholder", held)
	}
}

// clientOnlyAuth fails the test unless the server got exactly one request to path and
// its Authorization header was want.
func clientOnlyAuth(t *testing.T, r *injectRig, path, want string) *http.Request {
	t.Helper()
	var got []*http.Request
	for _, q := range r.requests() {
		if q.URL.Path == path {
			got = append(got, q)
		}
	}
	if len(got) != 1 {
		t.Fatalf("the server got %d requests to %s, not 1: %v", len(got), path, clientDescribe(r.requests()))
	}
	if a := got[0].Header.Get("Authorization"); a != want {
		t.Fatalf("the server got Authorization %q, not %q", a, want)
	}
	return got[0]
}

func clientDescribe(reqs []*http.Request) string {
	var b strings.Builder
	for _, q := range reqs {
		fmt.Fprintf(&b, "\n  %s %s Authorization=%q", q.Method, q.URL, q.Header.Get("Authorization"))
	}
	return b.String()
}

// clientPyEcho is a Python child that GETs CLIENT_URL + sys.argv[1] with the placeholder
// in a Bearer Authorization header, with requests or urllib.request (sys.argv[2]), and
// reports the status, the body and the echoed header it read.
const clientPyEcho = `
import json, os, sys
url, held, lib = os.environ["CLIENT_URL"] + sys.argv[1], os.environ["GH_TOKEN"], sys.argv[2]
hdrs = {"Authorization": "Bearer " + held}
if lib == "requests":
    import requests
    r = requests.get(url, headers=hdrs, timeout=20)
    status, body, echo = r.status_code, r.text, r.headers.get("X-Echo-Authorization", "")
else:
    import urllib.request
    with urllib.request.urlopen(urllib.request.Request(url, headers=hdrs), timeout=20) as r:
        status, body, echo = r.status, r.read().decode(), r.headers.get("X-Echo-Authorization", "")
json.dump({"held": held, "status": status, "body": body, "echo": echo}, open(os.environ["CLIENT_OUT"], "w"))
print(body)
`

// clientPyCheck asserts what a Python child read from /echo: the echo of the value
// scrubbed back to the placeholder, in the body and in the header.
func clientPyCheck(t *testing.T, rep clientReport) {
	t.Helper()
	held := rep.str("held")
	if rep["status"] != float64(200) {
		t.Fatalf("the child got status %v: %s", rep["status"], rep.str("body"))
	}
	var body struct{ Authorization string }
	if err := json.Unmarshal([]byte(rep.str("body")), &body); err != nil {
		t.Fatalf("the body the child read: %v\n%s", err, rep.str("body"))
	}
	if body.Authorization != "Bearer "+held || rep.str("echo") != "Bearer "+held {
		t.Fatalf("the echo the child read does not show the placeholder in place of the value: body %q, header %q", body.Authorization, rep.str("echo"))
	}
}

// TestClientPythonRequests: requests under secrets exec goes through the proxy (the
// proxy variables with their credentials, REQUESTS_CA_BUNDLE); the server gets the value,
// the child reads the placeholder in the echo.
func TestClientPythonRequests(t *testing.T) {
	py := clientPython(t, "requests")
	r := newInjectRig(t)
	rep, _ := clientRun(t, r, nil, py, "-c", clientPyEcho, "/echo", "requests")
	clientOnlyAuth(t, r, "/echo", "Bearer "+injectValue)
	clientPyCheck(t, rep)
}

// TestClientPythonUrllib: the standard library's urllib.request honours https_proxy
// (sending Proxy-Authorization for the CONNECT from the URL's user info) and, through the
// default SSL context, SSL_CERT_FILE.
func TestClientPythonUrllib(t *testing.T) {
	py := clientPython(t)
	r := newInjectRig(t)
	rep, _ := clientRun(t, r, nil, py, "-c", clientPyEcho, "/echo", "urllib")
	clientOnlyAuth(t, r, "/echo", "Bearer "+injectValue)
	clientPyCheck(t, rep)
}

// clientGzipPad makes the gzip echo long enough that compression really shrinks it.
var clientGzipPad = strings.Repeat("padding ", 64)

// TestClientPythonGzip: requests asks for gzip; the proxy lets its own transport ask for
// it and decode it, so that the echo of the value comes back scrubbed, however the
// server encoded it.
func TestClientPythonGzip(t *testing.T) {
	py := clientPython(t, "requests")
	r := newInjectRig(t)
	r.mux.HandleFunc("/gzip-echo", func(w http.ResponseWriter, req *http.Request) {
		r.record(req)
		a := req.Header.Get("Authorization")
		body, _ := json.Marshal(map[string]string{"authorization": a, "again": a + " " + a, "pad": clientGzipPad})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Echo-Authorization", a)
		if !strings.Contains(req.Header.Get("Accept-Encoding"), "gzip") {
			w.Write(body)
			return
		}
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(body)
		zw.Close()
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Length", strconv.Itoa(z.Len()))
		w.Write(z.Bytes())
	})
	rep, _ := clientRun(t, r, nil, py, "-c", clientPyEcho, "/gzip-echo", "requests")
	got := clientOnlyAuth(t, r, "/gzip-echo", "Bearer "+injectValue)
	if !strings.Contains(got.Header.Get("Accept-Encoding"), "gzip") {
		t.Fatalf("the server was not asked for gzip (Accept-Encoding %q): the test does not test it", got.Header.Get("Accept-Encoding"))
	}
	held := rep.str("held")
	if rep["status"] != float64(200) {
		t.Fatalf("the child got status %v: %s", rep["status"], rep.str("body"))
	}
	var body map[string]string
	if err := json.Unmarshal([]byte(rep.str("body")), &body); err != nil {
		t.Fatalf("the body the child read: %v\n%s", err, rep.str("body"))
	}
	want := "Bearer " + held
	if body["authorization"] != want || body["again"] != want+" "+want || body["pad"] != clientGzipPad || rep.str("echo") != want {
		t.Fatalf("the gzipped echo the child read is not the echo with the placeholder in place of the value: %q (header %q)", rep.str("body"), rep.str("echo"))
	}
}

// clientGitServer serves a bare repository, repo.git with one commit of README, by git
// http-backend under /repo.git/, to a request whose Basic password is the value only
// (401 with WWW-Authenticate otherwise). It returns README's content.
func clientGitServer(t *testing.T, r *injectRig) string {
	t.Helper()
	git := clientNeed(t, "git")
	execPath, err := exec.Command(git, "--exec-path").Output()
	if err != nil {
		t.Fatal(err)
	}
	backend := filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Skipf("SKIP: git-http-backend is not installed (.ci/run installs git): %v", err)
	}
	root := t.TempDir()
	home := filepath.Join(root, "home")
	os.MkdirAll(home, 0o700)
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "GIT_CONFIG_NOSYSTEM=1", "LANG=C",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com"}
	run := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command(git, args...)
		cmd.Dir, cmd.Env = dir, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	readme := "served by git http-backend\n"
	src := filepath.Join(root, "src")
	run(root, "init", "-q", "-b", "main", src)
	if err := os.WriteFile(filepath.Join(src, "README"), []byte(readme), 0o644); err != nil {
		t.Fatal(err)
	}
	run(src, "add", "README")
	run(src, "commit", "-q", "-m", "first")
	run(root, "clone", "-q", "--bare", src, filepath.Join(root, "repo.git"))
	h := &cgi.Handler{Path: backend, Dir: root,
		Env: append([]string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}, env...)}
	r.mux.HandleFunc("/repo.git/", func(w http.ResponseWriter, req *http.Request) {
		r.record(req)
		if _, pass, ok := req.BasicAuth(); !ok || pass != injectValue {
			w.Header().Set("WWW-Authenticate", `Basic realm="repo"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, req)
	})
	return readme
}

// TestClientGitClone: git clone over https, the placeholder as the Basic password
// (in the URL's user info, or from a credential helper that echoes the variable), under
// a rule that injects the value as the Basic password: the clone succeeds, the server saw
// the value as the password on every authenticated request, and nothing the clone left
// holds the value.
func TestClientGitClone(t *testing.T) {
	git := clientNeed(t, "git")
	for _, c := range []struct{ name, clone string }{
		{"url", `"$0" clone "https://x-access-token:$GH_TOKEN@${CLIENT_URL#https://}/repo.git" "$1"`},
		{"credential-helper", `"$0" -c credential.helper='!f() { echo username=x-access-token; echo "password=$GH_TOKEN"; }; f' clone "$CLIENT_URL/repo.git" "$1"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newInjectRig(t, "--inject-basic", "password")
			readme := clientGitServer(t, r)
			dest := filepath.Join(t.TempDir(), "clone")
			script := `echo "{\"held\": \"$GH_TOKEN\"}" > "$CLIENT_OUT" && ` + c.clone
			_, printed := clientRun(t, r, []string{"GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "GIT_HTTP_LOW_SPEED_LIMIT=1", "GIT_HTTP_LOW_SPEED_TIME=20"}, "sh", "-c", script, git, dest)
			got, err := os.ReadFile(filepath.Join(dest, "README"))
			if err != nil || string(got) != readme {
				t.Fatalf("the clone has README %q (%v), not %q:\n%s", got, err, readme, printed)
			}
			authed := 0
			for _, q := range r.requests() {
				user, pass, ok := q.BasicAuth()
				if !ok {
					continue
				}
				if user != "x-access-token" || pass != injectValue {
					t.Fatalf("the server got Basic %q:%q, not x-access-token and the value: %s", user, pass, clientDescribe(r.requests()))
				}
				authed++
			}
			if authed < 2 { // the ref advertisement and at least one upload-pack POST
				t.Fatalf("the server got %d requests with the value as the password, not at least 2: %s", authed, clientDescribe(r.requests()))
			}
			config, err := os.ReadFile(filepath.Join(dest, ".git", "config"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(config), "localhost:"+r.port+"/repo.git") {
				t.Fatalf("the clone's .git/config does not name the URL it was cloned from:\n%s", config)
			}
			err = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				data, err := os.ReadFile(p)
				if err == nil && bytes.Contains(data, []byte(injectValue)) {
					t.Errorf("the clone's %s holds the value", p)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// clientNodeVersion is the version node reports, and whether it sends fetch and
// https.request through the proxy that NODE_USE_ENV_PROXY=1 and HTTPS_PROXY name
// (Node 24.5 and later; 22.21 and later in the 22 line).
func clientNodeVersion(t *testing.T, node string) (string, bool) {
	t.Helper()
	out, err := exec.Command(node, "-p", "process.versions.node").Output()
	if err != nil {
		t.Fatalf("node -p process.versions.node: %v", err)
	}
	v := strings.TrimSpace(string(out))
	var major, minor int
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil {
		t.Fatalf("node's version %q: %v", v, err)
	}
	return v, major > 24 || major == 24 && minor >= 5 || major == 22 && minor >= 21
}

// clientNodeEcho is a Node child that GETs CLIENT_URL/echo with the placeholder in a
// Bearer Authorization header, with fetch and with https.get, and reports what each read.
const clientNodeEcho = `
const https = require("node:https"), fs = require("node:fs");
const url = process.env.CLIENT_URL + "/echo", held = process.env.GH_TOKEN;
const headers = {Authorization: "Bearer " + held};
(async () => {
  const res = await fetch(url + "?client=fetch", {headers, signal: AbortSignal.timeout(20000)});
  const fetched = {status: res.status, body: await res.text(), echo: res.headers.get("x-echo-authorization")};
  const got = await new Promise((resolve, reject) => {
    https.get(url + "?client=https.get", {headers, timeout: 20000}, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => { body += d; });
      res.on("end", () => resolve({status: res.statusCode, body, echo: res.headers["x-echo-authorization"]}));
    }).on("error", reject).on("timeout", () => reject(new Error("https.get timed out")));
  });
  fs.writeFileSync(process.env.CLIENT_OUT, JSON.stringify({held, fetch: fetched, "https.get": got}));
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
`

// TestClientNode: Node's fetch and https.get honour the proxy variables under
// NODE_USE_ENV_PROXY=1 and trust the run CA through NODE_EXTRA_CA_CERTS.
func TestClientNode(t *testing.T) {
	node := clientNeed(t, "node")
	v, ok := clientNodeVersion(t, node)
	if !ok {
		t.Skipf("SKIP: node %s does not send its requests through HTTPS_PROXY under NODE_USE_ENV_PROXY (Node 24.5 and later, or 22.21 and later, do)", v)
	}
	r := newInjectRig(t)
	rep, _ := clientRun(t, r, nil, node, "-e", clientNodeEcho)
	held := rep.str("held")
	for _, client := range []string{"fetch", "https.get"} {
		var n int
		for _, q := range r.requests() {
			if q.URL.Query().Get("client") != client {
				continue
			}
			n++
			if a := q.Header.Get("Authorization"); a != "Bearer "+injectValue {
				t.Errorf("%s: the server got Authorization %q, not the value", client, a)
			}
		}
		if n != 1 {
			t.Errorf("%s: the server got %d requests, not 1: %s", client, n, clientDescribe(r.requests()))
		}
		got, _ := rep[client].(map[string]any)
		var body struct{ Authorization string }
		json.Unmarshal([]byte(fmt.Sprint(got["body"])), &body)
		if got["status"] != float64(200) || body.Authorization != "Bearer "+held || got["echo"] != "Bearer "+held {
			t.Errorf("%s: what the child read does not show the placeholder in place of the value: %v", client, got)
		}
	}
}

// TestClientBypassProxy: a child that goes around the proxy (curl --noproxy '*',
// trusting the server's CA itself) reaches the server with the placeholder, which is
// worth nothing there: the value is only ever in what the proxy sends.
func TestClientBypassProxy(t *testing.T) {
	curl := clientNeed(t, "curl")
	r := newInjectRig(t)
	script := `echo "{\"held\": \"$GH_TOKEN\"}" > "$CLIENT_OUT" &&
"$0" -sS --max-time 20 --noproxy '*' --cacert "$1" -H "Authorization: Bearer $GH_TOKEN" "$CLIENT_URL/echo"`
	rep, printed := clientRun(t, r, nil, "sh", "-c", script, curl, r.caFile)
	held := rep.str("held")
	clientOnlyAuth(t, r, "/echo", "Bearer "+held)
	if !strings.Contains(printed, `"authorization":"Bearer `+held+`"`) {
		t.Fatalf("curl did not print the server's echo of the placeholder:\n%s", printed)
	}
	if audit := r.run(t, "", "audit", "--tail", "10"); strings.Contains(audit, `"event": "inject_use"`) {
		t.Fatalf("the audit log says a value was injected into a request that never reached the proxy:\n%s", audit)
	}
}
