//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// The MCP server under load (issue 12, item 14), from the built binary: each test failed
// on the release before, which answered one request at a time, blocked on a command's
// output, ignored notifications/cancelled, died on a long message and stayed up on
// SIGTERM.

// mcpBinary serves `secrets mcp args…` from the built binary on the attack store, with
// the official Go SDK as the client.
func mcpBinary(t *testing.T, s *attackStore, args ...string) *sdk.ClientSession {
	t.Helper()
	return connect(t, s, exec.Command(s.bin, append([]string{"mcp"}, args...)...))
}

// mcpUnconfined serves it where the kernel gives no namespaces (as where a sysctl or
// AppArmor forbids them): in a user namespace whose limit for nested ones is 0.
func mcpUnconfined(t *testing.T, s *attackStore, args ...string) *sdk.ClientSession {
	t.Helper()
	if exec.Command("unshare", "-Ur", "sh", "-c", "echo 0 > /proc/sys/user/max_user_namespaces").Run() != nil {
		t.Skip("SKIP: unshare -Ur cannot make a user namespace here, so a kernel without namespaces cannot be shown")
	}
	return connect(t, s, exec.Command("unshare", append([]string{"-Ur", "sh", "-c", `echo 0 > /proc/sys/user/max_user_namespaces && exec "$0" mcp "$@"`, s.bin}, args...)...))
}

func connect(t *testing.T, s *attackStore, cmd *exec.Cmd) *sdk.ClientSession {
	t.Helper()
	cmd.Env = s.env
	cmd.Stderr = os.Stderr
	client := sdk.NewClient(&sdk.Implementation{Name: "load-agent", Version: "1.0"}, nil)
	cs, err := client.Connect(context.Background(), &sdk.CommandTransport{Command: cmd, TerminateDuration: 10 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// procsWith lists the processes whose argv holds marker.
func procsWith(marker string) []string {
	var found []string
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err == nil && strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), marker) {
			found = append(found, filepath.Base(filepath.Dir(d))+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}

// waitFor polls cond for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func execCall(command string, timeout string) map[string]any {
	args := map[string]any{"command": []string{"sh", "-c", command}, "secrets": []map[string]any{{"name": "k"}}}
	if timeout != "" {
		args["timeout"] = timeout
	}
	return args
}

// A ping, a list and a second command are answered while a command runs, and several
// commands run side by side.
func TestMCPServesWhileExecRuns(t *testing.T) {
	s := newAttackStore(t)
	cs := mcpBinary(t, s, "--exec", "sh -c *")
	slow := make(chan error, 1)
	go func() {
		_, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "secrets_exec", Arguments: execCall("sleep 4.1011; echo slept", "")})
		slow <- err
	}()
	if !waitFor(5*time.Second, func() bool { return len(procsWith("sleep 4.1011")) > 0 }) {
		t.Fatal("the command never started")
	}
	start := time.Now()
	if err := cs.Ping(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if _, out := callTool(t, cs, "secrets_list", nil); out["count"] != 2.0 {
		t.Fatalf("list: %+v", out)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("ping and list waited %v behind secrets_exec", d)
	}
	// Three more commands at once finish together, not one after another.
	start = time.Now()
	var wg sync.WaitGroup
	errs := make(chan string, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "secrets_exec", Arguments: execCall(fmt.Sprintf("sleep 2; echo $K %d", i), "")})
			if err != nil || res.IsError || !strings.Contains(fmt.Sprint(res.StructuredContent), "[REDACTED:K]") {
				errs <- fmt.Sprintf("call %d: %v %+v", i, err, res)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("three 2 s commands took %v: not side by side", d)
	}
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
}

