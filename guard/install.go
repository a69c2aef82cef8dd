package guard

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Setup is what `secrets guard` asks for.
type Setup struct {
	User    string   // the store's owner, created when missing
	Allow   []string // agent users and %groups
	Dir     string   // the store
	Release string   // this binary's version
	Admin   string   // the person running it ($SUDO_USER), never an agent user
	From    string   // a plain store to move in, or ""
}

// Report lists what Install did and what Status found.
type Report struct {
	Store    string   `json:"store"`
	Owner    string   `json:"owner"`
	Binary   string   `json:"binary"`
	Config   string   `json:"config"`
	Sudoers  string   `json:"sudoers"`
	Allow    []string `json:"allow"`
	Release  string   `json:"release,omitempty"`
	Done     []string `json:"done,omitempty"`
	Problems []string `json:"problems"`
	Warnings []string `json:"warnings,omitempty"`
}

// Install sets up the guarded store, or brings one that exists up to s (idempotent).
// Each step is checked before the next; the sudoers drop-in, the step that gives access,
// comes last.
func Install(s Setup) (*Report, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: secrets guard changes users and sudoers: run it with sudo", ErrNotPermitted)
	}
	if s.User == "" {
		s.User = DefaultUser
	}
	if s.Dir == "" {
		s.Dir = DefaultDir
	}
	if !filepath.IsAbs(s.Dir) {
		return nil, fmt.Errorf("%w: --dir must be an absolute path", ErrNotPermitted)
	}
	s.Dir = filepath.Clean(s.Dir)
	if err := checkAllowed(s.Allow, s.User, s.Admin); err != nil {
		return nil, err
	}
	if s.From != "" {
		if err := checkFrom(s); err != nil {
			return nil, err
		}
	}
	r := &Report{Store: s.Dir, Owner: s.User, Binary: BinaryPath, Config: ConfigPath, Sudoers: SudoersPath, Allow: s.Allow, Release: s.Release, Problems: []string{}}
	uid, gid, err := lookupOwner(s.User)
	if err != nil {
		if err := createUser(s.User, s.Dir); err != nil {
			return nil, fmt.Errorf("create the user %s: %w", s.User, err)
		}
		r.Done = append(r.Done, "created the system user "+s.User)
		if uid, gid, err = lookupOwner(s.User); err != nil {
			return nil, err
		}
	}
	if uid == 0 {
		return nil, fmt.Errorf("%w: the store's owner cannot be root", ErrNotPermitted)
	}
	if err := installBinary(); err != nil {
		return nil, err
	}
	r.Done = append(r.Done, "installed "+BinaryPath)
	c := &Config{Version: 1, Store: s.Dir, Owner: s.User, OwnerUID: uid, OwnerGID: gid, Binary: BinaryPath, Release: s.Release, Allow: s.Allow}
	if err := makeStore(c, s.From); err != nil {
		return nil, err
	}
	r.Done = append(r.Done, "the store "+s.Dir+" belongs to "+s.User)
	if s.From != "" {
		r.Done = append(r.Done, "moved the store "+s.From+" in (its files byte for byte, the log verified), and removed it")
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	if err := writeRootFile(ConfigPath, append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	r.Done = append(r.Done, "wrote "+ConfigPath)
	if err := installSudoers(sudoers(c)); err != nil {
		return nil, err
	}
	r.Done = append(r.Done, "installed "+SudoersPath+" (visudo -c passes)")
	return r, nil
}

// checkFrom refuses a --from that is not a plain store, or that would replace a guarded
// store that has one already.
func checkFrom(s Setup) error {
	if !filepath.IsAbs(s.From) {
		return fmt.Errorf("%w: --from must be an absolute path", ErrNotPermitted)
	}
	from := filepath.Clean(s.From)
	fi, err := os.Lstat(from)
	if err != nil || !fi.IsDir() {
		return fmt.Errorf("%w: --from %s is not a directory", ErrNotPermitted, from)
	}
	if _, err := os.Stat(filepath.Join(from, "identity.age")); err != nil {
		return fmt.Errorf("%w: --from %s holds no identity.age: move a store whose identity is in it", ErrNotPermitted, from)
	}
	if from == s.Dir {
		return fmt.Errorf("%w: --from is the guarded store itself", ErrNotPermitted)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "identity.age")); err == nil {
		return fmt.Errorf("%w: %s holds a store already; --from would replace it (move its secrets with add, or remove it first)", ErrNotPermitted, s.Dir)
	}
	return nil
}

