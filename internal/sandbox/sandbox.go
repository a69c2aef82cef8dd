// Package sandbox runs a command that must not see some paths: the store's directory and
// key, for the commands an agent's tool runs with secrets in their environment. On Linux
// the command runs in new user, mount and PID namespaces, where each path is covered by
// an empty read-only mount, /proc shows no process outside, and the command holds no
// capability and cannot gain one. Elsewhere, and where the kernel forbids the
// namespaces, Available says why and nothing is hidden.
//
// The namespace side is this same binary run again through /proc/self/exe with Entry as
// its first argument: main calls Main first, which then runs that side and never returns.
package sandbox

import "errors"

// Entry is argv[1] of the re-execution of this binary that sets up the namespaces and
// runs the command in them (see Main).
const Entry = "__secrets-sandbox"

// ErrUnsupported matches an Available error that will not go away by itself: the
// platform has no such namespaces, or a sysctl disables them. Any other failure (a
// namespace limit reached, a resource short for a moment) may be caused on purpose, so
// a caller that must hide paths does not run the command then.
var ErrUnsupported = errors.New("no namespaces here")

// unsupported is an error that matches ErrUnsupported and says why in its own words.
type unsupported struct{ msg string }

func (e unsupported) Error() string        { return e.msg }
func (e unsupported) Is(target error) bool { return target == ErrUnsupported }
