package builtins

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/etcdv2"
	"github.com/kplay-dev/kplay/host/roottest"
)

func TestFileCreateThenUnchanged(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	plan := mustEvaluate(t, `file("/etc/flannel/options.env", content = "FLANNELD_IFACE=10.0.0.10\n")`)

	if got := actions(mustApply(t, plan, root, true)); !slices.Equal(got, []string{"create"}) {
		t.Fatalf("check: got %v, want [create]", got)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc")); !os.IsNotExist(err) {
		t.Fatalf("check wrote into the root: %v", err)
	}
	if got := actions(mustApply(t, plan, root, false)); !slices.Equal(got, []string{"create"}) {
		t.Fatalf("run: got %v, want [create]", got)
	}
	name := filepath.Join(root, "etc/flannel/options.env")
	if got := readFile(t, name); got != "FLANNELD_IFACE=10.0.0.10\n" {
		t.Errorf("content: got %q", got)
	}
	if got := perm(t, name); got != 0o644 {
		t.Errorf("mode: got %04o, want 0644", got)
	}
	if got := perm(t, filepath.Join(root, "etc/flannel")); got != 0o755 {
		t.Errorf("parent mode: got %04o, want 0755", got)
	}
	for _, dry := range []bool{true, false} {
		if got := actions(mustApply(t, plan, root, dry)); !slices.Equal(got, []string{"-"}) {
			t.Errorf("second pass (dry=%v): got %v, want unchanged", dry, got)
		}
	}
}

func TestFileUpdateWithDiff(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	roottest.WriteFile(t, filepath.Join(root, "etc/motd"), "old\nsame\n", 0o644)
	plan := mustEvaluate(t, `file("/etc/motd", content = "new\nsame\n", owner = 0, group = 0)`)
	results := mustApply(t, plan, root, false)
	c := results[0].Change
	if c.Action != engine.Update || c.Summary != "content changed" {
		t.Fatalf("got %v %q, want update \"content changed\"", c.Action, c.Summary)
	}
	if string(c.Before) != "old\nsame\n" || string(c.After) != "new\nsame\n" {
		t.Errorf("before/after: got %q → %q", c.Before, c.After)
	}
	if got := readFile(t, filepath.Join(root, "etc/motd")); got != "new\nsame\n" {
		t.Errorf("content after run: got %q", got)
	}
}

func TestFileModeAndOwnerDrift(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	uid, gid := os.Getuid(), os.Getgid()
	src := fmt.Sprintf(`file("/etc/kubernetes/ssl/apiserver-key.pem", content = "KEY", mode = 0o600, owner = %d, group = %d)`, uid, gid)
	plan := mustEvaluate(t, src)
	mustApply(t, plan, root, false)
	name := filepath.Join(root, "etc/kubernetes/ssl/apiserver-key.pem")
	if err := os.Chmod(name, 0o644); err != nil {
		t.Fatal(err)
	}
	results := mustApply(t, plan, root, true)
	if c := results[0].Change; c.Action != engine.Update || c.Summary != "mode 0644 → 0600" {
		t.Fatalf("got %v %q, want update \"mode 0644 → 0600\"", c.Action, c.Summary)
	}
	if !results[0].Change.Sensitive {
		t.Error("a -key.pem file is not sensitive")
	}
	mustApply(t, plan, root, false)
	if got := perm(t, name); got != 0o600 {
		t.Errorf("mode after run: got %04o, want 0600", got)
	}

	if os.Getuid() != 0 {
		t.Skip("owner drift needs root to chown")
	}
	if err := os.Chown(name, 1234, 1234); err != nil {
		t.Fatal(err)
	}
	results = mustApply(t, plan, root, false)
	want := fmt.Sprintf("owner 1234:1234 → %d:%d", uid, gid)
	if c := results[0].Change; c.Action != engine.Update || c.Summary != want {
		t.Fatalf("got %v %q, want update %q", c.Action, c.Summary, want)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(name, &st); err != nil {
		t.Fatal(err)
	}
	if int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("owner after run: got %d:%d, want %d:%d", st.Uid, st.Gid, uid, gid)
	}
}

func TestFileOwnerByNameFromRootPasswd(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("chown to another user needs root")
	}
	root := t.TempDir()
	roottest.WriteFile(t, filepath.Join(root, "etc/passwd"), "root:x:0:0::/root:/bin/sh\netcd:x:232:232::/var/lib/etcd:/sbin/nologin\n", 0o644)
	roottest.WriteFile(t, filepath.Join(root, "etc/group"), "root:x:0:\netcd:x:232:\n", 0o644)
	plan := mustEvaluate(t, `file("/var/lib/etcd/x", content = "x", owner = "etcd", group = "etcd")`)
	mustApply(t, plan, root, false)
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(root, "var/lib/etcd/x"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 232 || st.Gid != 232 {
		t.Errorf("owner: got %d:%d, want 232:232 from the root's /etc/passwd", st.Uid, st.Gid)
	}
}

