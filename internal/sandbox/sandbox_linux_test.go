package sandbox_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/internal/sandbox"
	"github.com/agent-secrets/secrets/supervisor"
	"golang.org/x/sys/unix"
)

// fake is the value the store of these tests holds; no output of a sandboxed command may
// contain it.
const fake = "FAKE-KEY-0000"

// The test binary is the helper Wrap re-executes (/proc/self/exe), and also plays parts
// of its own, chosen by a variable only these tests set.
func TestMain(m *testing.M) {
	sandbox.Main()
	switch os.Getenv("SANDBOX_TEST_PART") {
	case "terminal":
		os.Exit(terminalPart())
	case "no-userns":
		os.Exit(noUsernsPart())
	case "hardened":
		os.Exit(hardenedPart())
	case "securebits":
		bits, err := unix.PrctlRetInt(unix.PR_GET_SECUREBITS, 0, 0, 0, 0)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Printf("securebits %#x\n", bits)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// noRaceDelay spares a race-enabled test binary its second of sleep at exit. (The
// helper never sees it: Wrap renames the command's variables.)
const noRaceDelay = "GORACE=atexit_sleep_ms=0"

// needSandbox skips the test where the kernel allows no sandbox, and fails it where
// unshare(1) shows that the kernel does, so that a broken helper is not a skip.
func needSandbox(t *testing.T) {
	t.Helper()
	err := sandbox.Available()
	if err == nil {
		return
	}
	if exec.Command("unshare", "--user", "--map-current-user", "--mount", "--pid", "--fork", "--mount-proc", "true").Run() == nil {
		t.Fatal("unshare(1) creates the namespaces here, but Available says:", err)
	}
	t.Skip("the kernel allows no sandbox here:", err)
}

// fixture is a store as a tool's command must not see it: a directory holding a key and
// a script, a key file elsewhere, and a path that does not exist (skipped).
type fixture struct {
	root, store, key, file, script string
	hide                           []string
}

func newFixture(t *testing.T) *fixture {
	root := t.TempDir()
	f := &fixture{root: root, store: filepath.Join(root, "store"), file: filepath.Join(root, "identity.txt")}
	f.key = filepath.Join(f.store, "key.txt")
	f.script = filepath.Join(f.store, "run.sh")
	f.hide = []string{f.store, f.file, filepath.Join(root, "missing")}
	for _, d := range []string{f.store, filepath.Join(root, "mnt1"), filepath.Join(root, "mnt2"), filepath.Join(root, "upper"), filepath.Join(root, "work")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for path, data := range map[string]string{f.key: fake + "\n", f.file: fake + "\n", f.script: "#!/bin/sh\necho " + fake + "\n"} {
		if err := os.WriteFile(path, []byte(data), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// run runs cmd, in the sandbox hiding hide unless hide is nil, and returns its output
// (stdout and stderr) and exit status.
func run(t *testing.T, cmd *exec.Cmd, hide []string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if hide != nil {
		if err := sandbox.Wrap(cmd, hide); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(20*time.Second, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	defer timer.Stop()
	var ee *exec.ExitError
	if err := cmd.Wait(); err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

func sh(script string) *exec.Cmd { return exec.Command("sh", "-c", script) }

// TestHidesTheStore runs each way a hostile command could reach the key, first outside
// the sandbox, where it must find it (or the attack proves nothing), then inside, where
// it must fail without the value in its output.
func TestHidesTheStore(t *testing.T) {
	needSandbox(t)
	f := newFixture(t)
	// A process outside with the key in its argv and environment, the store its directory.
	victim := exec.Command("sh", "-c", "sleep 60; : "+fake)
	victim.Dir, victim.Env = f.store, []string{"VICTIM=" + fake}
	victim.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-victim.Process.Pid, syscall.SIGKILL); victim.Wait() })
	v, self := strconv.Itoa(victim.Process.Pid), strconv.Itoa(os.Getpid())
	nested := func(script string) string { return "unshare -Urm sh -c '" + script + "'" }
	attacks := []struct {
		name, dir, leak string
		argv            []string
		nested          bool
	}{
		{name: "read the key", argv: []string{"cat", f.key}},
		{name: "read the key file", argv: []string{"cat", f.file}},
		{name: "list the store", argv: []string{"ls", "-a", f.store}, leak: "run.sh"},
		{name: "run a script in the store", argv: []string{f.script}},
		{name: "start in the store", dir: f.store, argv: []string{"cat", "key.txt"}},
		{name: "read an outer process's argv", argv: []string{"cat", "/proc/" + v + "/cmdline"}},
		{name: "read an outer process's environ", argv: []string{"cat", "/proc/" + v + "/environ"}},
		{name: "read through an outer process's root", argv: []string{"cat", "/proc/" + v + "/root" + f.key}},
		{name: "read through an outer process's cwd", argv: []string{"cat", "/proc/" + v + "/cwd/key.txt"}},
		{name: "read through the test's root", argv: []string{"cat", "/proc/" + self + "/root" + f.key}},
		{name: "signal an outer process", argv: []string{"sh", "-c", "kill -0 " + v + " && echo " + fake}},
		{name: "chmod the cover", argv: []string{"sh", "-c", "chmod 700 " + f.store + "; cat " + f.key}},
		{name: "write into the cover", leak: "listed:planted",
			argv: []string{"sh", "-c", "chmod 700 " + f.store + " && touch " + f.store + "/planted && ls " + f.store + " | sed s/^/listed:/"}},
		{name: "unmount the cover", argv: []string{"sh", "-c", "umount " + f.store + "; umount -l " + f.store + "; cat " + f.key}},
		{name: "unmount in a namespace of its own", nested: true,
			argv: []string{"sh", "-c", nested("umount " + f.store + "; umount -l " + f.store + "; cat " + f.key)}},
		{name: "bind the parent without the cover", nested: true,
			argv: []string{"sh", "-c", nested("mount --bind " + f.root + " " + f.root + "/mnt1 && cat " + f.root + "/mnt1/store/key.txt")}},
		{name: "overlay the parent", nested: true,
			argv: []string{"sh", "-c", nested("mount -t overlay overlay -o lowerdir=" + f.root + ",upperdir=" + f.root + "/upper,workdir=" + f.root + "/work " + f.root + "/mnt2 && cat " + f.root + "/mnt2/store/key.txt")}},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			if a.nested {
				if _, err := exec.LookPath("unshare"); err != nil {
					t.Skip("no unshare here:", err)
				}
			}
			leak := a.leak
			if leak == "" {
				leak = fake
			}
			cmd := func() *exec.Cmd { c := exec.Command(a.argv[0], a.argv[1:]...); c.Dir = a.dir; return c }
			out, _ := run(t, cmd(), nil)
			if !strings.Contains(out, leak) {
				if a.nested {
					t.Skipf("the attack finds nothing here even outside the sandbox: %s", out)
				}
				t.Fatalf("outside the sandbox the attack found nothing, so it proves nothing: %s", out)
			}
			out, code := run(t, cmd(), f.hide)
			if strings.Contains(out, leak) || code == 0 {
				t.Fatalf("in the sandbox: exit %d, output %q", code, out)
			}
		})
	}
}

// TestNoCapabilities reads the command's own status: no capability in any set, the
// bounding set empty, no_new_privs on; and its uid is the caller's.
func TestNoCapabilities(t *testing.T) {
	needSandbox(t)
	out, code := run(t, sh("cat /proc/self/status; echo uid=$(id -u)"), []string{})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	want := []string{"CapInh:\t0000000000000000", "CapPrm:\t0000000000000000", "CapEff:\t0000000000000000",
		"CapBnd:\t0000000000000000", "CapAmb:\t0000000000000000", "NoNewPrivs:\t1", fmt.Sprintf("uid=%d", os.Geteuid())}
	lines := strings.Split(out, "\n")
	for _, w := range want {
		if !slices.Contains(lines, w) {
			t.Errorf("no line %q in:\n%s", w, out)
		}
	}
	// Securebits, locked: uid 0 gets no capability at exec, whatever the bounding set.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = []string{"SANDBOX_TEST_PART=securebits"}
	if out, _ := run(t, cmd, []string{}); out != "securebits 0xef\n" {
		t.Errorf("the command's %q; want securebits 0xef", out)
	}
	// Nor can it read the helper, whose other threads keep their capabilities.
	if out, code := run(t, sh("cat /proc/1/maps"), []string{}); code == 0 {
		t.Fatalf("the command read the helper's memory map:\n%s", out)
	}
	// Outside, the bounding set is not empty: the test can tell.
	if out, _ := run(t, sh("cat /proc/self/status"), nil); strings.Contains(out, "CapBnd:\t0000000000000000") {
		t.Fatalf("the bounding set is empty outside too:\n%s", out)
	}
}

func TestExitStatus(t *testing.T) {
	needSandbox(t)
	for _, c := range []struct {
		name string
		cmd  *exec.Cmd
		out  string
		code int
	}{
		{"exit 3", sh("echo ok; exit 3"), "ok\n", 3},
		{"killed by a signal", sh("kill -USR1 $$"), "", 128 + int(syscall.SIGUSR1)},
		{"not found", &exec.Cmd{Path: "/nonexistent/cmd", Args: []string{"cmd"}}, "secrets: exec cmd: no such file or directory\n", 127},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, code := run(t, c.cmd, []string{})
			if out != c.out || code != c.code {
				t.Fatalf("got exit %d, output %q; want %d, %q", code, out, c.code, c.out)
			}
		})
	}
}

// TestEnvAndDir: the command gets the environment, the directory and the extra files
// the caller set, and the values are not in the helper's argv, which other users can
// read.
func TestEnvAndDir(t *testing.T) {
	needSandbox(t)
	dir := t.TempDir()
	env := []string{"A=1", "GODEBUG=panicnil=1", "LD_PRELOAD=", "VALUE=" + fake + " with spaces"}
	cmd := exec.Command("env")
	cmd.Env, cmd.Dir = env, dir
	out, code := run(t, cmd, []string{})
	if got := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || !slices.Equal(got, env) {
		t.Fatalf("exit %d, environment %q; want %q", code, got, env)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command("sh", "-c", "echo extra >&3")
	cmd.ExtraFiles = []*os.File{w}
	out, code = run(t, cmd, []string{})
	w.Close()
	if b, _ := io.ReadAll(r); string(b) != "extra\n" || code != 0 {
		t.Fatalf("exit %d, %q; fd 3 got %q", code, out, b)
	}
	cmd = exec.Command("sh", "-c", `echo "$PWD"; pwd -P`)
	cmd.Dir = dir
	real, _ := filepath.EvalSymlinks(dir)
	if out, code := run(t, cmd, []string{}); out != dir+"\n"+real+"\n" || code != 0 {
		t.Fatalf("exit %d, output %q; want %q", code, out, dir+"\n"+real+"\n")
	}

	cmd = exec.Command("sh", "-c", "echo ready; exec sleep 30")
	cmd.Env = []string{"VALUE=" + fake}
	stdout := start(t, cmd)
	proc := "/proc/" + strconv.Itoa(cmd.Process.Pid)
	b, err := os.ReadFile(proc + "/cmdline")
	if err != nil || !bytes.Contains(b, []byte(sandbox.Entry)) || bytes.Contains(b, []byte(fake)) {
		t.Fatalf("the helper's argv %q, %v", b, err)
	}
	// Nor may the helper's dynamic loader or Go runtime see the command's variables.
	// (Its /proc files are root's: it is not dumpable. Only root can look.)
	b, err = os.ReadFile(proc + "/environ")
	if errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0 {
		b, err = []byte("SECRETS_SANDBOX_ENV_"), nil
	}
	for _, kv := range strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") {
		if err != nil || !strings.HasPrefix(kv, "SECRETS_SANDBOX_ENV_") {
			t.Fatalf("the helper's environment holds %q, %v", kv, err)
		}
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
	stdout.Close()
}

// start starts cmd in the sandbox in a process group of its own, and returns once it
// has printed a line (ready), with its stdout.
func start(t *testing.T, cmd *exec.Cmd) io.ReadCloser {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := sandbox.Wrap(cmd, []string{}); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		t.Fatalf("the command printed %q, %v", line, err)
	}
	return stdout
}

// TestSignalsReachTheCommand sends each signal to the helper's group, as the supervisor
// does: the command ends at once, with its status as the helper's.
func TestSignalsReachTheCommand(t *testing.T) {
	needSandbox(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR2} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command("sh", "-c", "echo ready; exec sleep 30")
			start(t, cmd)
			began := time.Now()
			syscall.Kill(-cmd.Process.Pid, sig)
			cmd.Wait()
			if code := cmd.ProcessState.ExitCode(); code != 128+int(sig) || time.Since(began) > 5*time.Second {
				t.Fatalf("exit %d after %s; want %d at once", code, time.Since(began), 128+int(sig))
			}
		})
	}
}

