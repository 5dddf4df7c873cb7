package fleet

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
	if code != 0 || out != bootstrapNeed+"\nkplay agent bundle=B1\n" {
		t.Fatalf("first run: exit %d, %q", code, out)
	}
	cached := filepath.Join(home, ".cache/kplay/bin", sum, "kplay")
	if data, err := os.ReadFile(cached); err != nil || !bytes.Equal(data, binary) {
		t.Fatalf("cache %s: %q %v", cached, data, err)
	}
	out, code = runScript(t, home, binary, sum, "B2", false)
	if code != 0 || out != bootstrapHave+"\nkplay agent bundle=B2\n" {
		t.Fatalf("second run: exit %d, %q", code, out)
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
	if code != 0 || out != bootstrapNeed+"\nkplay agent bundle=B4\n" {
		t.Fatalf("writable cache: exit %d, %q", code, out)
	}
}