func TestFileUnknownOwnerFailsBeforeAnyWrite(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	plan := mustEvaluate(t, `
file("/etc/first", content = "written first?")
file("/etc/second", content = "x", owner = "nobody-here")
`)
	_, err := apply(t, plan, root, false)
	if err == nil || !regexp.MustCompile(`^play\.star:3:5: file /etc/second: .*"nobody-here"`).MatchString(relErr(err)) {
		t.Fatalf("got %v, want an error at play.star:3:5 naming the owner", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/first")); !os.IsNotExist(err) {
		t.Errorf("run wrote the first file before failing on the second: %v", err)
	}
}

func TestFileSrc(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	name := playbook(t, `file("/etc/kubernetes/ssl/ca.pem", src = "tls/ca.pem")`, map[string]string{"tls/ca.pem": "CERT\n"})
	plan, err := evaluate(t, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, plan, root, false)
	if got := readFile(t, filepath.Join(root, "etc/kubernetes/ssl/ca.pem")); got != "CERT\n" {
		t.Errorf("got %q, want the src's content", got)
	}

	// src is read at diff time: evaluation succeeds without it, the
	// diff fails with a message naming it.
	missing := playbook(t, `file("/etc/x", src = "tls/missing.pem")`, nil)
	plan, err = evaluate(t, missing, nil)
	if err != nil {
		t.Fatalf("evaluate read src: %v", err)
	}
	if _, err := apply(t, plan, root, true); err == nil || !strings.Contains(err.Error(), "tls/missing.pem: no such file") {
		t.Errorf("got %v, want an error naming the missing src", err)
	}
}

func TestFileRefusesPathsLeavingTheRoot(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		setup   func(t *testing.T, root string)
		path    string
		wantErr string
	}{
		"dot_dot":  {path: "/etc/../../x", wantErr: `holds ".."`},
		"relative": {path: "etc/x", wantErr: `is not absolute (write "/etc/x")`},
		// An absolute target is a path in the root (issue 12), but its
		// ".." may not climb above the root either.
		"absolute_symlink_above_slash": {
			setup: func(t *testing.T, root string) {
				if err := os.Symlink("/../..", filepath.Join(root, "escape")); err != nil {
					t.Fatal(err)
				}
			},
			path: "/escape/kplay-escaped", wantErr: "path leaves the root",
		},
		"relative_symlink_chain": {
			setup: func(t *testing.T, root string) {
				if err := os.Symlink("b", filepath.Join(root, "a")); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("../..", filepath.Join(root, "b")); err != nil {
					t.Fatal(err)
				}
			},
			path: "/a/kplay-escaped", wantErr: "path leaves the root",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			outer := t.TempDir()
			root := filepath.Join(outer, "r", "root")
			if err := os.MkdirAll(root, 0o755); err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				tc.setup(t, root)
			}
			plan, err := evaluate(t, playbook(t, fmt.Sprintf("file(%q, content = \"x\")", tc.path), nil), nil)
			if err == nil {
				_, err = apply(t, plan, root, false)
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want error containing %q", err, tc.wantErr)
			}
			if !strings.HasPrefix(relErr(err), "play.star:1:5: ") {
				t.Errorf("error %q does not start with the position", relErr(err))
			}
			if _, err := os.Lstat(filepath.Join(outer, "r", "kplay-escaped")); !os.IsNotExist(err) {
				t.Errorf("a file was written outside the root")
			}
		})
	}
}

