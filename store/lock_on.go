//go:build !nolock

package store

// lockingDisabled is true only in a test build (-tags nolock) that proves the load test
// notices lost updates when the lock is gone.
const lockingDisabled = false