// A call beyond the bound is refused at once with a JSON-RPC error; the server goes on.
func TestMCPBoundsCalls(t *testing.T) {
	s := newAttackStore(t)
	cs := mcpBinary(t, s, "--exec", "sh -c *")
	var wg sync.WaitGroup
	var mu sync.Mutex
	busy, ok := 0, 0
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "secrets_exec", Arguments: execCall("sleep 3", "")})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case strings.Contains(err.Error(), "tool calls are running"):
				busy++
			default:
				t.Errorf("call: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok != 8 || busy != 2 {
		t.Fatalf("%d served and %d refused; want 8 and 2", ok, busy)
	}
	if err := cs.Ping(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

// A timeout stops the whole tree: a descendant that left the group, ignores SIGTERM and
// holds the output does not keep the call (or the server) waiting, nor outlive it.
func TestMCPTimeoutStopsTheTree(t *testing.T) {
	s := newAttackStore(t)
	cs := mcpBinary(t, s, "--exec", "sh -c *")
	start := time.Now()
	_, out := callTool(t, cs, "secrets_exec", execCall(`setsid sh -c 'trap "" TERM; sleep 97.2021' & trap "" TERM; sleep 97.2022 & wait`, "1s"))
	if d := time.Since(start); d > 8*time.Second {
		t.Fatalf("a 1s timeout took %v", d)
	}
	if out["timed_out"] != true {
		t.Fatalf("not timed out: %+v", out)
	}
	if !waitFor(3*time.Second, func() bool { return len(procsWith("sleep 97.202")) == 0 }) {
		t.Fatalf("left running after the timeout: %v", procsWith("sleep 97.202"))
	}
	if err := cs.Ping(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

// notifications/cancelled stops the command the call started.
func TestMCPCancelStopsTheCommand(t *testing.T) {
	s := newAttackStore(t)
	cs := mcpBinary(t, s, "--exec", "sh -c *")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "secrets_exec", Arguments: execCall("sleep 97.3031", "10m")})
		done <- err
	}()
	if !waitFor(5*time.Second, func() bool { return len(procsWith("sleep 97.3031")) > 0 }) {
		t.Fatal("the command never started")
	}
	cancel()
	<-done
	if !waitFor(5*time.Second, func() bool { return len(procsWith("sleep 97.3031")) == 0 }) {
		t.Fatalf("the cancelled command still runs: %v", procsWith("sleep 97.3031"))
	}
	// Its lease ended with it (once the supervisor has recorded the end, just after the
	// command is gone), and the log says why.
	var out map[string]any
	if !waitFor(5*time.Second, func() bool { _, out = callTool(t, cs, "secrets_leases", nil); return out["count"] == 0.0 }) {
		t.Fatalf("leases after the cancel: %+v", out)
	}
	if _, out = callTool(t, cs, "secrets_audit", map[string]any{"event": "exec_terminated"}); !strings.Contains(fmt.Sprint(out), "sh: cancelled") {
		t.Fatalf("exec_terminated does not say cancelled: %+v", out)
	}
}

// rawMCP runs `secrets mcp` from the built binary with stdin and stdout as pipes.
type rawMCP struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	outEnd io.Closer // our end of its stdout
	stderr strings.Builder
}

