package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// LockFile is the run lock inside a root: two runs never interleave.
const LockFile = "/run/kplay.lock"

// StateDir is the directory of the files kplay keeps for itself in a
// root: the journal of owed actions and the fingerprint key.
const StateDir = "/var/lib/kplay"

// StatePathError refuses p, a path a step would write, when it is one of
// the files kplay keeps for itself in the root (LockFile, StateDir and
// what is in it): a playbook that replaced the lock file would let a
// second run in beside the first, and one that wrote the key would know
// every fingerprint.
func StatePathError(p string) error {
	if p == LockFile || p == StateDir || strings.HasPrefix(p, StateDir+"/") {
		return fmt.Errorf("%s is kplay's own state (%s and %s): a playbook may not write it", p, LockFile, StateDir)
	}
	return nil
}

// Locker is a host that can take a lock so that two runs never
// interleave. engine.Converge takes it after its check pass.
type Locker interface {
	Lock(ctx context.Context) (unlock func() error, err error)
}

// DefaultLockTimeout is how long Lock waits unless WithLockTimeout says
// otherwise.
const DefaultLockTimeout = 30 * time.Second

// Lock takes the run lock of the root (an flock on LockFile, with the
// holder's PID written in it), waiting for another run to finish up to the
// lock timeout. It makes the root if it does not exist. The error for a
// lock still held after the timeout names the holder's PID, and so does
// the error for ctx ending while it waits, which says it was interrupted
// and wraps ctx.Err(). check takes no lock.
func (r *Real) Lock(ctx context.Context) (unlock func() error, err error) {
	timeout := r.lockTimeout
	const op = "lock"
	rel, err := r.begin(ctx, op, LockFile, true)
	if err != nil {
		return nil, err
	}
	if err := CheckStatePath(ctx, r, op, LockFile); err != nil {
		return nil, err
	}
	f, err := r.openState(op, LockFile, rel, 0o644)
	if err != nil {
		return nil, err
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
			holder := lockHolder(f)
			f.Close()
			return nil, &lockWaitError{holder: holder, cause: ctx.Err()}
		case <-tick.C:
		}
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	// What the check before the lock read may have changed while it
	// waited: a directory handle kept since could now lead elsewhere.
	r.forgetDirs()
	return func() error {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return f.Close()
	}, nil
}

// lockWaitError is the error of Lock when its ctx ends (a signal) while
// it waits for the lock that another run holds. It unwraps to the
// context's error.
type lockWaitError struct {
	holder string // the holder's PID, or "unknown"
	cause  error
}

func (e *lockWaitError) Error() string {
	return fmt.Sprintf("lock %s: interrupted while waiting for the lock, which another kplay run holds (pid %s)", LockFile, e.holder)
}

func (e *lockWaitError) Unwrap() error { return e.cause }

// openState opens rel, a file kplay keeps for itself in the root, for
// reading and writing, creating it with exactly perm if it does not exist
// (and its missing parents, 0755). It never follows a symlink at rel, and
// refuses anything but a regular file with one link (a planted symlink or
// hard link would make kplay write to the file it points at): the error
// wraps ErrNotStateFile and nothing is changed.
func (r *Real) openState(op, name, rel string, perm fs.FileMode) (*os.File, error) {
	return inRoot(r, op, name, rel, false, func(rel string) (*os.File, error) {
		return r.openStateAt(op, name, rel, perm)
	})
}