// moveIn copies the plain store from into c.Store as the owner's (regular files and
// directories only, byte for byte), has the owner open it and verify its log, and only
// then removes from. On a failure the copy is taken out again and from is untouched.
func moveIn(c *Config, from string) error {
	// Nothing writes the plain store while it moves: its lock, held to the end.
	lock, err := os.OpenFile(filepath.Join(from, ".lock"), os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if err == nil {
		defer lock.Close()
		if syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			return fmt.Errorf("%w: %s is in use (its lock is held): stop what uses it and run guard again", ErrNotPermitted, from)
		}
	}
	var copied []string
	undo := func(err error) error {
		for i := len(copied) - 1; i >= 0; i-- {
			os.RemoveAll(copied[i])
		}
		return err
	}
	err = filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if rel == "." {
			return nil
		}
		dst := filepath.Join(c.Store, rel)
		switch {
		case d.IsDir():
			if err := os.Mkdir(dst, 0o700); err != nil {
				return err
			}
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(dst, b, 0o600); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s is neither a file nor a directory; a store holds only those", p)
		}
		copied = append(copied, dst)
		return os.Lchown(dst, c.OwnerUID, c.OwnerGID)
	})
	if err != nil {
		return undo(fmt.Errorf("move %s in: %w", from, err))
	}
	for _, check := range [][]string{{"audit", "--verify"}, {"list"}} {
		var out strings.Builder
		if err := asOwner(c, strings.NewReader(""), &out, &out, check...).Run(); err != nil {
			return undo(fmt.Errorf("%w: the moved store does not check out (secrets %s: %v); %s is untouched: %s", ErrUnavailable, strings.Join(check, " "), err, from, out.String()))
		}
	}
	return os.RemoveAll(from)
}

// makeStore creates the store directory, 0700 and the owner's, and initialises it as the
// owner, or moves the plain store from in; a store that is there already is kept (and its
// ownership checked).
func makeStore(c *Config, from string) error {
	if why := chainProblem(filepath.Dir(c.Store)); why != "" {
		return fmt.Errorf("%w: the store would be in a directory another user could change: %s", ErrNotPermitted, why)
	}
	fi, err := os.Lstat(c.Store)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.Mkdir(c.Store, 0o700); err != nil {
			return err
		}
		if err := os.Chown(c.Store, c.OwnerUID, c.OwnerGID); err != nil {
			return err
		}
	case err != nil:
		return err
	case !fi.IsDir() || fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("%w: %s is not a directory", ErrNotPermitted, c.Store)
	case int(fi.Sys().(*syscall.Stat_t).Uid) != c.OwnerUID:
		return fmt.Errorf("%w: %s exists and belongs to uid %d, not %s", ErrNotPermitted, c.Store, fi.Sys().(*syscall.Stat_t).Uid, c.Owner)
	}
	if _, err := os.Stat(filepath.Join(c.Store, "identity.age")); err == nil {
		return nil
	}
	if from != "" {
		return moveIn(c, from)
	}
	var out strings.Builder
	if err := asOwner(c, strings.NewReader(""), &out, &out, "init").Run(); err != nil {
		return fmt.Errorf("init the store as %s: %v: %s", c.Owner, err, out.String())
	}
	return nil
}

// createUser makes a system user with no login shell and no password, its home the store.
func createUser(name, home string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "linux":
		cmd = exec.Command("useradd", "--system", "--user-group", "--no-create-home", "--home-dir", home, "--shell", "/usr/sbin/nologin", "--comment", "secrets guarded store", name)
	case "darwin":
		return createDarwinUser(name, home)
	default:
		return fmt.Errorf("%w: creating a user is not supported on %s; create %s yourself and run guard again", ErrNotPermitted, runtime.GOOS, name)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// createDarwinUser makes a hidden role account with dscl, in the range macOS keeps for
// them (below 500), with a group of the same id.
func createDarwinUser(name, home string) error {
	id := 0
	for n := 499; n > 300; n-- {
		if _, err := user.LookupId(strconv.Itoa(n)); err != nil {
			if _, err := user.LookupGroupId(strconv.Itoa(n)); err != nil {
				id = n
				break
			}
		}
	}
	if id == 0 {
		return errors.New("no free id below 500")
	}
	ids := strconv.Itoa(id)
	steps := [][]string{
		{"-create", "/Groups/" + name}, {"-create", "/Groups/" + name, "PrimaryGroupID", ids},
		{"-create", "/Users/" + name}, {"-create", "/Users/" + name, "UniqueID", ids},
		{"-create", "/Users/" + name, "PrimaryGroupID", ids}, {"-create", "/Users/" + name, "UserShell", "/usr/bin/false"},
		{"-create", "/Users/" + name, "NFSHomeDirectory", home}, {"-create", "/Users/" + name, "IsHidden", "1"},
		{"-create", "/Users/" + name, "RealName", "secrets guarded store"},
	}
	for _, s := range steps {
		if out, err := exec.Command("dscl", append([]string{"."}, s...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("dscl %v: %v: %s", s, err, out)
		}
	}
	return nil
}

// Status reports what is in place and what is wrong. It reads only; root sees more (the
// store's files), anyone sees whether the pieces are there.
func Status() (*Report, error) {
	c, err := ReadConfig()
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: no guarded store here (%s is missing); an admin sets one up with: sudo secrets guard --allow USER", ErrUnavailable, ConfigPath)
	}
	if err != nil {
		return nil, err
	}
	r := &Report{Store: c.Store, Owner: c.Owner, Binary: c.Binary, Config: ConfigPath, Sudoers: SudoersPath, Allow: c.Allow, Release: c.Release, Problems: []string{}}
	bad := func(format string, args ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, args...)) }
	if uid, _, err := lookupOwner(c.Owner); err != nil || uid != c.OwnerUID {
		bad("the user %s is missing or has another uid than %d", c.Owner, c.OwnerUID)
	}
	if why := chainProblem(c.Binary); why != "" {
		bad("the binary can be changed by a user other than root: %s", why)
	} else if fi, err := os.Stat(c.Binary); err != nil || fi.Mode().Perm()&0o111 == 0 {
		bad("the binary %s is missing or not executable", c.Binary)
	}
	if fi, err := os.Lstat(c.Store); err != nil {
		bad("the store %s: %v", c.Store, err)
	} else if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != c.OwnerUID || fi.Mode().Perm() != 0o700 || !fi.IsDir() {
		bad("the store %s must be a directory of %s with mode 0700 (it is uid %d, mode %o)", c.Store, c.Owner, st.Uid, fi.Mode().Perm())
	}
	if b, err := os.ReadFile(SudoersPath); err != nil {
		bad("the sudoers drop-in %s is missing: run sudo secrets guard again", SudoersPath)
	} else if string(b) != sudoers(c) {
		bad("the sudoers drop-in %s is not the one guard writes: run sudo secrets guard again", SudoersPath)
	}
	if os.Geteuid() == 0 {
		if err := visudo(""); err != nil {
			bad("the sudoers configuration does not check: %v", err)
		}
		r.Warnings = hookWarnings(c)
	}
	if err := checkAllowed(c.Allow, c.Owner, ""); err != nil {
		bad("%v", err)
	}
	return r, nil
}

