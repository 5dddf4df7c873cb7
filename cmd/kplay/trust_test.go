package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/kplay-dev/kplay/host/roottest"
)

// trustCase is one attack on a root, from issue 10: what is planted in
// the root (or beside it, in outside), the playbook, the command, and what
// kplay must answer. Nothing outside the root may change, whatever the
// case.
type trustCase struct {
	plant    func(t *testing.T, root, outside string)
	playbook string
	// servers, if set, starts the servers the case talks to and returns
	// what replaces each {{NAME}} in playbook. {{DIR}} in playbook and
	// args is the directory of the playbook, root and outside.
	servers func(t *testing.T) map[string]string
	args    []string // the command and its flags; --root is added
	code    int
	stdout  []string // regexps stdout must match
	stderr  []string // regexps stderr must match
	never   []string // regexps neither stdout nor stderr may match
	after   func(t *testing.T, root, outside string)
	output  func(t *testing.T, root, stdout string)
}

// TestTrust runs the attacks of issue 10 on roots in t.TempDir(). Each case
// asserts the exact answer and that nothing outside the root changed.
func TestTrust(t *testing.T) {
	t.Parallel()
	uid := strconv.Itoa(os.Getuid())
	tests := map[string]trustCase{
		"lock_symlink_to_passwd_is_refused": {
			plant: func(t *testing.T, root, _ string) {
				roottest.WriteFile(t, filepath.Join(root, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n", 0o644)
				roottest.Symlink(t, "../etc/passwd", filepath.Join(root, "run/kplay.lock"))
			},
			playbook: `file("/etc/motd", content="hi\n", owner="` + uid + `", group="` + uid + `")`,
			args:     []string{"run"},
			code:     1,
			stderr:   []string{`^kplay: lock /run/kplay.lock: unsafe state file: a symlink \(kplay never follows links for its own files; remove it\)\n$`},
			after: func(t *testing.T, root, _ string) {
				wantContent(t, filepath.Join(root, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n")
				wantAbsent(t, filepath.Join(root, "etc/motd"))
			},
		},
		"dangling_lock_symlink_creates_nothing": {
			plant: func(t *testing.T, root, _ string) {
				roottest.Symlink(t, "../etc/created-by-lock", filepath.Join(root, "run/kplay.lock"))
			},
			playbook: `file("/etc/motd", content="hi\n", owner="` + uid + `", group="` + uid + `")`,
			args:     []string{"run"},
			code:     1,
			stderr:   []string{`lock /run/kplay.lock: unsafe state file: a symlink`},
			after: func(t *testing.T, root, _ string) {
				wantAbsent(t, filepath.Join(root, "etc/created-by-lock"))
			},
		},
		"lock_hard_linked_outside_is_refused": {
			plant: func(t *testing.T, root, outside string) {
				roottest.WriteFile(t, filepath.Join(outside, "shadow"), "secret\n", 0o600)
				mustMkdir(t, filepath.Join(root, "run"))
				mustLink(t, filepath.Join(outside, "shadow"), filepath.Join(root, "run/kplay.lock"))
			},
			playbook: `file("/etc/motd", content="hi\n", owner="` + uid + `", group="` + uid + `")`,
			args:     []string{"run"},
			code:     1,
			stderr:   []string{`lock /run/kplay.lock: unsafe state file: it has other hard links`},
		},
		"lock_fifo_is_refused": {
			plant: func(t *testing.T, root, _ string) {
				mustMkdir(t, filepath.Join(root, "run"))
				if err := syscall.Mkfifo(filepath.Join(root, "run/kplay.lock"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			playbook: `file("/etc/motd", content="hi\n", owner="` + uid + `", group="` + uid + `")`,
			args:     []string{"run"},
			code:     1,
			stderr:   []string{`lock /run/kplay.lock: unsafe state file: a named pipe \(remove it; kplay makes it anew\)`},
		},
		"journal_symlink_is_refused_by_check_and_run": {
			plant: func(t *testing.T, root, _ string) {
				roottest.WriteFile(t, filepath.Join(root, "etc/passwd"), `{"pending":["systemctl restart x.service"]}`, 0o644)
				roottest.Symlink(t, "../../../etc/passwd", filepath.Join(root, "var/lib/kplay/pending.json"))
			},
			playbook: `file("/etc/motd", content="hi\n", owner="` + uid + `", group="` + uid + `")`,
			args:     []string{"run"},
			code:     1,
			stderr:   []string{`read /var/lib/kplay/pending.json: unsafe state file: a symlink`},
			after: func(t *testing.T, root, _ string) {
				wantContent(t, filepath.Join(root, "etc/passwd"), `{"pending":["systemctl restart x.service"]}`)
				wantAbsent(t, filepath.Join(root, "etc/motd"))
			},
		},
		"state_dir_symlink_is_refused": {
			plant: func(t *testing.T, root, _ string) {
				mustMkdir(t, filepath.Join(root, "etc/systemd/system"))
				roottest.Symlink(t, "../../etc/systemd/system", filepath.Join(root, "var/lib/kplay"))
			},
			playbook: `file("/etc/motd", content="hi\n", owner="` + uid + `", group="` + uid + `")`,
			args:     []string{"check"},
			code:     1,
			stderr:   []string{`^kplay: read /var/lib/kplay/pending.json: unsafe state file: /var/lib/kplay is a symlink, not a directory \(kplay never follows links to its own files; make it a directory\)\n$`},
		},
		"var_lib_symlink_on_the_way_is_refused": {
			plant: func(t *testing.T, root, _ string) {
				mustMkdir(t, filepath.Join(root, "etc"))
				roottest.Symlink(t, "../etc", filepath.Join(root, "var/lib"))
			},
			playbook: `file("/etc/a-key.pem", content="k\n", owner="` + uid + `", group="` + uid + `")`,
			args:     []string{"run"},
			code:     1,
			stderr:   []string{`read /var/lib/kplay/pending.json: unsafe state file: /var/lib is a symlink, not a directory`},
			after: func(t *testing.T, root, _ string) {
				wantAbsent(t, filepath.Join(root, "etc/kplay"))
				wantAbsent(t, filepath.Join(root, "etc/a-key.pem"))
			},
		},
		"run_symlink_on_the_way_to_the_lock_is_refused": {
			plant: func(t *testing.T, root, _ string) {
				mustMkdir(t, filepath.Join(root, "etc"))
				roottest.Symlink(t, "etc", filepath.Join(root, "run"))
			},
			playbook: `file("/etc/motd", content="hi\n", owner="` + uid + `", group="` + uid + `")`,
			args:     []string{"run"},
			code:     1,
			stderr:   []string{`^kplay: lock /run/kplay.lock: unsafe state file: /run is a symlink, not a directory`},
			after: func(t *testing.T, root, _ string) {
				wantAbsent(t, filepath.Join(root, "etc/kplay.lock"))
				wantAbsent(t, filepath.Join(root, "etc/motd"))
			},
		},
		"journal_readable_by_others_is_closed": {
			plant: func(t *testing.T, root, _ string) {
				roottest.WriteFile(t, filepath.Join(root, "var/lib/kplay/pending.json"), `{"pending":["systemctl restart x.service"]}`, 0o644)
			},
			playbook: `f = file("/etc/a", content="a\n", owner="` + uid + `", group="` + uid + `", tags=["x"])` + "\n" +
				`systemctl("restart", "x.service", on_change=[f], tags=["y"])`,
			args:   []string{"run", "--tags", "x", "-v"},
			stdout: []string{`systemctl restart x.service: skipped \(not selected by tags\)`},
			after: func(t *testing.T, root, _ string) {
				wantMode(t, filepath.Join(root, "var/lib/kplay/pending.json"), 0o600)
				wantContent(t, filepath.Join(root, "var/lib/kplay/pending.json"), "{\n  \"pending\": [\n    \"systemctl restart x.service\"\n  ]\n}\n")
			},
		},
		"fingerprint_key_readable_by_others_is_replaced": {
			plant: func(t *testing.T, root, _ string) {
				roottest.WriteFile(t, filepath.Join(root, "var/lib/kplay/fingerprint.key"), "0123456789abcdef0123456789abcdef", 0o644)
			},
			playbook: `file("/etc/a-key.pem", content="k\n", owner="` + uid + `", group="` + uid + `")`,
			args:     []string{"run"},
			stdout:   []string{`^  \(sensitive, 2 bytes, fingerprint [0-9a-f]{16}\)$`},
			after: func(t *testing.T, root, _ string) {
				key := filepath.Join(root, "var/lib/kplay/fingerprint.key")
				wantMode(t, key, 0o600)
				if data, _ := os.ReadFile(key); string(data) == "0123456789abcdef0123456789abcdef" {
					t.Error("the key that others could read is still in use")
				}
			},
		},
		"an_owed_reload_with_no_step_does_not_crash": {
			plant: func(t *testing.T, root, _ string) {
				roottest.WriteFile(t, filepath.Join(root, "var/lib/kplay/pending.json"), `{"pending":["systemctl daemon-reload"]}`, 0o600)
			},
			playbook: `print("x")`,
			args:     []string{"check", "-v"},
			stdout:   []string{`/trust.star:1:1: systemctl daemon-reload: skipped \(offline root\)$`},
		},
		"fingerprint_key_of_the_wrong_size_is_replaced": {
			plant: func(t *testing.T, root, _ string) {
				roottest.WriteFile(t, filepath.Join(root, "var/lib/kplay/fingerprint.key"), "", 0o600)
			},
			playbook: `file("/etc/a-key.pem", content="k\n", owner="` + uid + `", group="` + uid + `")`,
			args:     []string{"run"},
			stdout:   []string{`^  \(sensitive, 2 bytes, fingerprint [0-9a-f]{16}\)$`},
			after: func(t *testing.T, root, _ string) {
				if data, _ := os.ReadFile(filepath.Join(root, "var/lib/kplay/fingerprint.key")); len(data) != 32 {
					t.Errorf("the key has %d bytes after the run, want 32", len(data))
				}
			},
		},
		"mode_change_of_hard_link_leaves_outside_file": {
			plant: func(t *testing.T, root, outside string) {
				roottest.WriteFile(t, filepath.Join(outside, "motd"), "hi\n", 0o644)
				mustMkdir(t, filepath.Join(root, "etc"))
				mustLink(t, filepath.Join(outside, "motd"), filepath.Join(root, "etc/motd"))
				if err := os.Chown(filepath.Join(outside, "motd"), os.Getuid(), os.Getgid()); err != nil {
					t.Fatal(err)
				}
			},
			playbook: `file("/etc/motd", content="hi\n", mode=0o600, owner="` + uid + `", group="` + uid + `")`,
			args:     []string{"run"},
			stdout:   []string{`file /etc/motd: updated \(mode 0644 → 0600\)`},
			after: func(t *testing.T, root, outside string) {
				fi := wantMode(t, filepath.Join(root, "etc/motd"), 0o600)
				if n := fi.Sys().(*syscall.Stat_t).Nlink; n != 1 {
					t.Errorf("/etc/motd has %d links after the run, want 1 (a new file)", n)
				}
				wantContent(t, filepath.Join(root, "etc/motd"), "hi\n")
			},
		},
	}
	if os.Geteuid() == 0 {
		tests["owner_change_of_hard_link_leaves_outside_file"] = trustCase{
			plant: func(t *testing.T, root, outside string) {
				roottest.WriteFile(t, filepath.Join(outside, "motd"), "hi\n", 0o644)
				mustMkdir(t, filepath.Join(root, "etc"))
				mustLink(t, filepath.Join(outside, "motd"), filepath.Join(root, "etc/motd"))
			},
			playbook: `file("/etc/motd", content="hi\n", owner="1", group="1")`,
			args:     []string{"run"},
			stdout:   []string{`file /etc/motd: updated \(owner 0:0 → 1:1\)`},
			after: func(t *testing.T, root, outside string) {
				fi, err := os.Stat(filepath.Join(root, "etc/motd"))
				if err != nil {
					t.Fatal(err)
				}
				if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1 || st.Gid != 1 || st.Nlink != 1 {
					t.Errorf("/etc/motd is %d:%d with %d links, want 1:1 with 1", st.Uid, st.Gid, st.Nlink)
				}
			},
		}
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runTrustCase(t, tc)
		})
	}
}

func runTrustCase(t *testing.T, tc trustCase) {
	t.Helper()
	dir := t.TempDir()
	root, outside := filepath.Join(dir, "root"), filepath.Join(dir, "outside")
	mustMkdir(t, root)
	mustMkdir(t, outside)
	if tc.plant != nil {
		tc.plant(t, root, outside)
	}
	before, err := treeListing(outside, nil)
	if err != nil {
		t.Fatal(err)
	}
	src := strings.ReplaceAll(tc.playbook, "{{DIR}}", dir)
	if tc.servers != nil {
		for name, value := range tc.servers(t) {
			src = strings.ReplaceAll(src, "{{"+name+"}}", value)
		}
	}
	playbook := filepath.Join(dir, "trust.star")
	roottest.WriteFile(t, playbook, src+"\n", 0o644)
	args := []string{}
	for _, a := range tc.args {
		args = append(args, strings.ReplaceAll(a, "{{DIR}}", dir))
	}
	args = append(args, playbook, "--root", root)
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, &stdout, &stderr)
	if code != tc.code {
		t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout.String(), stderr.String())
	}
	for _, re := range tc.stdout {
		if !regexp.MustCompile("(?m)" + re).Match(stdout.Bytes()) {
			t.Errorf("stdout does not match %q:\n%s", re, stdout.String())
		}
	}
	for _, re := range tc.stderr {
		if !regexp.MustCompile("(?m)" + re).Match(stderr.Bytes()) {
			t.Errorf("stderr does not match %q:\n%s", re, stderr.String())
		}
	}
	for _, re := range tc.never {
		for _, out := range []*bytes.Buffer{&stdout, &stderr} {
			if loc := regexp.MustCompile(re).FindIndex(out.Bytes()); loc != nil {
				t.Errorf("output shows %q:\n%s", out.Bytes()[loc[0]:loc[1]], out.String())
			}
		}
	}
	after, err := treeListing(outside, nil)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("the run changed a file outside the root:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if tc.after != nil {
		tc.after(t, root, outside)
	}
	if tc.output != nil {
		tc.output(t, root, stdout.String())
	}
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustLink(t *testing.T, old, name string) {
	t.Helper()
	if err := os.Link(old, name); err != nil {
		t.Fatal(err)
	}
}

func wantContent(t *testing.T, name, want string) {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != want {
		t.Errorf("%s holds %q, want %q", name, data, want)
	}
}

func wantAbsent(t *testing.T, name string) {
	t.Helper()
	if _, err := os.Lstat(name); !os.IsNotExist(err) {
		t.Errorf("%s exists (err %v), want it absent", name, err)
	}
}

func wantMode(t *testing.T, name string, want os.FileMode) os.FileInfo {
	t.Helper()
	fi, err := os.Lstat(name)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Errorf("%s has mode %v, want %v", name, fi.Mode().Perm(), want)
	}
	return fi
}