// openStateAt is openState at rel, a path relative to the root.
func (r *Real) openStateAt(op, name, rel string, perm fs.FileMode) (*os.File, error) {
	dir, base := path.Split(rel)
	if dir == "" {
		dir = "."
	}
	if err := r.mkdirParents(op, name, path.Clean(dir)); err != nil {
		return nil, err
	}
	root := r.root.Load()
	if fi, err := root.Lstat(rel); err == nil {
		if err := checkStateFile(op, name, fi); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, r.fail(op, name, err)
	}
	// os.Root follows a symlink at the last element; openat with
	// O_NOFOLLOW on the parent's descriptor does not.
	d, err := root.Open(path.Clean(dir))
	if err != nil {
		return nil, r.fail(op, name, err)
	}
	defer d.Close()
	const flags = syscall.O_RDWR | syscall.O_NOFOLLOW | syscall.O_CLOEXEC | syscall.O_NONBLOCK | syscall.O_NOCTTY
	created := true
	fd, err := syscall.Openat(int(d.Fd()), base, flags|syscall.O_CREAT|syscall.O_EXCL, uint32(perm))
	if errors.Is(err, syscall.EEXIST) {
		created = false
		fd, err = syscall.Openat(int(d.Fd()), base, flags, 0)
	}
	if errors.Is(err, syscall.ELOOP) {
		return nil, CheckStateFile(op, name, FileInfo{Mode: fs.ModeSymlink}) // made meanwhile
	}
	if err != nil {
		return nil, opError(op, name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	fi, err := f.Stat()
	if err == nil {
		err = checkStateFile(op, name, fi)
	}
	if err == nil && created {
		err = f.Chmod(perm) // exactly perm, whatever the umask
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// CheckStatePath refuses a symlink on the way to name, a file kplay keeps
// for itself: each directory above it must be a directory, not a link to
// one (a planted /var/lib -> ../etc would make kplay write its files into
// /etc). A directory that does not exist yet is fine: kplay makes it. The
// error wraps ErrNotStateFile.
func CheckStatePath(ctx context.Context, h Host, op, name string) error {
	var dirs []string
	for d := path.Dir(name); d != "/"; d = path.Dir(d) {
		dirs = append(dirs, d)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		fi, err := h.Lstat(ctx, dirs[i])
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil
		case err != nil:
			return err
		case !fi.IsDir():
			return fmt.Errorf("%s %s: %w: %s is %s, not a directory (kplay never follows links to its own files; make it a directory)", op, name, ErrNotStateFile, dirs[i], Kind(fi.Mode))
		}
	}
	return nil
}

// ErrNotStateFile is wrapped by the error for a file kplay keeps for
// itself (the lock, the journal, the fingerprint key) that is a symlink,
// not a regular file, or a regular file with more than one hard link, or
// that has a symlink or a non-directory on the way to it.
var ErrNotStateFile = errors.New("unsafe state file")

// checkStateFile is CheckStateFile of an fs.FileInfo.
func checkStateFile(op, name string, fi fs.FileInfo) error {
	return CheckStateFile(op, name, infoOf(fi))
}

// CheckStateFile returns an error wrapping ErrNotStateFile when fi, the
// Lstat of a file kplay keeps for itself, is not a regular file with one
// link; op and name are for the message.
func CheckStateFile(op, name string, fi FileInfo) error {
	switch {
	case fi.Mode&fs.ModeSymlink != 0:
		return fmt.Errorf("%s %s: %w: a symlink (kplay never follows links for its own files; remove it)", op, name, ErrNotStateFile)
	case !fi.IsRegular():
		return fmt.Errorf("%s %s: %w: %s (remove it; kplay makes it anew)", op, name, ErrNotStateFile, Kind(fi.Mode))
	case fi.Links > 1:
		return fmt.Errorf("%s %s: %w: it has other hard links, which kplay would write through (remove it; kplay makes it anew)", op, name, ErrNotStateFile)
	}
	return nil
}

// Kind names the type of a file for messages: "a regular file", "a
// directory", "a symlink", "a named pipe", "a device", "a socket".
func Kind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "a special file"
}

// lockHolder reads the PID the holder of a lock file wrote.
func lockHolder(f *os.File) string {
	data, err := io.ReadAll(io.NewSectionReader(f, 0, 32))
	if pid := strings.TrimSpace(string(data)); err == nil && pid != "" {
		return pid
	}
	return "unknown"
}
