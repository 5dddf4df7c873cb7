package host

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// chrootTree is an image root with the symlinks CoreOS and Kubernetes
// images hold (absolute targets, meant inside the root), relative ones,
// chains of both, and links that dangle, loop or lead to a file.
var chrootTree = unitTree{
	"/etc/cni/net.d/10-calico.conf":       "calico\n",
	"/etc/kubernetes/cni/net.d":           "-> /etc/cni/net.d",
	"/etc/resolv.conf":                    "-> /run/systemd/resolve/resolv.conf",
	"/run/systemd/resolve/resolv.conf":    "nameserver 10.0.0.1\n",
	"/etc/nsswitch.conf":                  "-> ../usr/share/baselayout/nsswitch.conf",
	"/usr/share/baselayout/nsswitch.conf": "passwd: files usrfiles\n",
	"/lib":                                "-> usr/lib",
	"/lib64":                              "-> /usr/lib",
	"/usr/lib/os-release":                 "ID=coreos\n",
	"/etc/os-release":                     "-> /lib64/../lib/os-release",
	"/var/lib/docker":                     "-> /media/state/docker",
	"/media/state/docker/":                "",
	"/opt/bin":                            "-> /usr/local/bin/",
	"/usr/local/bin/kubectl":              "kubectl\n",
	"/etc/self":                           "-> /etc",
	"/etc/dangling":                       "-> /nonexistent/file",
	"/etc/tofile":                         "-> /usr/lib/os-release",
	"/etc/loop":                           "-> /etc/loop",
	"/etc/rel-dotdot":                     "-> ../etc/cni/../cni/net.d",
	"/srv/abs-dotdot":                     "-> /srv/../etc/cni",
}

// chrootNames are names in chrootTree whose resolution never climbs
// above the root, so that the kernel's RESOLVE_IN_ROOT (which stops
// ".." at the root) and kplay (which refuses such a "..") must agree.
var chrootNames = []string{
	"/etc/kubernetes/cni/net.d",
	"/etc/kubernetes/cni/net.d/10-calico.conf",
	"/etc/kubernetes/cni/net.d/missing.conf",
	"/etc/resolv.conf",
	"/etc/nsswitch.conf",
	"/lib/os-release",
	"/lib64/os-release",
	"/etc/os-release",
	"/var/lib/docker",
	"/var/lib/docker/new",
	"/opt/bin/kubectl",
	"/etc/self/self/self/cni/net.d/10-calico.conf",
	"/etc/dangling",
	"/etc/dangling/x",
	"/etc/tofile",
	"/etc/tofile/x",
	"/etc/loop",
	"/etc/rel-dotdot/10-calico.conf",
	"/srv/abs-dotdot/net.d/10-calico.conf",
	"/etc/missing-dotdot/cni/net.d/10-calico.conf",
	"/etc/file-dotdot",
	"/etc/w/f",
	"/etc/s1",
	"/etc/s2",
	"/etc/s3",
	"/etc/d1",
	"/etc/d1/x",
}

// TestChaseAgreesWithTheKernel holds chaser, and Real and Dry through it,
// to Linux's own resolution in a root: openat2(2) with RESOLVE_IN_ROOT
// treats the directory as the root for absolute targets, as chroot(2)
// does. For every name, a read gives the same content or the same errno,
// and an lstat the same kind of file.
func TestChaseAgreesWithTheKernel(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	buildTree(t, dir, chrootTree)
	rootFD, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootFD)
	if _, err := unix.Openat2(rootFD, ".", &unix.OpenHow{Flags: unix.O_PATH, Resolve: unix.RESOLVE_IN_ROOT}); errors.Is(err, unix.ENOSYS) {
		t.Skip("openat2(2) is not in this kernel")
	}
	real := openReal(t, dir)
	hosts := map[string]Host{"real": real, "dry": NewDry(real)}
	for _, name := range chrootNames {
		wantData, wantReadErr := kernelRead(rootFD, name)
		wantMode, wantLstatErr := kernelLstat(rootFD, name, unix.O_NOFOLLOW)
		wantStatMode, wantStatErr := kernelLstat(rootFD, name, 0)
		for kind, h := range hosts {
			data, err := h.ReadFile(t.Context(), name)
			if got := errnoOf(err); got != wantReadErr || string(data) != wantData {
				t.Errorf("%s: read %s: got %q, %v; the kernel reads %q, %v", kind, name, data, err, wantData, wantReadErr)
			}
			fi, err := h.Lstat(t.Context(), name)
			if got := errnoOf(err); got != wantLstatErr || err == nil && fi.Mode.Type() != wantMode {
				t.Errorf("%s: lstat %s: got %v, %v; the kernel says %v, %v", kind, name, fi.Mode.Type(), err, wantMode, wantLstatErr)
			}
			fi, err = Stat(t.Context(), h, name)
			if got := errnoOf(err); got != wantStatErr || err == nil && fi.Mode.Type() != wantStatMode {
				t.Errorf("%s: stat %s: got %v, %v; the kernel says %v, %v", kind, name, fi.Mode.Type(), err, wantStatMode, wantStatErr)
			}
		}
	}
}

// kernelRead reads name in the root rootFD with RESOLVE_IN_ROOT: its
// content, or the errno of the open or of the read (EISDIR).
func kernelRead(rootFD int, name string) (string, error) {
	fd, err := unix.Openat2(rootFD, name, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return "", err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return "", errnoOf(err)
	}
	return string(data), nil
}

// kernelLstat is the type of name in the root rootFD, or the errno; its
// last symlink is followed unless flags holds O_NOFOLLOW.
func kernelLstat(rootFD int, name string, flags uint64) (fs.FileMode, error) {
	fd, err := unix.Openat2(rootFD, name, &unix.OpenHow{Flags: unix.O_PATH | flags | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return fs.ModeDir, nil
	case unix.S_IFLNK:
		return fs.ModeSymlink, nil
	}
	return 0, nil
}

// errnoOf is the syscall.Errno that err wraps, or nil.
func errnoOf(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	if err != nil {
		return fmt.Errorf("not an errno: %w", err)
	}
	return nil
}

// TestChaseRefusesDotDotAboveTheRoot: where the kernel would stop ".."
// at the root, kplay refuses the name (issue 12: ".." chains still may
// not leave the root), unless clamp is set, as for systemd's units.
func TestChaseRefusesDotDotAboveTheRoot(t *testing.T) {
	t.Parallel()
	tree := map[string]string{"/up": "../..", "/abs": "/../etc", "/in": "/etc/../etc"}
	c := chaser{
		lstat: func(p string) (FileInfo, error) {
			if _, ok := tree[p]; ok {
				return FileInfo{Mode: fs.ModeSymlink}, nil
			}
			if p == "/etc" {
				return FileInfo{Mode: fs.ModeDir}, nil
			}
			return FileInfo{}, fs.ErrNotExist
		},
		readlink: func(p string) (string, error) { return tree[p], nil },
	}
	for name, want := range map[string]string{"/up/x": "", "/abs/x": "", "/in/x": "/etc/x"} {
		got, err := c.chase(name)
		if want == "" && !errors.Is(err, ErrOutsideRoot) || want != "" && (err != nil || got != want) {
			t.Errorf("chase %s: got %q, %v; want %q", name, got, err, want)
		}
		clamped := c
		clamped.clamp = true
		if got, err := clamped.chase(name); err != nil || !path.IsAbs(got) {
			t.Errorf("clamped chase %s: got %q, %v", name, got, err)
		}
	}
}