// hookWarnings names the rotation hooks that look for something in a user's home: they
// run on the owner side as the store's user, whose home is the store, with its own
// environment, so what a caller's home holds (a gh login, a script) is not there.
func hookWarnings(c *Config) []string {
	var out strings.Builder
	if err := asOwner(c, strings.NewReader(""), &out, io.Discard, "list").Run(); err != nil {
		return []string{"could not list the store's hooks as " + c.Owner + ": " + err.Error()}
	}
	var l struct {
		Result struct {
			Secrets []struct {
				Name      string `json:"name"`
				RotateVia string `json:"rotate_via"`
				VerifyVia string `json:"verify_via"`
			} `json:"secrets"`
		} `json:"result"`
	}
	json.Unmarshal([]byte(out.String()), &l)
	var warn []string
	for _, s := range l.Result.Secrets {
		for _, hook := range []string{s.RotateVia, s.VerifyVia} {
			if strings.Contains(hook, "/home/") || strings.Contains(hook, "~") || strings.Contains(hook, "$HOME") || strings.Contains(hook, "${HOME}") {
				warn = append(warn, fmt.Sprintf("the hook of %s refers to a home directory (%q); it runs as %s, whose home is %s: give that user what the hook needs (its own gh login, say) or use an absolute path it can read", s.Name, hook, c.Owner, c.Store))
				break
			}
		}
	}
	return warn
}

// Remove undoes Install: the sudoers drop-in first (it gives access), then guard.json and
// the binary. The store and its user are kept unless deleteStore.
func Remove(deleteStore bool) (*Report, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: secrets guard --remove changes sudoers: run it with sudo", ErrNotPermitted)
	}
	c, err := ReadConfig()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	r := &Report{Config: ConfigPath, Sudoers: SudoersPath, Binary: BinaryPath, Problems: []string{}}
	for _, p := range []string{SudoersPath, ConfigPath, BinaryPath} {
		if err := os.Remove(p); err == nil {
			r.Done = append(r.Done, "removed "+p)
		} else if !errors.Is(err, os.ErrNotExist) {
			return r, err
		}
	}
	os.Remove(filepath.Dir(BinaryPath))
	os.Remove(filepath.Dir(ConfigPath))
	if c == nil {
		return r, nil
	}
	r.Store, r.Owner, r.Allow = c.Store, c.Owner, c.Allow
	if !deleteStore {
		r.Done = append(r.Done, "kept the store "+c.Store+" and the user "+c.Owner)
		return r, nil
	}
	if err := os.RemoveAll(c.Store); err != nil {
		return r, err
	}
	r.Done = append(r.Done, "deleted the store "+c.Store)
	if runtime.GOOS == "linux" {
		if out, err := exec.Command("userdel", c.Owner).CombinedOutput(); err != nil {
			r.Problems = append(r.Problems, fmt.Sprintf("userdel %s: %v: %s", c.Owner, err, strings.TrimSpace(string(out))))
		} else {
			r.Done = append(r.Done, "deleted the user "+c.Owner)
		}
	}
	return r, nil
}

// Allowed reports whether the user uid (name, groups) is one guard.json allows.
func (c *Config) Allowed(name string, groups []string) bool {
	for _, a := range c.Allow {
		if g, ok := strings.CutPrefix(a, "%"); ok && slices.Contains(groups, g) || a == name {
			return true
		}
	}
	return false
}
