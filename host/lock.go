package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// LockFile is the run lock inside a root: two runs never interleave.
const LockFile = "/run/kplay.lock"

// Locker is a host that can take a lock so that two runs never
// interleave. engine.Converge takes it after its check pass.
type Locker interface {
	Lock(ctx context.Context) (unlock func() error, err error)
}

// DefaultLockTimeout is how long Lock waits unless SetLockTimeout says
// otherwise.
const DefaultLockTimeout = 30 * time.Second

// SetLockTimeout sets how long Lock waits for another run (--lock-timeout).
func (r *Real) SetLockTimeout(d time.Duration) { r.lockTimeout.Store(int64(d)) }

// Lock takes the run lock of the root (an flock on LockFile, with the
// holder's PID written in it), waiting for another run to finish up to the
// lock timeout. It makes the root if it does not exist. The error for a
// lock still held after the timeout names the holder's PID. check takes no
// lock.
func (r *Real) Lock(ctx context.Context) (unlock func() error, err error) {
	timeout := DefaultLockTimeout
	if d := r.lockTimeout.Load(); d > 0 {
		timeout = time.Duration(d)
	}
	const op = "lock"
	rel, err := r.begin(ctx, op, LockFile, true)
	if err != nil {
		return nil, err
	}
	root := r.root.Load()
	if err := root.MkdirAll("run", 0o755); err != nil {
		return nil, r.fail(op, LockFile, err)
	}
	f, err := root.OpenFile(rel, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, r.fail(op, LockFile, err)
	}
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, opError(op, LockFile, err)
		}
		if time.Now().After(deadline) {
			holder := lockHolder(f)
			f.Close()
			return nil, fmt.Errorf("root %s is locked by another kplay run (pid %s) after waiting %s (wait for it, or raise --lock-timeout)", r.dir, holder, timeout)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("%s %s: %w", op, LockFile, ctx.Err())
		case <-tick.C:
		}
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() error {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return f.Close()
	}, nil
}

// lockHolder reads the PID the holder of a lock file wrote.
func lockHolder(f *os.File) string {
	data, err := io.ReadAll(io.NewSectionReader(f, 0, 32))
	if pid := strings.TrimSpace(string(data)); err == nil && pid != "" {
		return pid
	}
	return "unknown"
}
