//go:build !linux

package sandbox

import (
	"os/exec"
	"runtime"
)

// errUnsupported is why nothing can be hidden here.
var errUnsupported error = unsupported{runtime.GOOS + " has no user, mount and PID namespaces to hide paths in"}

// Available reports why this platform cannot run commands in the sandbox: it always fails.
func Available() error { return errUnsupported }

// Wrap fails on this platform and leaves cmd as it was.
func Wrap(cmd *exec.Cmd, hide []string) error { return errUnsupported }

// Main returns at once: there is no namespace side on this platform.
func Main() {}
