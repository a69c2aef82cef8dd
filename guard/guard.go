// Package guard sets up and describes a guarded store (DESIGN.md section 10): the store
// belongs to a dedicated system user, a root-owned copy of the binary in a root-owned
// directory chain is the only program the allowed users may run as that user, through a
// sudoers drop-in that lets them run it as the owner side and nothing else, and
// /etc/secrets/guard.json names the three. It changes the system only when run by root,
// and never leaves a sudoers file behind that `visudo -c` rejects.
package guard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Where the pieces live. Fixed paths: the owner side trusts nothing a caller names.
const (
	ConfigPath  = "/etc/secrets/guard.json"
	SudoersPath = "/etc/sudoers.d/secrets-guard" // no dot: sudo reads it (it skips names with one)
	BinaryPath  = "/usr/local/libexec/secrets/secrets"
	DefaultDir  = "/var/lib/secrets"
	DefaultUser = "_secrets"
	// OwnerArg is the only argument the sudoers rule lets an allowed user give the
	// binary: the owner side, which reads its request as data on stdin.
	OwnerArg = "__owner"
)

// ErrNotPermitted reports a request the caller may not make (not root, or an admin asked
// to be an agent user).
var ErrNotPermitted = errors.New("not permitted")

// ErrUnavailable reports a guarded store that cannot be reached or is not set up right.
var ErrUnavailable = errors.New("guarded store unavailable")

// adminGroups are the groups whose members can administer the machine (sudo on Debian
// and Ubuntu, wheel on Fedora and the BSDs, admin on macOS and older Ubuntu).
var adminGroups = []string{"sudo", "wheel", "admin"}

// Config is /etc/secrets/guard.json.
type Config struct {
	Version  int      `json:"version"` // of this format: 1
	Store    string   `json:"store"`
	Owner    string   `json:"owner"`
	OwnerUID int      `json:"owner_uid"`
	OwnerGID int      `json:"owner_gid"`
	Binary   string   `json:"binary"`
	Release  string   `json:"release"` // of the installed binary
	Allow    []string `json:"allow"`   // users, and %groups
}

// ReadConfig reads guard.json. It must be a regular file owned by root and writable by
// nobody else: it decides where every guarded call goes. A missing file is
// os.ErrNotExist (no guarded store here).
func ReadConfig() (*Config, error) {
	f, err := os.OpenFile(ConfigPath, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, ConfigPath, err)
	}
	defer f.Close()
	if err := rootOnly(f, ConfigPath); err != nil {
		return nil, err
	}
	if why := chainProblem(filepath.Dir(ConfigPath)); why != "" {
		return nil, fmt.Errorf("%w: %s: %s", ErrUnavailable, ConfigPath, why)
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, ConfigPath, err)
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || c.Version != 1 || c.Owner == "" || c.OwnerUID <= 0 || !filepath.IsAbs(c.Store) || c.Binary != BinaryPath {
		return nil, fmt.Errorf("%w: %s is not a guard configuration this release reads", ErrUnavailable, ConfigPath)
	}
	return &c, nil
}

// rootOnly checks that f is a regular file owned by root that no one else may write.
func rootOnly(f *os.File, name string) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, name, err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() || st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: %s must be a regular file owned by root and writable by root only", ErrUnavailable, name)
	}
	return nil
}

// chainProblem says why path, or a directory above it, could be changed by a user other
// than root ("" when none can): owned by another user, or writable by group or others.
func chainProblem(path string) string {
	for p := path; ; p = filepath.Dir(p) {
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Sprintf("%s: %v", p, err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			return p + " is a symlink"
		case st.Uid != 0:
			return fmt.Sprintf("%s is owned by uid %d, not root", p, st.Uid)
		case fi.Mode().Perm()&0o022 != 0 && fi.Mode()&os.ModeSticky == 0:
			return fmt.Sprintf("%s can be written by its group or by others (mode %o)", p, fi.Mode().Perm())
		case fi.Mode().Perm()&0o022 != 0:
			return fmt.Sprintf("%s is a shared directory (mode %o)", p, fi.Mode().Perm())
		}
		if p == "/" {
			return ""
		}
	}
}