func startRawMCP(t *testing.T, s *attackStore, args ...string) *rawMCP {
	t.Helper()
	m := &rawMCP{cmd: exec.Command(s.bin, append([]string{"mcp"}, args...)...)}
	m.cmd.Env = s.env
	m.cmd.Stderr = &m.stderr
	in, err := m.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.cmd.Process.Kill(); m.cmd.Wait() })
	m.in, m.out, m.outEnd = in, bufio.NewReaderSize(out, 1<<20), out
	m.send(t, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","clientInfo":{"name":"raw","version":"1"}}}`)
	m.recv(t)
	m.send(t, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	return m
}

func (m *rawMCP) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(m.in, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

// recv reads one message, which must be JSON-RPC 2.0.
func (m *rawMCP) recv(t *testing.T) map[string]any {
	t.Helper()
	line, err := m.out.ReadBytes('\n')
	if err != nil {
		t.Fatalf("read: %v (stderr: %s)", err, m.stderr.String())
	}
	var msg map[string]any
	if err := json.Unmarshal(line, &msg); err != nil || msg["jsonrpc"] != "2.0" {
		t.Fatalf("not a JSON-RPC message on the protocol stream: %q", line)
	}
	return msg
}

// A message over the limit is answered with a JSON-RPC error and skipped; the server
// goes on, and nothing but protocol messages ever reaches its stdout.
func TestMCPOversizedMessage(t *testing.T) {
	s := newAttackStore(t)
	m := startRawMCP(t, s)
	big := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"secrets_list","arguments":{"pad":"` + strings.Repeat("A", 5<<20) + `"}}}`
	m.send(t, big)
	m.send(t, `{"jsonrpc":"2.0","id":8,"method":"ping"}`)
	got := m.recv(t)
	if e, _ := got["error"].(map[string]any); e == nil || e["code"] != -32600.0 || got["id"] != nil {
		t.Fatalf("over the limit: %+v", got)
	}
	if got = m.recv(t); got["id"] != 8.0 || got["error"] != nil {
		t.Fatalf("after it: %+v", got)
	}
	m.in.Close() // end of input: a clean exit, and nothing more on stdout
	if err := m.cmd.Wait(); err != nil {
		t.Fatalf("exit: %v (stderr: %s)", err, m.stderr.String())
	}
	if rest, _ := io.ReadAll(m.out); len(rest) > 0 {
		t.Fatalf("after the last response: %q", rest)
	}
}

// SIGTERM during secrets_exec stops the command, records its end, answers the call and
// ends the server with status 0.
func TestMCPSigtermStopsWhatItStarted(t *testing.T) {
	s := newAttackStore(t)
	m := startRawMCP(t, s, "--exec", "sh -c *")
	m.send(t, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secrets_exec","arguments":{"command":["sh","-c","trap '' TERM; sleep 97.4041 & wait"],"secrets":[{"name":"k"}],"timeout":"10m"}}}`)
	if !waitFor(5*time.Second, func() bool { return len(procsWith("sleep 97.4041")) > 0 }) {
		t.Fatal("the command never started")
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() {
		for {
			if _, err := m.out.ReadBytes('\n'); err != nil {
				break
			}
		}
		exited <- m.cmd.Wait()
	}()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v (stderr: %s)", err, m.stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server is still up 10 s after SIGTERM")
	}
	if p := procsWith("sleep 97.4041"); len(p) > 0 {
		t.Fatalf("left running: %v", p)
	}
	if out := s.must("", "audit", "--event", "exec_terminated"); !strings.Contains(out, "sh: cancelled") {
		t.Fatalf("no exec_terminated for the stopped command:\n%s", out)
	}
	if out := s.must("", "leases"); !strings.Contains(out, `"count": 0`) {
		t.Fatalf("leases left:\n%s", out)
	}
}

