package main

import (
	"bufio"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// kplayExe returns a path that runs this test binary as kplay (TestMain
// dispatches on the name it is called by), for tests that need a real
// process: one to send signals to.
func kplayExe(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(t.TempDir(), "kplay")
	if err := os.Symlink(self, exe); err != nil {
		t.Fatal(err)
	}
	return exe
}

// TestSignalEndsKplay: SIGINT or SIGTERM ends kplay promptly with exit 1
// wherever it is (issue 11, item 4): evaluating a slow loop, stuck in one
// operation that never returns, or waiting in a step of run. A run
// stops between steps: what it wrote before is whole, and no temp file is
// left.
func TestSignalEndsKplay(t *testing.T) {
	t.Parallel()
	exe := kplayExe(t)
	// A server that never answers, for the step run is waiting in; it
	// says when the wait has begun.
	asked := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)

	tests := map[string]struct {
		mode, playbook string
		sig            syscall.Signal
		ready          func(stderr *bufio.Reader) // returns once kplay is where the test wants it
		wantErr        string
		wantFiles      []string // in the root afterwards
	}{
		"evaluating": {
			mode: "check",
			playbook: `print("started")
def spin():
    s = "x" * (8 << 20)
    n = 0
    for i in range(1 << 30):
        n += s.count("y")
    return n
spin()
`,
			sig:     syscall.SIGINT,
			wantErr: "interrupted",
		},
		"stuck_in_one_operation": {
			mode: "check",
			playbook: `print("started")
def tree(n):
    t = ()
    for i in range(n):
        t = (t, t)
    return t
d = {tree(100): 1}
`,
			sig: syscall.SIGTERM,
			// Abandoned, or cancelled before the hash began: either
			// way at once. bad_bounds_time.txtar holds the message.
			wantErr: "interrupted",
		},
		"running_a_step": {
			mode: "run",
			playbook: `file("/etc/a", content = "a\n" * 1000)
wait_http("` + srv.URL + `/healthz", timeout = "1h")
file("/etc/b", content = "b\n")
`,
			sig:       syscall.SIGTERM,
			wantErr:   "p.star:2:10: interrupted during this step; the steps before it are done (run again to finish)",
			wantFiles: []string{"etc", "etc/a"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			root := filepath.Join(dir, "root")
			if err := os.MkdirAll(root, 0o755); err != nil {
				t.Fatal(err)
			}
			playbook := filepath.Join(dir, "p.star")
			if err := os.WriteFile(playbook, []byte(tc.playbook), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(exe, tc.mode, playbook, "--root", root, "--lock-timeout", "1s")
			cmd.Env = append(os.Environ(), "NO_COLOR=1")
			pipe, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			stderr := bufio.NewReader(pipe)
			if tc.mode == "run" {
				<-asked
			} else if line, err := stderr.ReadString('\n'); err != nil || !strings.HasSuffix(line, ": started\n") {
				t.Fatalf("first line of stderr %q, %v; want the playbook's print", line, err)
			}
			sent := time.Now()
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			rest, _ := io.ReadAll(stderr)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var werr error
			select {
			case werr = <-done:
			case <-time.After(time.Minute): // a guard, not a synchronisation
				_ = cmd.Process.Kill()
				t.Fatalf("kplay did not end within a minute of %v; stderr:\n%s", tc.sig, rest)
			}
			t.Logf("ended %v after %v", tc.sig, time.Since(sent).Round(time.Millisecond))
			if code := cmd.ProcessState.ExitCode(); code != exitError {
				t.Errorf("exit %d (%v), want %d; stderr:\n%s", code, werr, exitError, rest)
			}
			if !strings.Contains(string(rest), tc.wantErr) {
				t.Errorf("stderr:\n%s\nwant it to say %q", rest, tc.wantErr)
			}
			var files []string
			_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if rel, _ := filepath.Rel(root, p); rel != "." && !strings.HasPrefix(rel, "run") && !strings.HasPrefix(rel, "var") { // not kplay's own state
					files = append(files, rel)
				}
				return err
			})
			if strings.Join(files, " ") != strings.Join(tc.wantFiles, " ") {
				t.Errorf("root holds %q, want %q", files, tc.wantFiles)
			}
			if len(tc.wantFiles) > 0 {
				if data, err := os.ReadFile(filepath.Join(root, "etc/a")); err != nil || string(data) != strings.Repeat("a\n", 1000) {
					t.Errorf("/etc/a: %d bytes, %v; want it whole", len(data), err)
				}
			}
		})
	}
}

// TestFatalErrorIsNotExit2: a fatal error of the Go runtime, which the
// bounds exist to prevent, ends kplay with SIGABRT rather than Go's exit
// status 2, which check uses for "changes found"; and it writes no core
// file, as kplay's memory can hold secrets.
func TestFatalErrorIsNotExit2(t *testing.T) {
	t.Parallel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	exe := filepath.Join(dir, "kplay-fatal")
	if err := os.Symlink(self, exe); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGABRT {
		t.Errorf("kplay ended with %v (exit %d), want killed by SIGABRT; output:\n%s", cmd.ProcessState, cmd.ProcessState.ExitCode(), out)
	}
	if !strings.Contains(string(out), "fatal error: sync: unlock of unlocked mutex") {
		t.Errorf("output:\n%s\nwant Go's fatal error", out)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "core") {
			t.Errorf("a core file was written: %s", e.Name())
		}
	}
}
