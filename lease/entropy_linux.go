package lease

import (
	"io"

	"golang.org/x/sys/unix"
)

// entropy feeds lease ids straight from getrandom(2), the kernel's CSPRNG that
// crypto/rand reads too: crypto/rand's first use sets up the vDSO getrandom state
// (an mmap and its page faults), a cost a lease, which needs ten random bytes and no
// other, pays in every process.
var entropy io.Reader = getrandom{}

type getrandom struct{}

func (getrandom) Read(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := unix.Getrandom(b[n:], 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}
