package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// ambient are the capabilities the helper keeps through its own exec, in the user
// namespace it was cloned into and nowhere else: to map its ids, mount, and give up the
// rest. It runs as the caller's uid there, whose exec would otherwise drop them all.
var ambient = []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_SETUID, unix.CAP_SETGID, unix.CAP_SETPCAP}

// envPrefix goes before each of the command's variables in the helper's environment, so
// that neither the dynamic loader (LD_PRELOAD, in a cgo build) nor the Go runtime
// (GODEBUG) of the helper, which holds capabilities in the namespaces, acts on them. They
// do not go in its argv: any local user can read that.
const envPrefix = "SECRETS_SANDBOX_ENV_"

// Available reports whether this process can run commands in the sandbox: nil, or why
// not (namespaces disabled by a sysctl, refused by a seccomp filter or an LSM, a /proc
// that cannot be mounted again). It runs the helper once, doing all it does for a command
// but the command, and keeps the answer. Safe for concurrent use.
func Available() error {
	availMu.Lock()
	defer availMu.Unlock()
	if availDone {
		return availErr
	}
	err := probe()
	if err == nil || errors.Is(err, ErrUnsupported) {
		// A lasting answer is kept; a passing failure is asked again next time.
		availDone, availErr = true, err
	}
	return err
}

var (
	availMu   sync.Mutex
	availDone bool
	availErr  error
)

func probe() error {
	var stderr strings.Builder
	// A file and a directory that exist everywhere; covering them in the probe's own
	// mount namespace touches nothing outside it.
	cmd := &exec.Cmd{Path: "/dev/null", Env: []string{}, Dir: "/", Stderr: &stderr}
	if err := wrap(cmd, []string{"/dev/null", "/dev"}, "probe"); err != nil {
		return err
	}
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if msg, ok := strings.CutPrefix(strings.TrimSpace(stderr.String()), "secrets: sandbox: "); ok {
		err = errors.New(msg)
	} else if _, exited := err.(*exec.ExitError); exited {
		// Not our helper's words: the program itself ran, with Entry as its argument.
		err = fmt.Errorf("the helper failed (%v, %q): does main call sandbox.Main first?", err, firstLine(stderr.String()))
	}
	for _, s := range sysctls {
		if b, rerr := os.ReadFile(s.path); rerr == nil && strings.TrimSpace(string(b)) == s.off {
			return unsupported{fmt.Sprintf("%s: %s is %s (%v)", s.why, s.path, s.off, err)}
		}
	}
	return fmt.Errorf("cannot create user, mount and PID namespaces: %w", err)
}

// sysctls are the switches that forbid the namespaces, to name the one that did.
var sysctls = []struct{ path, off, why string }{
	{"/proc/sys/user/max_user_namespaces", "0", "user namespaces are disabled"},
	{"/proc/sys/user/max_mnt_namespaces", "0", "mount namespaces are disabled"},
	{"/proc/sys/user/max_pid_namespaces", "0", "PID namespaces are disabled"},
	{"/proc/sys/kernel/unprivileged_userns_clone", "0", "unprivileged user namespaces are disabled"},
	{"/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1", "AppArmor denies capabilities in unprivileged user namespaces"},
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// Wrap rewrites cmd, not yet started, to run through the helper (this binary, Entry) in
// new user, mount and PID namespaces, where each path of hide is covered: a directory by
// an empty read-only tmpfs of mode 0, anything else by a read-only bind of /dev/null. The
// paths must be absolute; one that does not exist is skipped. The helper fails the
// command (status 127, a line on its stderr) rather than run it with a path it could not
// cover. Path, Args, Env, Dir, the files and SysProcAttr's Setpgid, Setsid, Foreground
// and Ctty keep their meaning; SysProcAttr must not set namespaces, credentials or
// tracing of its own. The command runs in a process group of its own, given the terminal
// when the caller gave it to the helper (Foreground), and otherwise in a session of its
// own with no controlling terminal. The status is the command's, 128+N when signal N
// killed it; when the command ends, or the helper is killed, every process left in the
// namespaces is killed. Call Available first: on a kernel that forbids the namespaces,
// the command fails to start.
func Wrap(cmd *exec.Cmd, hide []string) error { return wrap(cmd, hide, "") }

func wrap(cmd *exec.Cmd, hide []string, mode string) error {
	if cmd.Process != nil {
		return errors.New("the command has already started")
	}
	var sys syscall.SysProcAttr
	if cmd.SysProcAttr != nil {
		sys = *cmd.SysProcAttr
	}
	if sys.Cloneflags != 0 || sys.Unshareflags != 0 || sys.UidMappings != nil || sys.GidMappings != nil ||
		sys.Chroot != "" || sys.Credential != nil || sys.AmbientCaps != nil || sys.Ptrace {
		return errors.New("the command sets namespaces, credentials or tracing of its own")
	}
	args := []string{os.Args[0], Entry, "uid=" + strconv.Itoa(os.Geteuid()), "gid=" + strconv.Itoa(os.Getegid())}
	if mode != "" {
		args = append(args, mode)
	}
	for _, p := range hide {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("hide %s: not an absolute path", p)
		}
		args = append(args, "hide="+p)
	}
	if cmd.Dir != "" {
		args = append(args, "dir="+cmd.Dir)
	}
	// The helper's process group is the one the caller made; the command gets its own,
	// given the terminal when the caller's was.
	if sys.Foreground || sys.Setctty {
		args = append(args, "fg")
	}
	if len(cmd.ExtraFiles) > 0 {
		args = append(args, "files="+strconv.Itoa(3+len(cmd.ExtraFiles)))
	}
	argv := cmd.Args
	if len(argv) == 0 {
		argv = []string{cmd.Path}
	}
	args = append(append(args, "--", cmd.Path), argv...)
	// Environ before Dir is cleared: with a nil Env it adds PWD for Dir. Never nil, which
	// would give the helper this process's variables unrenamed.
	env := []string{}
	for _, kv := range cmd.Environ() {
		env = append(env, envPrefix+kv)
	}
	sys.Cloneflags = unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID
	sys.AmbientCaps = ambient
	// /proc/self/exe rather than os.Executable: the running binary even once an upgrade
	// has replaced its file.
	cmd.Path, cmd.Args, cmd.Env, cmd.Dir, cmd.SysProcAttr = "/proc/self/exe", args, env, "", &sys
	return nil
}

// Main runs the namespace side and exits when this process is the helper Wrap starts
// (os.Args[1] is Entry); otherwise it returns at once. It must be the first statement of
// main, so that nothing of the program runs in the helper.
func Main() {
	if len(os.Args) < 2 || os.Args[1] != Entry {
		return
	}
	os.Exit(inside(os.Args[2:]))
}
