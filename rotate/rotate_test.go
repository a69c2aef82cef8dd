package rotate_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/rotate"
)

func hook(cmd, verify string) rotate.Hook {
	return rotate.Hook{Name: "github_token", Command: cmd, Verify: verify, Timeout: 2 * time.Second, Env: []string{"PATH=" + os.Getenv("PATH")}}
}

func TestNewValue(t *testing.T) {
	r, err := hook(`read old; printf "%s-rotated\n" "$old"`, "").Run(context.Background(), []byte("FAKE-old"))
	if err != nil || string(r.Value) != "FAKE-old-rotated" || !r.Changed || r.ExitStatus != 0 {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestRefreshedElsewhere(t *testing.T) {
	r, err := hook(`cat >/dev/null`, "").Run(context.Background(), []byte("FAKE-old"))
	if err != nil || string(r.Value) != "FAKE-old" || r.Changed {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestHookSeesNameNotValue(t *testing.T) {
	dir := t.TempDir()
	h := hook(`echo "$SECRET_NAME $*" > `+filepath.Join(dir, "seen")+`; env >> `+filepath.Join(dir, "seen"), "")
	h.Env = append(h.Env, "OTHER=1")
	if _, err := h.Run(context.Background(), []byte("FAKE-value-not-in-env")); err != nil {
		t.Fatal(err)
	}
	seen, _ := os.ReadFile(filepath.Join(dir, "seen"))
	if !strings.HasPrefix(string(seen), "github_token \n") || strings.Contains(string(seen), "FAKE-value") {
		t.Fatalf("hook saw %q", seen)
	}
}

func TestFailureChangesNothing(t *testing.T) {
	_, err := hook(`echo FAKE-partial; exit 3`, "").Run(context.Background(), []byte("FAKE-old"))
	if !errors.Is(err, rotate.ErrFailed) || strings.Contains(err.Error(), "FAKE") || !strings.Contains(err.Error(), "status 3") {
		t.Fatalf("%v", err)
	}
}

// TestTimeoutKillsTheGroup: a hook that hangs, leaving a grandchild that holds stdout,
// is killed with its grandchild at the timeout.
func TestTimeoutKillsTheGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "grandchild")
	h := hook(`sleep 300 & echo $! > `+pidFile+`; wait`, "")
	h.Timeout = 300 * time.Millisecond
	start := time.Now()
	_, err := h.Run(context.Background(), []byte("FAKE-old"))
	if !errors.Is(err, rotate.ErrFailed) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("%v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("took %v", took)
	}
	b, _ := os.ReadFile(pidFile)
	pid := strings.TrimSpace(string(b))
	time.Sleep(100 * time.Millisecond)
	if st, err := os.ReadFile("/proc/" + pid + "/stat"); err == nil && !strings.Contains(string(st), ") Z ") {
		t.Fatalf("grandchild %s survived: %s", pid, st)
	}
}

func TestVerifyRollsBack(t *testing.T) {
	r, err := hook(`echo FAKE-new-bad`, `read v; test "$v" = FAKE-new-good`).Run(context.Background(), []byte("FAKE-old"))
	if !errors.Is(err, rotate.ErrFailed) || !strings.Contains(err.Error(), "rolled back") || strings.Contains(err.Error(), "FAKE") {
		t.Fatalf("%+v %v", r, err)
	}
	r, err = hook(`echo FAKE-new-good`, `read v; test "$v" = FAKE-new-good`).Run(context.Background(), []byte("FAKE-old"))
	if err != nil || !r.Verified || string(r.Value) != "FAKE-new-good" {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestOutputLimit(t *testing.T) {
	_, err := hook(`head -c 2000000 /dev/zero`, "").Run(context.Background(), []byte("FAKE-old"))
	if !errors.Is(err, rotate.ErrFailed) || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("%v", err)
	}
}
