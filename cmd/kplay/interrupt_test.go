package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
)

// TestInterruptWhilePrinting: a signal that comes once the engine is done
// but while kplay still prints the results makes kplay exit 1 with an
// "interrupted" message, never 2 ("changes found") or 0, and cuts the
// diff being printed short. kplay's stdout is a pipe the test reads only
// after the signal, so kplay is held writing the results of the plan,
// whose first line the test has read, when the signal comes.
func TestInterruptWhilePrinting(t *testing.T) {
	t.Parallel()
	exe := kplayExe(t)
	// 2,000 lines of 500 bytes: within the diff's bounds, and a diff far
	// larger than a pipe holds. Text output is written a piece at a time
	// and stops at the first piece after the signal.
	const oneFile = `file("/etc/big", content = ("x" * 499 + "\n") * 2000)` + "\n"
	// JSON is written whole at the end, so kplay must take the signal
	// before the document is all written: 16 such diffs, 16 MiB, take
	// the test far longer to read than kplay takes to see a signal.
	const sixteenFiles = `[file("/etc/big%d" % i, content = ("x" * 499 + "\n") * 2000) for i in range(16)]` + "\n"
	tests := map[string]struct {
		args      []string
		playbook  string
		sig       syscall.Signal
		wantErr   string
		wantOut   string // at the end of stdout
		wantFiles []string
	}{
		"check_text": {
			args:     []string{"check", "--diff-limit", "0"},
			playbook: oneFile,
			sig:      syscall.SIGINT,
			wantErr:  "kplay: check interrupted; nothing was changed (check never writes)\n",
			wantOut:  "  (diff cut short: interrupted)\nstopped at an error: 0 to update, 1 to create, 0 actions, 0 unchanged, 0 skipped (1 step)\n",
		},
		"check_json": {
			args:     []string{"check", "--output", "json"},
			playbook: sixteenFiles,
			sig:      syscall.SIGTERM,
			wantErr:  "kplay: check interrupted; nothing was changed (check never writes)\n",
			wantOut:  "}\n",
		},
		"run_text": {
			args:      []string{"run", "--diff-limit", "0"},
			playbook:  oneFile,
			sig:       syscall.SIGINT,
			wantErr:   "kplay: run interrupted after its last step; every step is done\n",
			wantOut:   "  (diff cut short: interrupted)\nstopped at an error: 0 updated, 1 created, 0 actions run, 0 unchanged, 0 skipped (1 step)\n",
			wantFiles: []string{"etc", "etc/big"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if tc.args[0] == "run" && os.Geteuid() != 0 {
				t.Skip("run chowns to root:root, which needs uid 0")
			}
			dir := t.TempDir()
			root := filepath.Join(dir, "root")
			if err := os.MkdirAll(root, 0o755); err != nil {
				t.Fatal(err)
			}
			pb := filepath.Join(dir, "p.star")
			if err := os.WriteFile(pb, []byte(tc.playbook), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(exe, append(tc.args, pb, "--root", root)...)
			cmd.Env = append(os.Environ(), "NO_COLOR=1")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			pipe, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			stdout := bufio.NewReader(pipe)
			first, err := stdout.ReadString('\n')
			if err != nil {
				t.Fatalf("first line of stdout %q: %v", first, err)
			}
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			rest, _ := io.ReadAll(stdout)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(time.Minute): // a guard, not a synchronisation
				_ = cmd.Process.Kill()
				t.Fatalf("kplay did not end within a minute of %v", tc.sig)
			}
			out := first + string(rest)
			if code := cmd.ProcessState.ExitCode(); code != exitError {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, exitError, stderr.String())
			}
			if stderr.String() != tc.wantErr {
				t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), tc.wantErr)
			}
			if !strings.HasSuffix(out, tc.wantOut) {
				t.Errorf("stdout (%d bytes) ends:\n%s\nwant it to end:\n%s", len(out), out[max(0, len(out)-300):], tc.wantOut)
			}
			if n := strings.Count(out, "\n+x"); n >= 2000 && !strings.Contains(strings.Join(tc.args, " "), "json") {
				t.Errorf("stdout holds the whole diff (%d lines), want it cut short", n)
			}
			var files []string
			_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if rel, _ := filepath.Rel(root, p); rel != "." && !strings.HasPrefix(rel, "run") && !strings.HasPrefix(rel, "var") { // not kplay's own state
					files = append(files, rel)
				}
				return err
			})
			if strings.Join(files, " ") != strings.Join(tc.wantFiles, " ") {
				t.Errorf("root holds %q, want %q", files, tc.wantFiles)
			}
		})
	}
}

