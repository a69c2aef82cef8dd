//go:build linux

package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns the controller and the terminal side of a new pseudo-terminal.
func openPTY(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skip("no pseudo-terminals here:", err)
	}
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ptmx.Close(); tty.Close() })
	return ptmx, tty
}

// TestAddPromptsWithoutEcho types a value at add's prompt on a real terminal: the prompt
// shows, the value is not echoed, and the stored value is exactly what was typed.
func TestAddPromptsWithoutEcho(t *testing.T) {
	bin := secretsBinary(t)
	dir := filepath.Join(t.TempDir(), "store")
	env := []string{"SECRETS_DIR=" + dir, "HOME=" + t.TempDir(), "GORACE=atexit_sleep_ms=0"}
	if out, err := (&exec.Cmd{Path: bin, Args: []string{"secrets", "init"}, Env: env}).CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	ptmx, tty := openPTY(t)
	const value = "FAKE-typed-value-93c1"
	var stdout bytes.Buffer
	cmd := exec.Command(bin, "add", "typed_key")
	cmd.Env, cmd.Stdin, cmd.Stderr, cmd.Stdout = env, tty, tty, &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	seen := readUntil(t, ptmx, "(input hidden): ")
	ptmx.Write([]byte(value + "\n"))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("add: %v\n%s", err, stdout.String())
	}
	tty.Close()
	seen += readAvailable(ptmx)
	if strings.Contains(seen, value) {
		t.Fatalf("the value was echoed to the terminal: %q", seen)
	}
	if !strings.Contains(stdout.String(), `"name": "typed_key"`) {
		t.Fatalf("stdout: %s", stdout.String())
	}
	out, err := (&exec.Cmd{Path: bin, Args: []string{"secrets", "lease", "typed_key"}, Env: env}).Output()
	if err != nil || string(out) != value {
		t.Fatalf("lease gave %q, %v", out, err)
	}
}

func readUntil(t *testing.T, f *os.File, want string) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 256)
	deadline := time.Now().Add(10 * time.Second)
	for !bytes.Contains(got, []byte(want)) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q on the terminal; saw %q", want, got)
		}
		f.SetReadDeadline(deadline)
		n, err := f.Read(buf)
		if err != nil {
			t.Fatalf("read terminal: %v (saw %q)", err, got)
		}
		got = append(got, buf[:n]...)
	}
	return string(got)
}

func readAvailable(f *os.File) string {
	f.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	var got []byte
	buf := make([]byte, 256)
	for {
		n, err := f.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return string(got)
		}
	}
}

// TestHarden: no core dumps, and not dumpable (so /proc/PID/mem and environ stay private).
func TestHarden(t *testing.T) {
	harden()
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &lim); err != nil || lim.Cur != 0 || lim.Max != 0 {
		t.Errorf("RLIMIT_CORE = %+v, %v", lim, err)
	}
	if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || d != 0 {
		t.Errorf("dumpable = %d, %v", d, err)
	}
}

// TestExecOnTerminal runs secrets exec as a shell would, on a terminal it controls: the
// command becomes the foreground, reads the terminal, and ^C reaches it.
func TestExecOnTerminal(t *testing.T) {
	bin := secretsBinary(t)
	env := execEnv(t, bin)
	for _, tc := range []struct {
		name, script, typed string
		code                int
		want                string
	}{
		{"reads the terminal", `read x; echo "got=$x"`, "hello\n", 0, "got=hello"},
		{"^C reaches the command", `trap "echo interrupted; exit 5" INT; echo ready; while :; do sleep 0.05; done`, "\x03", 5, "interrupted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ptmx, tty := openPTY(t)
			cmd := exec.Command(bin, "exec", "--no-redact", "--secret", "k", "--", "sh", "-c", tc.script)
			cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, tty, tty, tty
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(tc.script, "ready") {
				readUntil(t, ptmx, "ready")
			} else {
				time.Sleep(300 * time.Millisecond)
			}
			ptmx.Write([]byte(tc.typed))
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Fatal("secrets exec did not finish")
			}
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			}
			tty.Close()
			seen := readAvailable(ptmx)
			if code != tc.code || !strings.Contains(seen, tc.want) {
				t.Fatalf("exit %d (want %d), terminal showed %q (want %q)", code, tc.code, seen, tc.want)
			}
		})
	}
}

