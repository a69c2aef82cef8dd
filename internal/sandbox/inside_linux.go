package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// exitNotRun is the status of a command the helper could not run, as a shell reports
// one it cannot find.
const exitNotRun = 127

// forwarded are the signals the helper passes on to the command's process group, as the
// supervisor passes them on to the helper's.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// Securebits (linux/securebits.h; x/sys/unix has none of them).
const (
	secNoRoot            = 1 << 0 // uid 0 gets no capabilities at exec
	secNoRootLocked      = 1 << 1
	secNoSetuidFixup     = 1 << 2 // changing uid neither adds nor drops capabilities
	secNoSetuidLocked    = 1 << 3
	secKeepCapsLocked    = 1 << 5 // keep-caps stays off
	secNoAmbientRaise    = 1 << 6
	secNoAmbientLocked   = 1 << 7
	securebitsForCommand = secNoRoot | secNoRootLocked | secNoSetuidFixup | secNoSetuidLocked |
		secKeepCapsLocked | secNoAmbientRaise | secNoAmbientLocked
)

// plan is what Wrap asks of the helper, read from its arguments:
//
//	uid=N gid=N [probe] [hide=PATH]... [dir=DIR] [fg] [files=N] -- [PATH ARGV...]
//
// probe sets everything up and exits 0 without running a command.
type plan struct {
	uid, gid int
	probe    bool
	hide     []string
	dir      string
	fg       bool
	files    int
	path     string
	argv     []string
}

func parse(args []string) (*plan, error) {
	p := &plan{uid: -1, gid: -1, files: 3}
	for i, a := range args {
		if a == "--" {
			if rest := args[i+1:]; len(rest) >= 2 {
				p.path, p.argv = rest[0], rest[1:]
			} else if !p.probe {
				return nil, errors.New("no command to run")
			}
			if p.uid < 0 || p.gid < 0 {
				return nil, errors.New("no uid or gid to map")
			}
			return p, nil
		}
		k, v, _ := strings.Cut(a, "=")
		var err error
		switch k {
		case "uid":
			p.uid, err = strconv.Atoi(v)
		case "gid":
			p.gid, err = strconv.Atoi(v)
		case "probe":
			p.probe = true
		case "hide":
			p.hide = append(p.hide, v)
		case "dir":
			p.dir = v
		case "fg":
			p.fg = true
		case "files":
			p.files, err = strconv.Atoi(v)
		default:
			err = errors.New("unknown")
		}
		if err != nil {
			return nil, fmt.Errorf("argument %q: %w", a, err)
		}
	}
	return nil, errors.New("no -- before the command")
}

// inside is the helper: PID 1 of the new namespaces, holding the capabilities Wrap gave
// it there. It covers the paths, gives up every capability for good, runs the command as
// its child (not in its place: PID 1 ignores the signals it has no handler for), passes
// signals on, reaps whatever ends in the namespace, and returns the command's status.
// When it exits the kernel kills every process left in the namespace.
func inside(args []string) int {
	// Capabilities, securebits and no_new_privs belong to a thread; those of the thread
	// that forks the command are what it gets. Everything below runs on this one.
	runtime.LockOSThread()
	// Signals that come while the namespace is set up are passed on once the command
	// runs. (One that comes before the Go runtime has its handlers is lost: PID 1 ignores
	// it. The supervisor's SIGKILL after the grace period still ends everything.)
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwarded...)
	p, err := parse(args)
	if err == nil {
		err = p.enter()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "secrets: sandbox: %v\n", err)
		return exitNotRun
	}
	if p.probe {
		return 0
	}
	pid, err := p.start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "secrets: exec %s: %v\n", p.argv[0], err)
		return exitNotRun
	}
	go func() {
		for sig := range sigs {
			syscall.Kill(-pid, sig.(syscall.Signal))
		}
	}()
	return reap(pid)
}

// enter maps the caller's ids to themselves, mounts a /proc of the new PID namespace,
// covers the paths, moves to the command's directory and drops every capability.
func (p *plan) enter() error {
	// The helper writes its own maps: with Go's UidMappings the caller would, and a caller
	// that made itself non-dumpable (main's harden) cannot open a child's uid_map.
	// setgroups must be denied before an unprivileged gid_map.
	for _, m := range [][2]string{
		{"/proc/self/setgroups", "deny"},
		{"/proc/self/uid_map", fmt.Sprintf("%d %d 1", p.uid, p.uid)},
		{"/proc/self/gid_map", fmt.Sprintf("%d %d 1", p.gid, p.gid)},
	} {
		if err := os.WriteFile(m[0], []byte(m[1]), 0); err != nil {
			return fmt.Errorf("map ids: %w", err)
		}
	}
	// The command will be a process of this namespace, and the helper's other threads
	// keep their capabilities in it: it must not trace the helper nor read its memory.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("set not dumpable: %w", err)
	}
	dir := p.dir
	if !filepath.IsAbs(dir) {
		wd, err := unix.Getwd()
		if err != nil {
			return fmt.Errorf("find the working directory: %w", err)
		}
		dir = filepath.Join(wd, dir)
	}
	// Private first, so that no mount below propagates to or from the outside.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	// Over the old /proc, which lists every process outside and its argv (their root, cwd
	// and environ the new user namespace already refuses). The command cannot remove it:
	// it has no capability here, and in a namespace of its own the kernel locks the
	// mounts it inherited together.
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	if err := cover(p.hide); err != nil {
		return err
	}
	// Again by name, now that the mounts are there: a working directory under a covered
	// one would still reach what lies beneath.
	if err := unix.Chdir(dir); err != nil {
		return fmt.Errorf("chdir %s: %w", dir, err)
	}
	return dropCapabilities()
}