// Where the kernel gives no PID namespace, what a command leaves behind is reparented to
// the server: the timeout still stops the whole tree, and commands run one at a time, so
// that one's orphans are never taken for another's (nor another's command for an orphan).
func TestMCPUnconfined(t *testing.T) {
	s := newAttackStore(t)
	cs := mcpUnconfined(t, s, "--exec", "sh -c *")
	start := time.Now()
	_, out := callTool(t, cs, "secrets_exec", execCall(`setsid sh -c 'trap "" TERM; sleep 97.5051' & trap "" TERM; sleep 97.5052 & wait`, "1s"))
	if d := time.Since(start); d > 8*time.Second || out["timed_out"] != true || out["store_hidden"] != false {
		t.Fatalf("after %v: %+v", d, out)
	}
	if !waitFor(3*time.Second, func() bool { return len(procsWith("sleep 97.505")) == 0 }) {
		t.Fatalf("left running after the timeout: %v", procsWith("sleep 97.505"))
	}
	// A runs 1 s. B starts a daemon (double fork: reparented to the server at once) that
	// it uses for 3 s, then exits. A's end must not stop B's daemon; B's end must.
	pidfile := filepath.Join(t.TempDir(), "daemon.pid")
	a := make(chan map[string]any, 1)
	go func() {
		_, out := callTool(t, cs, "secrets_exec", execCall("sleep 1.0061; echo a-done", ""))
		a <- out
	}()
	if !waitFor(5*time.Second, func() bool { return len(procsWith("sleep 1.0061")) > 0 }) {
		t.Fatal("A never started")
	}
	_, outB := callTool(t, cs, "secrets_exec", execCall(`(setsid sh -c 'echo $$ > `+pidfile+`; exec sleep 97.5053' &); sleep 3; kill -0 "$(cat `+pidfile+`)" && echo daemon-alive`, ""))
	outA := <-a
	if outA["exit_code"] != 0.0 || outA["stdout"] != "a-done\n" || outB["stdout"] != "daemon-alive\n" {
		t.Fatalf("A %+v\nB %+v", outA, outB)
	}
	if !waitFor(3*time.Second, func() bool { return len(procsWith("sleep 97.5053")) == 0 }) {
		t.Fatalf("B's daemon outlived it: %v", procsWith("sleep 97.5053"))
	}
}

// A client that goes away (closes the server's stdin and stdout, or is killed with the
// server) leaves nothing running: the attacker's review saw the server die of SIGPIPE
// at its next answer, and SIGKILL leave the command, each with its lease to run out.
func TestMCPClientGoneLeavesNothing(t *testing.T) {
	s := newAttackStore(t)
	for _, how := range []string{"close", "sigkill"} {
		t.Run(how, func(t *testing.T) {
			m := startRawMCP(t, s, "--exec", "sh -c *")
			marker := "sleep 97.6061"
			if how == "sigkill" {
				marker = "sleep 97.6062"
			}
			m.send(t, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secrets_exec","arguments":{"command":["sh","-c","sleep 0.5; echo first"],"secrets":[{"name":"k"}]}}}`)
			m.send(t, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"secrets_exec","arguments":{"command":["sh","-c","trap '' TERM; `+marker+`"],"secrets":[{"name":"k"}],"timeout":"10m"}}}`)
			if !waitFor(5*time.Second, func() bool { return len(procsWith(marker)) > 0 }) {
				t.Fatal("the command never started")
			}
			if how == "close" {
				m.in.Close()
				m.outEnd.Close()
			} else {
				m.cmd.Process.Kill()
			}
			done := make(chan error, 1)
			go func() { done <- m.cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Fatal("the server is still up 15 s after its client went")
			}
			if !waitFor(5*time.Second, func() bool { return len(procsWith(marker)) == 0 }) {
				t.Fatalf("left running after the client went: %v", procsWith(marker))
			}
		})
	}
}

// A descendant that keeps starting new sessions does not outlast the stop: each sweep
// stops what it finds first, so nothing forks behind it. Where the kernel gives no PID
// namespace, this is all that stands between a timeout and such a process.
func TestMCPUnconfinedForkingDescendant(t *testing.T) {
	s := newAttackStore(t)
	cs := mcpUnconfined(t, s, "--exec", "sh -c *")
	_, out := callTool(t, cs, "secrets_exec", execCall(`setsid sh -c 'trap "" TERM; i=0; while [ $i -lt 3000 ]; do setsid -f sleep 97.7071; i=$((i+1)); done' & sleep 5`, "1s"))
	if out["timed_out"] != true {
		t.Fatalf("%+v", out)
	}
	if !waitFor(5*time.Second, func() bool { return len(procsWith("sleep 97.7071")) == 0 }) {
		t.Fatalf("%d left running after the timeout", len(procsWith("sleep 97.7071")))
	}
}
