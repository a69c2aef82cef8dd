//go:build !linux

package lease

import "crypto/rand"

// entropy feeds lease ids (entropy_linux.go says why Linux reads getrandom itself).
var entropy = rand.Reader
