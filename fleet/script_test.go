package fleet

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runScript runs remoteScript under sh as sshd would, with HOME and
// TMPDIR in the test's directory, the binary and the bundle on stdin;
// it returns stdout and the exit code.
func runScript(t *testing.T, home string, binary []byte, sum, bundle string, send bool) (string, int) {
	t.Helper()
	cmd := exec.Command("sh", "-c", remoteScript(len(binary), sum))
	cmd.Env = []string{"HOME=" + home, "TMPDIR=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	in := []byte(bundle)
	if send {
		in = append(append([]byte{}, binary...), in...)
	}
	cmd.Stdin = bytes.NewReader(in)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

// The bootstrap takes the binary once and keeps it in the user's cache;
// the next run has it. A binary whose sum differs is refused, and a cache
// others may write to is not used.
func TestRemoteScriptCachesTheBinary(t *testing.T) {
	home := t.TempDir()
	// A stand-in for kplay: says how it was started and what it read.
	binary := []byte("#!/bin/sh\necho \"$(basename \"$0\") $1 bundle=$(cat)\"\n")
	s := sha256.Sum256(binary)
	sum := hex.EncodeToString(s[:])

	out, code := runScript(t, home, binary, sum, "B1", true)
	if code != 0 || out != "\n"+bootstrapNeed+"\nkplay agent bundle=B1\n" {
		t.Fatalf("first run: exit %d, %q", code, out)
	}
	cached := filepath.Join(home, ".cache/kplay/bin", sum, "kplay")
	if data, err := os.ReadFile(cached); err != nil || !bytes.Equal(data, binary) {
		t.Fatalf("cache %s: %q %v", cached, data, err)
	}
	out, code = runScript(t, home, binary, sum, "B2", false)
	if code != 0 || out != "\n"+bootstrapHave+"\nkplay agent bundle=B2\n" {
		t.Fatalf("second run: exit %d, %q", code, out)
	}

	// A cached copy that no longer has its sum is not run: the binary is
	// sent again, and the copy replaced.
	corrupt := bytes.Replace(binary, []byte("bundle"), []byte("bUndle"), 1) // the same size
	if err := os.WriteFile(cached, corrupt, 0o700); err != nil {
		t.Fatal(err)
	}
	// Written after the check that made the "ok" mark (a shell's test
	// -nt may compare whole seconds).
	later := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(cached, later, later); err != nil {
		t.Fatal(err)
	}
	out, code = runScript(t, home, binary, sum, "B5", true)
	if code != 0 || out != "\n"+bootstrapNeed+"\nkplay agent bundle=B5\n" {
		t.Fatalf("corrupt cache: exit %d, %q", code, out)
	}
	if data, err := os.ReadFile(cached); err != nil || !bytes.Equal(data, binary) {
		t.Fatalf("the corrupt copy was not replaced: %q %v", data, err)
	}

	// A binary that is not what its sum says: nothing runs.
	other := t.TempDir()
	out, code = runScript(t, other, []byte("#!/bin/sh\necho evil\n"), sum, "B3", true)
	if code != 125 || strings.Contains(out, "evil") {
		t.Fatalf("wrong sum: exit %d, %q; want 125 and nothing run", code, out)
	}

	// A cache directory others may write to is not trusted: the binary
	// is sent again and runs from the private directory.
	if err := os.Chmod(filepath.Join(home, ".cache/kplay/bin"), 0o777); err != nil {
		t.Fatal(err)
	}
	out, code = runScript(t, home, binary, sum, "B4", true)
	if code != 0 || out != "\n"+bootstrapNeed+"\nkplay agent bundle=B4\n" {
		t.Fatalf("writable cache: exit %d, %q", code, out)
	}
}

// The bootstrap line is found after shell noise without a newline, and
// noise is read a buffer at a time: a host that prints without end costs
// bootstrapLimit bytes, not all the memory.
func TestReadBootstrap(t *testing.T) {
	need, err := readBootstrap(bufio.NewReaderSize(strings.NewReader("Welcome to host\n"+bootstrapHave+"\nrest"), 64<<10))
	if err != nil || need {
		t.Fatalf("after noise: need %v, %v", need, err)
	}
	endless := io.LimitReader(infinite('a'), 1<<40)
	if _, err := readBootstrap(bufio.NewReaderSize(endless, 64<<10)); err == nil || !strings.Contains(err.Error(), "no bootstrap line") {
		t.Fatalf("endless noise: %v", err)
	}
}

// A stderr line longer than the limit is cut, and the lines after it
// still come.
func TestReadLinesCutsLongLines(t *testing.T) {
	var got []string
	readLines(strings.NewReader(strings.Repeat("x", 100)+"\nnext\nlast"), 16, func(l string) { got = append(got, l) })
	if len(got) != 3 || got[0] != strings.Repeat("x", 16) || got[1] != "next" || got[2] != "last" {
		t.Fatalf("%q", got)
	}
}

type infinite byte

func (b infinite) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

// A cached binary that cannot be started is removed: the next run is
// sent it again.
func TestRemoteScriptDropsABinaryThatCannotStart(t *testing.T) {
	home := t.TempDir()
	binary := []byte("#!/nonexistent/interpreter\n")
	s := sha256.Sum256(binary)
	sum := hex.EncodeToString(s[:])
	if _, code := runScript(t, home, binary, sum, "", true); code != 126 && code != 127 {
		t.Fatalf("first run: exit %d, want 126 or 127", code)
	}
	out, code := runScript(t, home, binary, sum, "", false)
	if !strings.HasPrefix(out, "\n"+bootstrapHave+"\n") || (code != 126 && code != 127) {
		t.Fatalf("second run: exit %d, %q; want the cached copy tried", code, out)
	}
	if _, err := os.Stat(filepath.Join(home, ".cache/kplay/bin", sum)); !os.IsNotExist(err) {
		t.Fatalf("the cached copy that cannot start is still there: %v", err)
	}
}
