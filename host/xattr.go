package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// keptXattr reports whether an extended attribute of a file that kplay
// replaces is carried to the new file: what the machine's policy put on
// the path rather than on the content. The SELinux label
// (security.selinux) and other LSM labels are kept, and so is the POSIX
// ACL. File capabilities and integrity hashes (security.capability,
// security.ima, security.evm) belong to the old content: they are not.
// (Ansible lost labels this way until it copied them across.)
func keptXattr(name string) bool {
	switch name {
	case "security.capability", "security.ima", "security.evm":
		return false
	case "system.posix_acl_access":
		return true
	}
	return strings.HasPrefix(name, "security.")
}

// copyKeptXattrs copies the kept extended attributes of old to f, the
// temp file that replaces it, and reports whether it copied an ACL (the
// caller then sets f's mode again: an ACL carries mode bits, and the
// playbook's mode wins). A file system without extended attributes has
// none to keep.
func copyKeptXattrs(old, f *os.File) (acl bool, err error) {
	names, err := listXattrs(old)
	if err != nil {
		return false, err
	}
	for _, name := range names {
		if !keptXattr(name) {
			continue
		}
		value, err := getXattr(old, name)
		if err != nil {
			return false, fmt.Errorf("read %s: %w", name, err)
		}
		if err := unix.Fsetxattr(int(f.Fd()), name, value, 0); err != nil {
			return false, fmt.Errorf("keep %s: %w", name, err)
		}
		acl = acl || name == "system.posix_acl_access"
	}
	return acl, nil
}

// listXattrs returns the names of f's extended attributes.
func listXattrs(f *os.File) ([]string, error) {
	buf, err := xattrBuffer(func(b []byte) (int, error) { return unix.Flistxattr(int(f.Fd()), b) })
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list extended attributes: %w", err)
	}
	var names []string
	for _, n := range strings.Split(string(buf), "\x00") {
		if n != "" {
			names = append(names, n)
		}
	}
	return names, nil
}

func getXattr(f *os.File, name string) ([]byte, error) {
	return xattrBuffer(func(b []byte) (int, error) { return unix.Fgetxattr(int(f.Fd()), name, b) })
}

// xattrBuffer calls get with a buffer of the size it asks for, again if
// the attribute grew in between.
func xattrBuffer(get func([]byte) (int, error)) ([]byte, error) {
	for {
		n, err := get(nil)
		if err != nil || n == 0 {
			return nil, err
		}
		buf := make([]byte, n)
		n, err = get(buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// openReplaced opens the regular file base in the directory d that a
// write will replace (fi describes it, nil if there is none), to copy its
// kept attributes; nil if it is not a regular file or cannot be opened.
func openReplaced(d *os.Root, base string, fi fs.FileInfo) *os.File {
	if fi == nil || !fi.Mode().IsRegular() {
		return nil
	}
	f, err := d.OpenFile(base, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil
	}
	return f
}