// adminReason returns why u can administer the machine, or "": root, the admin, a
// member of an admin group, or a user sudoers lets run anything but the owner side
// (sudo -l -U, as root; ownerRule is the one rule guard gives).
func adminReason(u *user.User, admin, ownerRule string) string {
	if u.Uid == "0" {
		return "it is root"
	}
	if u.Username == admin {
		return "it is the admin running secrets guard"
	}
	gids, _ := u.GroupIds()
	for _, gid := range gids {
		if g, err := user.LookupGroupId(gid); err == nil && slices.Contains(adminGroups, g.Name) {
			return "it is in the " + g.Name + " group, so it can use sudo as root"
		}
	}
	if os.Geteuid() == 0 {
		if rule := otherSudoRule(u.Username, ownerRule); rule != "" {
			return "sudoers lets it run " + rule
		}
	}
	return ""
}

// otherSudoRule returns a sudo rule of user's other than ownerRule, or "" when it has
// none (sudo -n -l -U, which lists every rule that applies, aliases and groups expanded).
func otherSudoRule(name, ownerRule string) string {
	out, err := exec.Command("sudo", "-n", "-l", "-U", name).Output()
	if err != nil {
		return "anything: sudo -l -U " + name + " failed (" + err.Error() + ")"
	}
	_, rules, ok := strings.Cut(string(out), " may run the following commands on ")
	if !ok {
		return "" // "is not allowed to run sudo"
	}
	for _, line := range strings.Split(rules, "\n")[1:] {
		if r := strings.TrimSpace(line); r != "" && r != ownerRule {
			return r
		}
	}
	return ""
}

// ownerRule is the sudo -l line of the rule guard writes for c.
func ownerRule(owner string) string {
	return "(" + owner + ") NOPASSWD: " + BinaryPath + " " + OwnerArg
}

// groupMembers lists the users whose primary or supplementary group is g.
func groupMembers(g *user.Group) []string {
	var out []string
	b, _ := os.ReadFile("/etc/group")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) == 4 && f[2] == g.Gid && f[3] != "" {
			out = append(out, strings.Split(f[3], ",")...)
		}
	}
	b, _ = os.ReadFile("/etc/passwd")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 4 && f[3] == g.Gid {
			out = append(out, f[0])
		}
	}
	return out
}

// checkAllowed refuses an allow entry that names no user or group, or one that can
// administer the machine: an agent running as such a user can hijack sudo.
func checkAllowed(allow []string, owner, admin string) error {
	if len(allow) == 0 {
		return fmt.Errorf("%w: name the agent users with --allow USER or --allow %%GROUP", ErrNotPermitted)
	}
	refuse := func(who, why string) error {
		return fmt.Errorf("%w: %s cannot be an agent user: %s. Run the agent host as a user of its own (see the README's Guarded store)", ErrNotPermitted, who, why)
	}
	for _, a := range allow {
		if name, ok := strings.CutPrefix(a, "%"); ok {
			if slices.Contains(adminGroups, name) {
				return refuse(a, "its members can use sudo as root")
			}
			g, err := user.LookupGroup(name)
			if err != nil {
				return fmt.Errorf("%w: no group %q", ErrNotPermitted, name)
			}
			for _, m := range groupMembers(g) {
				if u, err := user.Lookup(m); err == nil {
					if why := adminReason(u, admin, ownerRule(owner)); why != "" || m == owner {
						if m == owner {
							why = "it is the store's owner"
						}
						return refuse(a+" (member "+m+")", why)
					}
				}
			}
			continue
		}
		u, err := user.Lookup(a)
		if err != nil {
			return fmt.Errorf("%w: no user %q", ErrNotPermitted, a)
		}
		if a == owner {
			return refuse(a, "it is the store's owner")
		}
		if why := adminReason(u, admin, ownerRule(owner)); why != "" {
			return refuse(a, why)
		}
	}
	return nil
}

