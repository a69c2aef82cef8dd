//go:build linux

package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/guard"
)

// guardedInject checks injection in a guarded store (DESIGN.md sections 10 and 12): the
// proxy that holds the value runs on the owner side, so neither the agent's command nor
// the agent's own secrets process ever has it in memory; the agent cannot widen the
// policy's hosts; root's revoke refuses the next request.
func guardedInject(t *testing.T, bin, agent, dir, value string) {
	t.Helper()
	secrets := guard.BinaryPath
	caPEM, leaf := testCA(t)
	// The admin's CA file: policy set runs as the store's user, which reads it.
	caDir, _ := os.MkdirTemp("", "secrets-t-ca-")
	defer os.RemoveAll(caDir)
	os.Chmod(caDir, 0o755)
	caFile := filepath.Join(caDir, "ca.pem")
	os.WriteFile(caFile, caPEM, 0o644)
	seen := make(chan string, 16)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{TLSConfig: &tls.Config{Certificates: []tls.Certificate{leaf}}, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("Authorization")
		w.Write([]byte("you sent " + r.Header.Get("Authorization") + "\n"))
	})}
	go srv.ServeTLS(ln, "", "")
	defer srv.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	url := "https://localhost:" + port + "/"
	if r := root(t, bin, "", "policy", "set", "gh_token", "--inject-host", "localhost", "--inject-ca", caFile, "--inject-format", "Bearer {value}"); r.code != 0 {
		t.Fatalf("policy set --inject-host as root: %+v", r)
	}
	defer root(t, bin, "", "policy", "set", "gh_token", "--no-inject")

	// The command holds a placeholder; the server gets the value; the echo comes back
	// scrubbed.
	script := `[ "$GH_TOKEN" = ` + value + ` ] && echo has-the-value; curl -sS "$0" -H "Authorization: Bearer $GH_TOKEN"`
	r := as(t, agent, "", secrets, "exec", "--secret", "gh_token=GH_TOKEN", "--", "sh", "-c", script, url)
	if r.code != 0 || strings.Contains(r.stdout+r.stderr, value) || strings.Contains(r.stdout, "has-the-value") || !strings.HasPrefix(r.stdout, "you sent Bearer ") {
		t.Fatalf("an injected exec as the agent: %+v", r)
	}
	if got := <-seen; got != "Bearer "+value {
		t.Fatalf("the server got %q", got)
	}

	// While it runs, neither the agent's command nor its secrets process has the value in
	// memory: the owner side's helper alone has it.
	marker := filepath.Join("/tmp", "secrets-t-inject-"+strconv.Itoa(os.Getpid()))
	defer os.Remove(marker)
	s := startAs(t, agent, secrets, "exec", "--secret", "gh_token=GH_TOKEN", "--", "sh", "-c",
		`curl -sS "$0" -H "Authorization: Bearer $GH_TOKEN" > "$1"; exec sleep 65`, url, marker)
	if !waitFor(10*time.Second, func() bool { return running("sleep 65") && exists(marker) }) {
		t.Fatalf("the injected exec did not run: %s", s.stderr.String())
	}
	<-seen
	uid := strings.TrimSpace(sys(t, "id", "-u", agent))
	scanned := 0
	for _, pid := range processesOf(t, uid) {
		if has, err := memoryHolds(pid, []byte(value)); err == nil {
			scanned++
			if has {
				cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
				t.Errorf("process %d of the agent (%q) holds the value in memory", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
			}
		}
	}
	if scanned < 3 { // the caller side, sh's exec of sleep, and sudo at least
		t.Fatalf("scanned only %d of the agent's processes", scanned)
	}
	// Root's revoke: the command is stopped, and its proxy refuses meanwhile.
	if r := root(t, bin, "", "revoke", "--all"); r.code != 0 {
		t.Fatalf("revoke --all: %+v", r)
	}
	if code := s.exited(15 * time.Second); code != 128+int(syscall.SIGTERM) {
		t.Fatalf("the injected exec after revoke --all: exit %d\n%s", code, s.stderr.String())
	}

	// The agent may not send the value elsewhere than the policy says.
	proj := filepath.Join("/home", agent, "evil.json")
	os.WriteFile(proj, []byte(`{"secrets":[{"name":"gh_token","env_var":"GH","inject":{"hosts":["evil.example"]}}]}`), 0o644)
	defer os.Remove(proj)
	if r := as(t, agent, "", secrets, "exec", "--file", proj, "--", "true"); r.code != exitPolicy || !strings.Contains(r.stderr, "not among the hosts the policy gives it") {
		t.Fatalf("an agent's rule to another host: %+v", r)
	}
	if r := as(t, agent, "", secrets, "exec", "--inject", "gh_token=GH@evil.example", "--", "true"); r.code != exitPolicy {
		t.Fatalf("an agent's --inject to another host: %+v", r)
	}
	log := root(t, bin, "", "audit", "--event", "inject_use")
	if !strings.Contains(log.stdout, "localhost:"+port) || strings.Contains(log.stdout, value) {
		t.Fatalf("the log of injected requests:\n%s", log.stdout)
	}

	// The scan can fail: without the rule the command holds the value, and it is found.
	if r := root(t, bin, "", "policy", "set", "gh_token", "--no-inject"); r.code != 0 {
		t.Fatalf("policy set --no-inject: %+v", r)
	}
	plain := startAs(t, agent, secrets, "exec", "--secret", "gh_token=GH_TOKEN", "--", "sleep", "66")
	if !waitFor(10*time.Second, func() bool { return running("sleep 66") }) {
		t.Fatalf("the plain exec did not run: %s", plain.stderr.String())
	}
	found := false
	for _, pid := range processesOf(t, uid) {
		has, _ := memoryHolds(pid, []byte(value))
		found = found || has
	}
	if !found {
		t.Fatal("the memory scan did not find the value in a command that holds it")
	}
}

// processesOf lists the pids of uid's processes.
func processesOf(t *testing.T, uid string) []int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		status, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" && f[1] == uid {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// memoryHolds reads every readable mapping of pid that is not a file's (as root may)
// and reports whether needle is in any of them.
func memoryHolds(pid int, needle []byte) (bool, error) {
	maps, err := os.Open("/proc/" + strconv.Itoa(pid) + "/maps")
	if err != nil {
		return false, err
	}
	defer maps.Close()
	mem, err := os.Open("/proc/" + strconv.Itoa(pid) + "/mem")
	if err != nil {
		return false, err
	}
	defer mem.Close()
	sc := bufio.NewScanner(maps)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// A file's mapping is the file (the test's binary holds the test's value as a
		// constant); what a process learns is in its anonymous memory, heap and stack.
		if len(f) < 2 || f[1][0] != 'r' || len(f) >= 6 && strings.HasPrefix(f[5], "/") {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end-start > 1<<30 {
			continue
		}
		buf := make([]byte, end-start)
		n, _ := mem.ReadAt(buf, int64(start))
		if bytes.Contains(buf[:n], needle) {
			return true, nil
		}
	}
	return false, nil
}