// TestKillEndsEverything: SIGKILL to the helper's group ends every process of the
// namespace, one that left the group (setsid) too.
func TestKillEndsEverything(t *testing.T) {
	needSandbox(t)
	cmd := exec.Command("sh", "-c", "setsid sleep 300 & sleep 300 & echo ready; wait")
	start(t, cmd)
	ns, err := os.Readlink("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	inNamespace := func() []string {
		var pids []string
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			if l, err := os.Readlink("/proc/" + e.Name() + "/ns/pid"); err == nil && l == ns {
				pids = append(pids, e.Name())
			}
		}
		return pids
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(inNamespace()) < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // setsid may not have exec'd sleep yet
	}
	if n := len(inNamespace()); n < 4 {
		t.Fatalf("%d processes in the namespace; want the helper, sh and two sleeps", n)
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
	deadline = time.Now().Add(5 * time.Second)
	for len(inNamespace()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if left := inNamespace(); len(left) > 0 {
		t.Fatalf("processes %v outlived the helper", left)
	}
}

// TestTerminal: a caller that gives the command its terminal (Foreground) gets a command
// that reads it and gets ^C from it, as without the sandbox; one that does not gets a
// command without a controlling terminal.
func TestTerminal(t *testing.T) {
	needSandbox(t)
	ptmx, tty := openPTY(t)
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), noRaceDelay, "SANDBOX_TEST_PART=terminal")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	seen := readUntil(t, ptmx, "ready")
	if !strings.Contains(seen, "ctty:no") {
		t.Fatalf("a command not given the terminal could open it: %q", seen)
	}
	ptmx.Write([]byte("hello\n"))
	seen += readUntil(t, ptmx, "got:hello")
	// ^C until it ends: one that comes before sh has started sleep, sh only notes.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			ptmx.Write([]byte{3})
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	seen += readUntil(t, ptmx, "exit:130")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v; the terminal showed %q", err, seen)
	}
}