// sudoers is the drop-in for c: the allowed users may run the binary as the owner with
// the one argument OwnerArg, without a password, with input and output never logged,
// and with the owner's umask, not the caller's: a umask of 0777 there would make every
// file the owner side creates 0000, and the store unwritable for everyone. (sudo keeps
// the caller's resource limits whatever rlimit_* says, as sudo 1.9.13 does here: the
// owner side checks them itself, CheckLimits.)
func sudoers(c *Config) string {
	who := c.Allow
	return "# Written by `secrets guard`; `secrets guard --remove` removes it. The allowed users run\n" +
		"# the secrets binary as the store's owner, as its owner side only, without a password.\n" +
		"# Values cross its stdout: sudo never logs its input or output.\n" +
		"Cmnd_Alias SECRETS_OWNER_SIDE = " + c.Binary + " " + OwnerArg + "\n" +
		"Defaults!SECRETS_OWNER_SIDE !log_output, !log_input, !use_pty, umask=0077, umask_override\n" +
		strings.Join(who, ", ") + " ALL=(" + c.Owner + ") NOPASSWD: SECRETS_OWNER_SIDE\n"
}

// visudo checks the sudoers file named (all of the configuration when path is "").
func visudo(path string) error {
	args := []string{"-c", "-q"}
	if path != "" {
		args = append(args, "-f", path)
	}
	out, err := exec.Command("visudo", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("visudo %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// installSudoers puts content in place only if visudo accepts the file alone and then the
// whole configuration with it; otherwise what was there before is put back.
func installSudoers(content string) error {
	tmp := SudoersPath + ".new" // a dot: sudo never reads it
	if why := chainProblem(filepath.Dir(SudoersPath)); why != "" {
		return fmt.Errorf("%w: %s", ErrNotPermitted, why)
	}
	defer os.Remove(tmp)
	if err := writeNew(tmp, []byte(content), 0o440); err != nil {
		return err
	}
	if err := visudo(tmp); err != nil {
		return fmt.Errorf("the sudoers drop-in was not installed: %w", err)
	}
	old, oldErr := os.ReadFile(SudoersPath)
	if err := os.Rename(tmp, SudoersPath); err != nil {
		return err
	}
	if err := visudo(""); err != nil {
		if oldErr == nil {
			writeRootFile(SudoersPath, old, 0o440)
		} else {
			os.Remove(SudoersPath)
		}
		return fmt.Errorf("the sudoers configuration did not check with the drop-in, which was taken out again: %w", err)
	}
	return nil
}

// writeRootFile writes a root-owned file atomically, in a directory chain only root can
// change, never through a symlink: a file planted where the new one is written is
// removed, not followed.
func writeRootFile(path string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if why := chainProblem(filepath.Dir(path)); why != "" {
		return fmt.Errorf("%w: %s would be in a directory another user could change: %s", ErrNotPermitted, path, why)
	}
	tmp := path + ".new"
	if err := writeNew(tmp, b, mode); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// writeNew creates path afresh, root's with mode, and writes b to it: whatever was there
// is removed, not followed, and owner and mode are set on the open file.
func writeNew(path string, b []byte, mode os.FileMode) error {
	os.Remove(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, mode)
	if err != nil {
		return err
	}
	err = f.Chown(0, 0)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// installBinary copies the running binary to BinaryPath, root-owned, 0755, in a
// root-owned directory chain.
func installBinary() error {
	if err := os.MkdirAll(filepath.Dir(BinaryPath), 0o755); err != nil {
		return err
	}
	if why := chainProblem(filepath.Dir(BinaryPath)); why != "" {
		return fmt.Errorf("%w: the binary would be in a directory another user could change: %s", ErrNotPermitted, why)
	}
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		if src, err = openExecutable(); err != nil {
			return err
		}
	}
	defer src.Close()
	b, err := io.ReadAll(src)
	if err != nil {
		return err
	}
	return writeRootFile(BinaryPath, b, 0o755)
}

func openExecutable() (*os.File, error) {
	p, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return os.Open(p)
}

// asOwner runs the installed binary with args as the owner, in the store, with an
// environment of its own: the store's init and admin commands never run as root.
func asOwner(c *Config, stdin io.Reader, stdout, stderr io.Writer, args ...string) *exec.Cmd {
	cmd := exec.Command(c.Binary, args...)
	cmd.Env = []string{"SECRETS_DIR=" + c.Store, "HOME=" + c.Store, "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"}
	cmd.Dir = c.Store
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(c.OwnerUID), Gid: uint32(c.OwnerGID)}}
	return cmd
}

// AsOwner runs an admin command as the store's owner (root's way into a guarded store).
func AsOwner(c *Config, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	cmd := asOwner(c, stdin, stdout, stderr, args...)
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 1, fmt.Errorf("%w: run %s as %s: %v", ErrUnavailable, c.Binary, c.Owner, err)
	}
	return 0, nil
}

func lookupOwner(name string) (uid, gid int, err error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, err
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// CallerGone returns a channel closed when the process that ran sudo for us goes away
// (its pid is gone, or sudo has another parent): an owner-side process then has no one to
// answer, and ends its waits. Where /proc cannot tell, it is never closed.
func CallerGone(ctx context.Context) <-chan struct{} {
	gone := make(chan struct{})
	sudo := os.Getppid()
	caller := parentOf(sudo)
	if caller <= 1 {
		return gone
	}
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if parentOf(sudo) != caller || syscall.Kill(caller, 0) == syscall.ESRCH {
					close(gone)
					return
				}
			}
		}
	}()
	return gone
}

