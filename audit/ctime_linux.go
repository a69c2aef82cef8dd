package audit

import "syscall"

// ctime is the file's change time, which only the kernel sets.
func ctime(st *syscall.Stat_t) syscall.Timespec { return st.Ctim }