// terminalPart runs in a session whose terminal is stdin, as `secrets exec` in a
// shell: it runs a sandboxed command in the foreground, as the supervisor does, and
// prints its status.
func terminalPart() int {
	// Not given the terminal, the command has none: it cannot push input into it.
	cmd := exec.Command("sh", "-c", "if (: </dev/tty) 2>/dev/null; then echo ctty:yes; else echo ctty:no; fi")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := sandbox.Wrap(cmd, []string{}); err != nil {
		fmt.Println(err)
		return 1
	}
	cmd.Run()
	// Given it, the command's group is the terminal's foreground: field 5 of its stat is
	// its group, field 8 the terminal's.
	cmd = exec.Command("sh", "-c", `set -- $(cat /proc/$$/stat); [ "$5" = "$8" ] && echo ready; read line; echo "got:$line"; sleep 30`)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Foreground: true, Ctty: 0}
	if err := sandbox.Wrap(cmd, []string{}); err != nil {
		fmt.Println(err)
		return 1
	}
	cmd.Run()
	fmt.Printf("exit:%d\n", cmd.ProcessState.ExitCode())
	return 0
}

func openPTY(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skip("no pseudo-terminals here:", err)
	}
	// Through SyscallConn, not Fd, which would make ptmx blocking and its read deadlines
	// void.
	rc, err := ptmx.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	rc.Control(func(fd uintptr) {
		if err = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); err == nil {
			n, err = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		}
	})
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

