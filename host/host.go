// Package host is the world that plan steps act on: the target root's files
// (through os.Root, so nothing can leave it), files on the machine running
// kplay, and the dry host that check uses. It imports nothing of ours.
package host

import (
	"context"
	"errors"
	"io/fs"
)

// ErrOutsideRoot is wrapped by every error for a path that would leave the
// target root: a ".." element in a name, or a symlink whose ".." climbs
// above the root. A symlink with an absolute target does not leave it:
// the target is a path in the root, as after chroot(2) (see chaser).
var ErrOutsideRoot = errors.New("path leaves the root")

// ErrNoRoot is wrapped by writes to a root directory that does not exist
// (a check against a fresh, not yet created root reads it as empty).
var ErrNoRoot = errors.New("root does not exist")

// FileInfo describes one file inside the root. Symlinks are not followed
// for the final path element.
type FileInfo struct {
	Mode fs.FileMode // type bits and permission bits (0o7777 incl. setuid etc.)
	UID  int
	GID  int
	Size int64
	// Links is the number of hard links to the file (1 for a file made in
	// memory by the dry host; 0 when the system does not say).
	Links int
}

// IsDir reports whether the file is a directory.
func (fi FileInfo) IsDir() bool { return fi.Mode.IsDir() }

// IsRegular reports whether the file is a regular file.
func (fi FileInfo) IsRegular() bool { return fi.Mode.IsRegular() }

// Perm returns the permission bits, including setuid, setgid and sticky.
func (fi FileInfo) Perm() fs.FileMode {
	return fi.Mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

// Host is what a step reads and writes. Names are absolute, clean paths
// inside the target root ("/etc/motd"); a name that is relative or holds a
// ".." element is refused with ErrOutsideRoot. Absent files give errors
// for which errors.Is(err, fs.ErrNotExist) holds.
type Host interface {
	// Root returns the target root directory as given (for messages).
	Root() string
	// Lstat describes name without following a final symlink.
	Lstat(ctx context.Context, name string) (FileInfo, error)
	// ReadFile returns the content of the regular file name.
	ReadFile(ctx context.Context, name string) ([]byte, error)
	// WriteFile replaces name atomically: a temp file in the same
	// directory gets perm and owner before any content is written, then
	// the content, fsync, rename over name, fsync of the directory.
	// Missing parent directories are created with mode 0755.
	WriteFile(ctx context.Context, name string, data []byte, perm fs.FileMode, uid, gid int) error
	// Mkdir creates the directory name with perm and owner (exactly perm,
	// whatever the umask); missing parents are created with mode 0755.
	// An existing directory is not an error and is left as it is.
	Mkdir(ctx context.Context, name string, perm fs.FileMode, uid, gid int) error
	// Chmod sets the permission bits of name.
	Chmod(ctx context.Context, name string, perm fs.FileMode) error
	// Chown sets the owner of name.
	Chown(ctx context.Context, name string, uid, gid int) error
	// ReadLocal reads a file on the machine running kplay, not in the
	// root: the src of a file step. name is absolute or relative to the
	// working directory.
	ReadLocal(ctx context.Context, name string) ([]byte, error)

	// Readlink returns the target of the symlink name, as stored (an
	// absolute target is a path inside the root).
	Readlink(ctx context.Context, name string) (string, error)
	// Symlink creates the symlink name pointing to target (stored as
	// given; it need not exist). Missing parents are created with mode
	// 0755. An existing name is an error.
	Symlink(ctx context.Context, target, name string) error
	// Remove removes the file, symlink or empty directory name.
	Remove(ctx context.Context, name string) error
	// ReadDir returns the names in directory name, sorted.
	ReadDir(ctx context.Context, name string) ([]string, error)

	// Systemd returns the service manager of the target: the offline
	// unit files of the root, or a live systemd over D-Bus.
	Systemd() Systemd

	// Etcd returns a client of the etcd cluster cfg names. It does not
	// connect yet; calls do, with timeouts.
	Etcd(cfg EtcdConfig) (Etcd, error)
	// HTTP returns the HTTP client steps use.
	HTTP() HTTP
	// Kube returns a client of the Kubernetes API server cfg names.
	Kube(cfg KubeConfig) (Kube, error)
}
