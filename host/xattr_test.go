package host

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// aclNamedUser is a POSIX ACL in the kernel's xattr form (version 2):
// user::rw-, user:1234:r--, group::r--, mask::r--, other::r--.
var aclNamedUser = []byte{
	2, 0, 0, 0,
	1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, // ACL_USER_OBJ rw-
	2, 0, 4, 0, 0xd2, 0x04, 0, 0, // ACL_USER 1234 r--
	4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, // ACL_GROUP_OBJ r--
	0x10, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, // ACL_MASK r--
	0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, // ACL_OTHER r--
}

// TestWriteKeepsLabelsAndACL: replacing a file keeps its SELinux label
// and its ACL, set here as raw extended attributes on the fake root, and
// drops its file capabilities, which belonged to the old content (issue
// 12, item 7). The playbook's mode wins over the ACL's mode bits.
func TestWriteKeepsLabelsAndACL(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	path := filepath.Join(root, "etc/kubernetes/x.conf")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const label = "system_u:object_r:kubernetes_file_t:s0\x00"
	attrs := map[string][]byte{
		"security.selinux":        []byte(label),
		"system.posix_acl_access": aclNamedUser,
		// VFS capability v2, cap_net_bind_service: kept with old content? no.
		"security.capability": {0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	}
	for name, value := range attrs {
		if err := unix.Setxattr(path, name, value, 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) {
				t.Skipf("the file system of %s does not take %s here: %v", root, name, err)
			}
			t.Fatalf("set %s: %v", name, err)
		}
	}
	r, err := OpenReal(root, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.WriteFile(t.Context(), "/etc/kubernetes/x.conf", []byte("new\n"), 0o640, -1, -1); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != "new\n" {
		t.Fatalf("content %q", data)
	}
	for name, want := range map[string][]byte{"security.selinux": []byte(label), "system.posix_acl_access": nil} {
		got, err := xattrBuffer(func(b []byte) (int, error) { return unix.Getxattr(path, name, b) })
		if err != nil {
			t.Errorf("%s after the write: %v (the replacement lost it)", name, err)
			continue
		}
		if want != nil && !bytes.Equal(got, want) {
			t.Errorf("%s after the write: %q, want %q", name, got, want)
		}
	}
	if _, err := xattrBuffer(func(b []byte) (int, error) { return unix.Getxattr(path, "security.capability", b) }); !errors.Is(err, unix.ENODATA) {
		t.Errorf("security.capability after the write: %v, want it gone (it belonged to the old content)", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 (the playbook's, over the ACL's)", fi.Mode().Perm())
	}
}