// cover mounts over each path that exists. Paths are resolved and sorted first: files
// (bound to /dev/null, which a covered /dev would hide), then directories deepest first,
// so that no mount hides a path that is still to be covered.
func cover(paths []string) error {
	var files, dirs []string
	for _, p := range paths {
		real, err := filepath.EvalSymlinks(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("hide %s: %w", p, err)
		}
		fi, err := os.Stat(real)
		if err != nil {
			return fmt.Errorf("hide %s: %w", p, err)
		}
		if fi.IsDir() {
			dirs = append(dirs, real)
		} else {
			files = append(files, real)
		}
	}
	slices.SortFunc(dirs, func(a, b string) int { return len(b) - len(a) })
	for _, f := range files {
		// A bind keeps the flags of the mount it came from, and in a user namespace those
		// are locked: the remount only adds some. nodev makes opening it fail (EACCES), as
		// for a covered directory, rather than read as empty.
		if err := unix.Mount("/dev/null", f, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("hide %s: %w", f, err)
		}
		flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
		if err := unix.Mount("", f, "", flags, ""); err != nil {
			return fmt.Errorf("hide %s: %w", f, err)
		}
	}
	for _, d := range dirs {
		// Read-only, so that the command, which owns the root, cannot chmod it.
		flags := uintptr(unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
		if err := unix.Mount("tmpfs", d, "tmpfs", flags, "mode=0"); err != nil {
			return fmt.Errorf("hide %s: %w", d, err)
		}
	}
	return nil
}

// dropCapabilities leaves this thread, and what it starts, no capability and no way back
// to one, even as uid 0: securebits so that uid 0 gets none at exec and a uid change
// adds none, locked; an empty bounding set, so no file capability adds one; no ambient,
// permitted, effective or inheritable ones; and no_new_privs, so that neither setuid
// bits nor file capabilities do anything at exec.
func dropCapabilities() error {
	if err := unix.Prctl(unix.PR_SET_SECUREBITS, securebitsForCommand, 0, 0, 0); err != nil {
		return fmt.Errorf("set securebits: %w", err)
	}
	for c := uintptr(0); ; c++ {
		err := unix.Prctl(unix.PR_CAPBSET_DROP, c, 0, 0, 0)
		if err == unix.EINVAL {
			break // past the last capability this kernel knows
		}
		if err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	var none [2]unix.CapUserData
	if err := unix.Capset(&unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}, &none[0]); err != nil {
		return fmt.Errorf("clear capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	return nil
}

// start runs the command, from this thread, in a process group of its own that signals
// can be passed on to. Given the terminal, it takes the foreground; otherwise it runs in
// a session of its own, without a controlling terminal, so that it cannot push input
// into one (TIOCSTI) or open /dev/tty.
func (p *plan) start() (int, error) {
	var env []string
	for _, kv := range syscall.Environ() {
		if kv, ok := strings.CutPrefix(kv, envPrefix); ok {
			env = append(env, kv)
		}
	}
	files := make([]uintptr, p.files)
	for i := range files {
		files[i] = uintptr(i)
	}
	sys := &syscall.SysProcAttr{Setsid: true}
	if p.fg {
		// Wrap's caller gave the helper's group the controlling terminal, which /dev/tty
		// is, whatever descriptor it used.
		tty, err := os.OpenFile("/dev/tty", os.O_RDWR|syscall.O_NOCTTY, 0)
		if err != nil {
			return 0, err
		}
		defer tty.Close()
		sys = &syscall.SysProcAttr{Setpgid: true, Foreground: true, Ctty: int(tty.Fd())}
	}
	return syscall.ForkExec(p.path, p.argv, &syscall.ProcAttr{Env: env, Files: files, Sys: sys})
}

// reap waits for every process that ends in the namespace, whose init the helper is,
// until the command does, and returns the command's status: 128+N for signal N.
func reap(pid int) int {
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "secrets: sandbox: wait: %v\n", err)
			return exitNotRun
		}
		if got != pid {
			continue
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
}
