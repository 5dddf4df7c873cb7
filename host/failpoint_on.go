//go:build kplay_failpoints

package host

import (
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
)

// FailpointEnv chooses the failpoint (host/failpoint.go) at which a kplay
// built with the tag kplay_failpoints kills itself with SIGKILL: the n-th
// one it reaches, counting from 1. With -1 it prints
// "kplay failpoint N: WHERE" on stderr at each, and goes on.
const FailpointEnv = "KPLAY_FAILPOINT"

func init() {
	n, err := strconv.Atoi(os.Getenv(FailpointEnv))
	if err != nil || n == 0 {
		return
	}
	var reached atomic.Int64
	failpoint = func(where string) {
		i := reached.Add(1)
		switch {
		case n < 0:
			fmt.Fprintf(os.Stderr, "kplay failpoint %d: %s\n", i, where)
		case i == int64(n):
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal ends the process
		}
	}
}
