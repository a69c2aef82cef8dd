//go:build nolock

package store

// lockingDisabled: this test-only build takes no lock, as the load test's negative control.
const lockingDisabled = true