// TestInterruption: once a signal came, apply's error says so for what
// the mode did, keeps the engine's error where that says it already, and
// keeps a failure of its own; without a signal the error is left as is.
func TestInterruption(t *testing.T) {
	t.Parallel()
	live := t.Context()
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	pos := engine.Pos{File: "p.star", Line: 2, Col: 10}
	atStep := &engine.Error{Pos: pos, Err: &engine.Interrupted{Cause: context.Canceled, During: true}}
	lockErr := fmt.Errorf("lock /run/kplay.lock: interrupted while waiting for the lock, which another kplay run holds (pid 7): %w", context.Canceled)
	own := errors.New("p.star:1:5: file /etc/a: write /etc/a: permission denied")
	done := []engine.Result{{}}
	tests := map[string]struct {
		ctx     context.Context
		mode    string
		results []engine.Result
		err     error
		want    string // "" for no error
	}{
		"no_signal_success":       {ctx: live, mode: "check", results: done},
		"no_signal_error":         {ctx: live, mode: "run", err: own, want: own.Error()},
		"check_after_engine_done": {ctx: cancelled, mode: "check", results: done, want: "check interrupted; nothing was changed (check never writes)"},
		"check_at_a_step":         {ctx: cancelled, mode: "check", err: atStep, want: "p.star:2:10: check interrupted; nothing was changed (check never writes)"},
		"run_after_engine_done":   {ctx: cancelled, mode: "run", results: done, want: "run interrupted after its last step; every step is done"},
		"run_at_a_step":           {ctx: cancelled, mode: "run", results: done, err: atStep, want: atStep.Error()},
		"run_waiting_for_lock":    {ctx: cancelled, mode: "run", err: lockErr, want: lockErr.Error() + "; no step was applied"},
		"own_failure_kept":        {ctx: cancelled, mode: "check", err: own, want: own.Error()},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := interruption(tc.ctx, tc.mode, tc.results, tc.err)
			if again := interruption(tc.ctx, tc.mode, tc.results, got); again != got {
				t.Errorf("a second look changed %v to %v", got, again)
			}
			if got == nil {
				if tc.want != "" {
					t.Fatalf("got no error, want %q", tc.want)
				}
				return
			}
			if got.Error() != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if tc.ctx == cancelled && got != own && !errors.Is(got, context.Canceled) {
				t.Errorf("%v does not wrap context.Canceled", got)
			}
		})
	}
}

// TestInterruptWaitingForLock: a run interrupted while it waits for
// another run's lock says so, names the holder and that no step was
// applied, and exits 1.
func TestInterruptWaitingForLock(t *testing.T) {
	t.Parallel()
	exe := kplayExe(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	holder, err := host.OpenReal(root, true)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	unlock, err := holder.Lock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	lockFile, err := filepath.EvalSymlinks(filepath.Join(root, host.LockFile))
	if err != nil {
		t.Fatal(err)
	}
	pb := filepath.Join(dir, "p.star")
	if err := os.WriteFile(pb, []byte(`file("/etc/a", content = "a\n")`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "run", pb, "--root", root, "--lock-timeout", "1h")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Once kplay has the lock file open, it is waiting for the lock.
	fdDir := filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "fd")
	for deadline := time.Now().Add(time.Minute); !holds(fdDir, lockFile); {
		select {
		case <-done:
			t.Fatalf("kplay ended before waiting for the lock; stderr:\n%s", stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatal("kplay never opened the lock file")
		}
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(time.Minute): // a guard, not a synchronisation
		_ = cmd.Process.Kill()
		t.Fatal("kplay did not end within a minute of SIGINT")
	}
	if code := cmd.ProcessState.ExitCode(); code != exitError {
		t.Errorf("exit %d, want %d", code, exitError)
	}
	want := "kplay: lock /run/kplay.lock: interrupted while waiting for the lock, which another kplay run holds (pid " + strconv.Itoa(os.Getpid()) + "); no step was applied\n"
	if stderr.String() != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), want)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/a")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("/etc/a: %v, want it not made", err)
	}
}

// holds reports whether a descriptor in fdDir (/proc/PID/fd) is open on
// name.
func holds(fdDir, name string) bool {
	fds, _ := os.ReadDir(fdDir)
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && target == name {
			return true
		}
	}
	return false
}