// parentOf is the parent pid of pid (field 4 of /proc/PID/stat), or 0.
func parentOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(string(f[1]))
	return ppid
}

// limitFloors are the resource limits below which the owner side does not start: a
// caller that lowers its own (sudo passes them on) could otherwise cut its work short
// after a commit, a canary's rotate-all or the record of an exec's end.
var limitFloors = []struct {
	name     string
	resource int
	floor    uint64
}{
	{"file size (ulimit -f)", unix.RLIMIT_FSIZE, 1 << 30},
	{"CPU time (ulimit -t)", unix.RLIMIT_CPU, 600},
	{"open files (ulimit -n)", unix.RLIMIT_NOFILE, 256},
	{"data size (ulimit -d)", unix.RLIMIT_DATA, 1 << 30},
	{"address space (ulimit -v)", unix.RLIMIT_AS, 4 << 30},
	// The owner's processes and threads count against it, all callers' together: a
	// caller may run at most vault.MaxCallerHolds execs, and the floor leaves room for
	// many callers' worth.
	{"processes (ulimit -u)", unix.RLIMIT_NPROC, 4096},
}

// CheckLimits raises this process's soft resource limits to their hard ones and fails
// with ErrUnavailable when a hard one is below what the owner side needs.
func CheckLimits() error {
	for _, l := range limitFloors {
		var r unix.Rlimit
		if unix.Getrlimit(l.resource, &r) != nil {
			continue
		}
		if r.Cur < r.Max {
			r.Cur = r.Max
			unix.Setrlimit(l.resource, &r)
		}
		if r.Max != unix.RLIM_INFINITY && r.Max < l.floor {
			return fmt.Errorf("%w: the caller's %s limit is %d, below the %d the owner side needs to finish what it starts; raise it (or run secrets from a shell with the system's limits)", ErrUnavailable, l.name, r.Max, l.floor)
		}
	}
	return nil
}
