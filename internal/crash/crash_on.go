//go:build crashpoints

package crash

import (
	"os"
	"path/filepath"
	"syscall"
)

// Point kills the process with SIGKILL, as a power cut or kill -9 would, when
// $SECRETS_CRASH_AT names it: "name" or "name:file" (the file's base name). Test builds only.
func Point(name, file string) {
	at := os.Getenv("SECRETS_CRASH_AT")
	if at == name || file != "" && at == name+":"+filepath.Base(file) {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}

// Torn writes half of data and kills the process when $SECRETS_CRASH_AT is "audit.torn".
func Torn(w interface{ Write([]byte) (int, error) }, data []byte) bool {
	if os.Getenv("SECRETS_CRASH_AT") != "audit.torn" {
		return false
	}
	w.Write(data[:len(data)/2])
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}