// TestUnlockOnTerminal: a person types the fingerprint at the controlling terminal. A
// wrong one keeps the lockdown; the right one lifts it and leases work again. No lock is
// held while the prompt waits (an unanswered prompt used to hold the store lock for
// good), and the state is read again after the answer: a lockdown another unlock lifted
// meanwhile is reported, not lifted twice.
func TestUnlockOnTerminal(t *testing.T) {
	bin := secretsBinary(t)
	env := execEnv(t, bin)
	secretsOut(t, bin, env, "killswitch")
	status := secretsOut(t, bin, env, "status")
	i := strings.Index(status, `"fingerprint": "`)
	if i < 0 {
		t.Fatalf("no fingerprint in status: %s", status)
	}
	code := status[i+len(`"fingerprint": "`) : i+len(`"fingerprint": "`)+9]
	type prompt struct {
		ptmx *os.File
		out  *bytes.Buffer
		done chan int
	}
	ask := func() prompt {
		ptmx, tty := openPTY(t)
		var out bytes.Buffer
		cmd := exec.Command(bin, "unlock")
		cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, strings.NewReader(code+"\n"), &out, io.Discard
		cmd.ExtraFiles = []*os.File{tty}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 3}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		tty.Close()
		readUntil(t, ptmx, "to lift it: ")
		done := make(chan int, 1)
		go func() {
			err := cmd.Wait()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				done <- ee.ExitCode()
				return
			}
			done <- 0
		}()
		return prompt{ptmx, &out, done}
	}
	answer := func(p prompt, typed string) int {
		p.ptmx.Write([]byte(typed + "\n"))
		select {
		case c := <-p.done:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("unlock did not finish")
			return -1
		}
	}

	wrong := ask()
	if got := answer(wrong, "0000-0000"); got != exitLockdown {
		t.Fatalf("a wrong fingerprint: exit %d, want %d", got, exitLockdown)
	}

	first := ask()
	// While the person has not answered, other commands get the store at once.
	cmd := exec.Command(bin, "--lock-timeout", "1s", "lease", "k")
	cmd.Env = env
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitLockdown {
		t.Fatalf("lease while unlock waits for its answer: %v, want exit %d (lockdown), not a held lock", err, exitLockdown)
	}
	second := ask()
	if got := answer(second, code); got != 0 || !strings.Contains(second.out.String(), `"unlocked": true`) {
		t.Fatalf("the second prompt: exit %d\n%s", got, second.out)
	}
	// The lockdown the first prompt showed is gone and a new one fired meanwhile: the
	// answer lifts neither.
	time.Sleep(1100 * time.Millisecond) // the new lockdown's time differs from the old one's
	secretsOut(t, bin, env, "killswitch", "--reason", "again")
	if got := answer(first, code); got != 0 || !strings.Contains(first.out.String(), `"unlocked": false`) || !strings.Contains(first.out.String(), `"reason": "again"`) {
		t.Fatalf("the first prompt, answered after its lockdown was lifted and another fired: exit %d\n%s", got, first.out)
	}
	if got := answer(ask(), code); got != 0 {
		t.Fatalf("unlocking the new lockdown: exit %d", got)
	}
	if out := secretsOut(t, bin, env, "lease", "k"); out != "FAKE-exec-test-0123456789" {
		t.Fatalf("lease after unlock: %q", out)
	}
	if n := strings.Count(secretsOut(t, bin, env, "audit", "--event", "unlock"), `lockdown by manual lifted`); n != 2 {
		t.Fatalf("%d successful unlock entries, want 2 (one per lockdown)", n)
	}
}

// Issue 12, item 11: a multi-line paste at the add prompt stores nothing and leaves no
// line behind for the shell to run.
func TestAddRefusesMultiLinePaste(t *testing.T) {
	bin := secretsBinary(t)
	dir := filepath.Join(t.TempDir(), "store")
	env := []string{"SECRETS_DIR=" + dir, "HOME=" + t.TempDir(), "GORACE=atexit_sleep_ms=0"}
	if out, err := (&exec.Cmd{Path: bin, Args: []string{"secrets", "init"}, Env: env}).CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	ptmx, tty := openPTY(t)
	var stdout bytes.Buffer
	cmd := exec.Command(bin, "add", "pasted_key")
	cmd.Env, cmd.Stdin, cmd.Stderr, cmd.Stdout = env, tty, tty, &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readUntil(t, ptmx, "(input hidden): ")
	ptmx.Write([]byte("FAKE-line-one\ntouch pwned-by-paste\necho FAKE-line-three\n"))
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitUsage {
		t.Fatalf("add of a multi-line paste: %v\n%s", err, stdout.String())
	}
	// What a shell reading the terminal next would get: nothing of the paste.
	ptmx.Write([]byte("after\n"))
	b := make([]byte, 256)
	tty.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _ := tty.Read(b)
	if got := string(b[:n]); got != "after\n" {
		t.Fatalf("the rest of the paste was left for the shell: %q", got)
	}
	tty.Close()
	if out, err := (&exec.Cmd{Path: bin, Args: []string{"secrets", "list"}, Env: env}).Output(); err != nil || !strings.Contains(string(out), `"count": 0`) {
		t.Fatalf("something was stored: %s %v", out, err)
	}
}

// Issue 12, item 3: ^Z stops the command and our job with it, so a shell gets its prompt
// back; continuing the job continues the command, holding the terminal again, and ^C
// then reaches it.
func TestExecJobControl(t *testing.T) {
	bin := secretsBinary(t)
	env := execEnv(t, bin)
	ptmx, tty := openPTY(t)
	cmd := exec.Command(bin, "exec", "--no-redact", "--secret", "k", "--", "sh", "-c", "echo ready; while :; do sleep 0.05; done")
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	readUntil(t, ptmx, "ready")
	ptmx.Write([]byte("\x1a")) // ^Z
	stopped := make(chan syscall.WaitStatus, 1)
	go func() {
		var ws syscall.WaitStatus
		syscall.Wait4(cmd.Process.Pid, &ws, syscall.WUNTRACED, nil)
		stopped <- ws
	}()
	select {
	case ws := <-stopped:
		if !ws.Stopped() {
			t.Fatalf("secrets exec did not stop with its command: %v", ws)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("^Z left secrets exec running: a shell would never get its prompt back")
	}
	// What a shell's fg does: continue the job (our group holds the terminal again).
	syscall.Kill(-cmd.Process.Pid, syscall.SIGCONT)
	time.Sleep(300 * time.Millisecond)
	ptmx.Write([]byte("\x03")) // ^C must reach the command now
	done := make(chan int, 1)
	go func() {
		var ws syscall.WaitStatus
		syscall.Wait4(cmd.Process.Pid, &ws, 0, nil)
		done <- ws.ExitStatus()
	}()
	select {
	case code := <-done:
		if code != 130 {
			t.Fatalf("after fg, ^C: exit %d, want 130", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("after fg, ^C did not reach the command")
	}
}