// readUntil reads f until want shows, for at most ten seconds.
func readUntil(t *testing.T, f *os.File, want string) string {
	t.Helper()
	var seen []byte
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 256)
	for !bytes.Contains(seen, []byte(want)) {
		f.SetReadDeadline(deadline)
		n, err := f.Read(buf)
		seen = append(seen, buf[:n]...)
		if err != nil {
			t.Fatalf("waiting for %q: %v; the terminal showed %q", want, err, seen)
		}
	}
	return string(seen)
}

// TestSupervisorHides runs commands through supervisor.Run with Hide: the store is
// hidden and HideErr is nil; a command that ignores SIGTERM is killed after the grace
// period, everything in the namespace with it.
func TestSupervisorHides(t *testing.T) {
	needSandbox(t)
	f := newFixture(t)
	l, err := supervisor.Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var out bytes.Buffer
	c := supervisor.Command{
		Argv: []string{"cat", f.key}, Env: []string{"PATH=" + os.Getenv("PATH")}, Hide: f.hide,
		Stdout: &out, Stderr: &out, NoRedact: true, Grace: 200 * time.Millisecond,
		Expiry: time.Now().Add(time.Hour), Ended: func() (string, time.Time) { return "", time.Time{} }, Warn: func(string) {},
	}
	res := l.Run(context.Background(), c)
	if res.HideErr != nil || res.ExitCode == 0 || strings.Contains(out.String(), fake) {
		t.Fatalf("cat the key: %+v, output %q", res, out.String())
	}

	c.Argv = []string{"sh", "-c", `trap "" TERM; while :; do sleep 1; done`}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	res = l.Run(ctx, c)
	if res.ExitCode != 128+int(syscall.SIGKILL) || !strings.Contains(res.Stopped, "SIGKILL") || time.Since(began) > 5*time.Second {
		t.Fatalf("a command ignoring SIGTERM: %+v after %s", res, time.Since(began))
	}
}

