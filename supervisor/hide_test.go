//go:build linux

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agent-secrets/secrets/internal/sandbox"
)

// A sandbox that the kernel has but will not give now (a namespace limit an agent filled
// on purpose) must not become a run with the store in view; one the platform or a sysctl
// rules out runs the command and says so.
func TestHideFailsClosed(t *testing.T) {
	l, err := Listen()
	if err != nil {
		t.Skip(err)
	}
	defer l.Close()
	defer func(f func() error) { sandboxAvailable = f }(sandboxAvailable)
	for _, tc := range []struct {
		why error
		ran bool
	}{
		{errors.New("cannot create user, mount and PID namespaces: no space left on device"), false},
		{fmt.Errorf("passing: %w", sandbox.ErrUnsupported), true},
	} {
		sandboxAvailable = func() error { return tc.why }
		mark := filepath.Join(t.TempDir(), "ran")
		res := l.Run(context.Background(), Command{Argv: []string{"touch", mark}, Hide: []string{t.TempDir()}, Expiry: time.Now().Add(time.Minute), Ended: func() (string, time.Time) { return "", time.Time{} }})
		_, statErr := os.Stat(mark)
		if ran := statErr == nil; ran != tc.ran || res.HideErr == nil {
			t.Fatalf("%v: ran %v (want %v), result %+v", tc.why, ran, tc.ran, res)
		}
	}
}
