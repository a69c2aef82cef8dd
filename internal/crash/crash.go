//go:build !crashpoints

// Package crash marks the places where a test build can kill the process, to prove that
// a crash at any of them loses nothing. In release builds Point does nothing and costs
// nothing; only a binary built with -tags crashpoints reads $SECRETS_CRASH_AT.
package crash

// Point names a place between two durable steps, with the file it concerns (or ""). It
// does nothing in this build.
func Point(name, file string) {}

// Torn writes nothing and reports false in this build. A test build writes half of data
// and dies when $SECRETS_CRASH_AT is "audit.torn", leaving the torn line a crash leaves.
func Torn(w interface{ Write([]byte) (int, error) }, data []byte) bool { return false }
