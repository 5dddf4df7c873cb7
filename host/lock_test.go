package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLockOneRunAtATime(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "root")
	first, err := OpenReal(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	unlock, err := first.Lock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "run/kplay.lock"))
	if got := strings.TrimSpace(string(data)); got != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file holds %q, want our pid", got)
	}

	second, err := OpenReal(dir, true, WithLockTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	began := time.Now()
	_, err = second.Lock(t.Context())
	want := "root " + dir + " is locked by another kplay run (pid " + strconv.Itoa(os.Getpid()) + ") after waiting 200ms"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("second lock: got %v, want %q", err, want)
	}
	if waited := time.Since(began); waited < 200*time.Millisecond {
		t.Errorf("second lock gave up after %s, before its timeout", waited)
	}

	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	unlock2, err := second.Lock(t.Context())
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	if err := unlock2(); err != nil {
		t.Fatal(err)
	}
}

func TestLockMakesTheRoot(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "fresh")
	r, err := OpenReal(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	unlock, err := r.Lock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(dir, "run/kplay.lock")); err != nil {
		t.Errorf("no lock file: %v", err)
	}
}

// TestLockInterruptedWhileWaiting: a signal while run waits for another
// run's lock says so, naming the holder, rather than "context canceled",
// and the error still wraps the context's.
func TestLockInterruptedWhileWaiting(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "root")
	first, err := OpenReal(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	unlock, err := first.Lock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()

	second, err := OpenReal(dir, true, WithLockTimeout(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := second.Lock(ctx)
		done <- err
	}()
	// The second Lock has opened the lock file once this process holds
	// it twice; from then on it only tries the lock and waits.
	lockFile, err := filepath.EvalSymlinks(filepath.Join(dir, "run/kplay.lock"))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); openCount(t, lockFile) < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the second Lock never opened the lock file")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	err = <-done
	want := "lock /run/kplay.lock: interrupted while waiting for the lock, which another kplay run holds (pid " + strconv.Itoa(os.Getpid()) + ")"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v does not wrap context.Canceled", err)
	}
}

// openCount is how many descriptors of this process are open on name.
func openCount(t *testing.T, name string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd to see the lock file opened: %v", err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && target == name {
			n++
		}
	}
	return n
}
