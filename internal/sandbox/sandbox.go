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

// Entry is argv[1] of the re-execution of this binary that sets up the namespaces and
// runs the command in them (see Main).
const Entry = "__secrets-sandbox"