func TestFileBadArguments(t *testing.T) {
	t.Parallel()
	tests := map[string]struct{ src, wantErr string }{
		"content_and_src":  {`file("/etc/x", content = "a", src = "b")`, `file: give content or src, not both`},
		"neither":          {`file("/etc/x")`, `file: give content \(the text\) or src`},
		"content_not_text": {`file("/etc/x", content = 3)`, `file: for parameter "content": got int, want string`},
		"path_not_string":  {`file(3, content = "a")`, `file: for parameter path: got int, want string`},
		"mode_not_int":     {`file("/etc/x", content = "a", mode = "0644")`, `want int \(write a mode in octal such as 0o644\)`},
		"mode_too_big":     {`file("/etc/x", content = "a", mode = 0o17777)`, `is not a file mode`},
		"unclean_path":     {`file("/etc//x", content = "a")`, `is not clean \(write "/etc/x"\)`},
		"bad_owner":        {`file("/etc/x", content = "a", owner = "a:b")`, `is not a user or group name`},
		"bad_tags":         {`file("/etc/x", content = "a", tags = ["API"])`, `tag "API" must be lowercase`},
		"bad_on_change":    {`file("/etc/x", content = "a", on_change = ["x"])`, `got string in list, want a step`},
		"sensitive_string": {`file("/etc/x", content = "a", sensitive = "yes")`, `sensitive"?: got string, want bool`},
		"unknown_kwarg":    {`file("/etc/x", content = "a", mod = 0o600)`, `unexpected keyword argument "mod"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := evaluate(t, playbook(t, "\n"+tc.src, nil), nil)
			if err == nil {
				t.Fatal("got no error")
			}
			msg := relErr(err)
			if !strings.HasPrefix(msg, "play.star:2:5: ") {
				t.Errorf("got %q, want it to start with play.star:2:5:", msg)
			}
			if !regexp.MustCompile(tc.wantErr).MatchString(msg) {
				t.Errorf("got %q, want match for %q", msg, tc.wantErr)
			}
		})
	}
}

func matches(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }

// relErr returns the error message with the temp directory of the
// playbook cut, so positions read "play.star:1:5".
func relErr(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "play.star:"); i >= 0 {
		return msg[i:]
	}
	return msg
}

func TestFileSetuidSurvivesOwnerFix(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("chown to another owner needs root")
	}
	root := t.TempDir()
	plan := mustEvaluate(t, `file("/usr/local/bin/tool", content = "#!/bin/sh\n", mode = 0o4755, owner = 0, group = 0)`)
	mustApply(t, plan, root, false)
	name := filepath.Join(root, "usr/local/bin/tool")
	if err := os.Chown(name, 1234, 1234); err != nil {
		t.Fatal(err)
	}
	// The kernel cleared setuid on that chown: both drifts show, and
	// one run fixes both.
	results := mustApply(t, plan, root, false)
	if c := results[0].Change; c.Summary != "mode 0755 → 4755, owner 1234:1234 → 0:0" {
		t.Fatalf("got %q", c.Summary)
	}
	fi, err := os.Lstat(name)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSetuid == 0 {
		t.Errorf("mode after run: got %v, want setuid kept", fi.Mode())
	}
	if got := actions(mustApply(t, plan, root, true)); !slices.Equal(got, []string{"-"}) {
		t.Errorf("check after run: got %v, want unchanged", got)
	}
}

// TestFileDeclaredTwiceModeGivenOrNot: a mode the secret rule chooses at
// diff time and one given are two declarations, which would flip the
// file's mode at every run (third attack on issue 12).
func TestFileDeclaredTwiceModeGivenOrNot(t *testing.T) {
	t.Parallel()
	_, err := evaluate(t, playbook(t, `file("/etc/app.pem", content = "x\n")`+"\n"+`file("/etc/app.pem", content = "x\n", mode = 0o644)`, nil), nil)
	if err == nil || !strings.Contains(err.Error(), "is declared twice, differently") {
		t.Errorf("got %v, want declared twice", err)
	}
	mustEvaluate(t, `file("/etc/app.pem", content = "x\n", mode = 0o644)`+"\n"+`file("/etc/app.pem", content = "x\n", mode = 0o644)`)
}

// TestNarrowerModeComesBeforeTheNewOwner: a file going from 0660
// root:adm to 0600 root:shadow (same content) is first narrowed to 0600,
// then given its group, then its mode: no moment of the change, which a
// killed run would leave, has the old group bits open to the new group.
func TestNarrowerModeComesBeforeTheNewOwner(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("a group other than one's own needs root")
	}
	root := t.TempDir()
	roottest.WriteFile(t, filepath.Join(root, "etc/group"), "root:x:0:\nadm:x:4:\nshadow:x:42:\n", 0o644)
	roottest.WriteFile(t, filepath.Join(root, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n", 0o644)
	roottest.WriteFile(t, filepath.Join(root, "etc/secret.conf"), "s\n", 0o660)
	if err := os.Chown(filepath.Join(root, "etc/secret.conf"), 0, 4); err != nil {
		t.Fatal(err)
	}
	plan := mustEvaluate(t, `file("/etc/secret.conf", content = "s\n", mode = 0o600, group = "shadow")`)
	real, err := host.OpenReal(root, false, host.WithEtcd(etcdv2.New))
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close()
	dry := host.NewDry(real)
	dry.Record()
	if _, err := engine.Apply(t.Context(), plan, dry, engine.Selection{}, nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, op := range dry.Ops() {
		switch op.Kind {
		case host.OpChmod:
			got = append(got, fmt.Sprintf("chmod %o", op.Perm))
		case host.OpChown:
			got = append(got, fmt.Sprintf("chown %d:%d", op.UID, op.GID))
		default:
			got = append(got, fmt.Sprintf("op %d", op.Kind))
		}
	}
	if want := []string{"chmod 600", "chown 0:42", "chmod 600"}; !slices.Equal(got, want) {
		t.Errorf("the changes: got %q, want %q", got, want)
	}
}