// TestWrapRefuses: what Wrap cannot honour is an error, and cmd is left as it was.
func TestWrapRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		hide []string
		sys  *syscall.SysProcAttr
	}{
		{"a relative path", []string{"store"}, nil},
		{"namespaces of its own", nil, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}},
		{"credentials", nil, &syscall.SysProcAttr{Credential: &syscall.Credential{}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command("true")
			cmd.SysProcAttr = c.sys
			path := cmd.Path
			if err := sandbox.Wrap(cmd, c.hide); err == nil || cmd.Path != path || cmd.SysProcAttr != c.sys {
				t.Fatalf("Wrap: %v; path %s", err, cmd.Path)
			}
		})
	}
}

// TestUnavailableSaysWhy runs the test binary in a user namespace that may create none,
// where Available must fail and name the sysctl.
func TestUnavailableSaysWhy(t *testing.T) {
	needSandbox(t)
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), noRaceDelay, "SANDBOX_TEST_PART=no-userns")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	const want = "user namespaces are disabled: /proc/sys/user/max_user_namespaces is 0 ("
	if err != nil || !strings.HasPrefix(string(out), want) {
		t.Fatalf("%v: %q; want it to start %q", err, out, want)
	}
}

// noUsernsPart forbids user namespaces below its own and prints what Available says.
func noUsernsPart() int {
	if err := os.WriteFile("/proc/sys/user/max_user_namespaces", []byte("0"), 0); err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println(sandbox.Available())
	return 0
}

// TestHardenedCaller: main makes secrets non-dumpable (harden), and a non-dumpable
// process that is not root may not write a child's uid_map. The sandbox works for it
// all the same (run as nobody by TestUnprivileged, where it counts).
func TestHardenedCaller(t *testing.T) {
	needSandbox(t)
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), noRaceDelay, "SANDBOX_TEST_PART=hardened")
	if out, err := cmd.CombinedOutput(); err != nil || string(out) != "ok\n" {
		t.Fatalf("%v: %q", err, out)
	}
}

func hardenedPart() int {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		fmt.Println(err)
		return 1
	}
	if err := sandbox.Available(); err != nil {
		fmt.Println(err)
		return 1
	}
	cmd := exec.Command("sh", "-c", "echo ok")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	if err := sandbox.Wrap(cmd, []string{}); err != nil {
		fmt.Println(err)
		return 1
	}
	if err := cmd.Run(); err != nil {
		fmt.Println(err)
		return 1
	}
	return 0
}

// TestUnprivileged runs this test binary again as nobody when the tests run as root: the
// sandbox must work for a user with no privilege, where it needs the kernel's leave.
func TestUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("already unprivileged: the other tests ran as uid", os.Geteuid())
	}
	needSandbox(t)
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody to run as (useradd one to test the unprivileged path):", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// A copy nobody can run, in a directory nobody can enter.
	dir := t.TempDir()
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "sandbox.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	cmd := exec.Command(bin, "-test.v", "-test.count=1", "-test.skip=TestUnprivileged")
	cmd.Dir, cmd.Env = dir, []string{"PATH=" + os.Getenv("PATH"), "HOME=/", "TMPDIR=" + os.TempDir(), noRaceDelay}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	if i := bytes.Index(out, []byte("the kernel allows no sandbox here")); i >= 0 {
		line, _, _ := strings.Cut(string(out[i:]), "\n")
		t.Skip("as nobody:", line)
	}
	if !bytes.Contains(out, []byte("--- PASS: TestHidesTheStore")) {
		t.Fatalf("as nobody, TestHidesTheStore did not pass:\n%s", out)
	}
	t.Logf("as nobody:\n%s", out)
}
