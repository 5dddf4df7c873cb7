package host

import (
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

	second, err := OpenReal(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetLockTimeout(200 * time.Millisecond)
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
