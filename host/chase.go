package host

import (
	"context"
	"errors"
	"io/fs"
	"path"
	"slices"
	"strings"
	"syscall"
)

// maxSymlinks is how many symlinks one lookup may go through: Linux's
// MAXSYMLINKS, which systemd's chase follows too.
const maxSymlinks = 40

// chaser resolves a path in a root as the kernel does after chroot(2)
// into the root: each symlink on the way is followed, a relative target
// from the link's directory and an absolute one from the root itself, so
// "/etc/kubernetes/cni/net.d -> /etc/cni/net.d" in an image leads to
// ROOT/etc/cni/net.d, never to the machine's /etc.
//
// kplay writes its own rather than use openat2(2)'s RESOLVE_IN_ROOT,
// which resolves alike: that gives a descriptor, not a path that os.Root's
// operations (and Dry's records) can take, and it lets ".." climb to the
// root and stop there where kplay's files must refuse it. The test
// TestChaseAgreesWithTheKernel holds it to RESOLVE_IN_ROOT.
type chaser struct {
	// lstat describes p, an absolute path in the root whose directories
	// hold no symlink. An error wrapping fs.ErrNotExist or
	// syscall.ENOTDIR ends the walk; any other is returned.
	lstat func(p string) (FileInfo, error)
	// readlink is the target of the symlink p.
	readlink func(p string) (string, error)
	// keepLast keeps a symlink that is the last element, as lstat(2)
	// and unlink(2) do; otherwise it is followed too.
	keepLast bool
	// clamp makes ".." at the root stay there, as the kernel and
	// systemd's chase do; otherwise it gives ErrOutsideRoot.
	clamp bool
}

// chase returns name (absolute, clean) with the symlinks on its way
// resolved. At the first element that is missing, or under one that is
// not a directory, the rest is appended as it is: the path need not exist,
// and the operation that follows meets the error itself; but when a ".."
// is left in the rest, the kernel's error (ENOENT, ENOTDIR) is returned,
// as the kernel never goes up from what is not there. More than
// maxSymlinks symlinks give syscall.ELOOP. Errors are bare.
func (c chaser) chase(name string) (string, error) {
	rest := splitPath(name)
	cur, curDir := "/", true
	for links := 0; len(rest) > 0; {
		elem := rest[0]
		rest = rest[1:]
		switch {
		case elem == "." || elem == "..":
			// "." is left only by a target that ends in "/" or "/.":
			// what it names must be a directory, as must what ".."
			// climbs from.
			if !curDir && !c.clamp {
				return "", syscall.ENOTDIR
			}
			if elem == "." {
				continue
			}
			if cur == "/" && !c.clamp {
				return "", ErrOutsideRoot
			}
			cur, curDir = path.Dir(cur), true
			continue
		}
		next := path.Join(cur, elem)
		if c.keepLast && len(rest) == 0 {
			return next, nil
		}
		fi, err := c.lstat(next)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			if !c.clamp && slices.Contains(rest, "..") {
				// The kernel stops at the missing element: a ".."
				// after it never undoes it.
				return "", bare(err)
			}
			return path.Join(append([]string{next}, rest...)...), nil
		}
		if err != nil {
			return "", err
		}
		if fi.Mode&fs.ModeSymlink == 0 {
			cur, curDir = next, fi.IsDir()
			continue
		}
		if links++; links > maxSymlinks {
			return "", syscall.ELOOP
		}
		target, err := c.readlink(next)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			cur, curDir = "/", true
		}
		rest = append(splitTarget(target), rest...)
	}
	return cur, nil
}

// splitTarget is splitPath of a symlink target, with a last "." kept
// when the target ends in "/" or "/.": the kernel then requires a
// directory there.
func splitTarget(target string) []string {
	elems := splitPath(target)
	if strings.HasSuffix(target, "/") || strings.HasSuffix(target, "/.") || target == "." {
		elems = append(elems, ".")
	}
	return elems
}

// splitPath returns the elements of p without empty and "." ones.
func splitPath(p string) []string {
	var elems []string
	for e := range strings.SplitSeq(p, "/") {
		if e != "" && e != "." {
			elems = append(elems, e)
		}
	}
	return elems
}

// Stat describes what name leads to in h's root, following every symlink
// on the way and at the end as chroot(2) into the root would (an absolute
// target is a path in the root), as test -e and exec do. A symlink that
// dangles gives an error wrapping fs.ErrNotExist; one that loops,
// syscall.ELOOP; a ".." above the root, ErrOutsideRoot.
func Stat(ctx context.Context, h Host, name string) (FileInfo, error) {
	p, err := chaserOver(ctx, h, false).chase(name)
	switch {
	case err == ErrOutsideRoot:
		return FileInfo{}, outsideError("stat", name, h.Root())
	case err == syscall.ELOOP:
		return FileInfo{}, opError("stat", name, err)
	case err != nil:
		return FileInfo{}, err
	}
	fi, err := h.Lstat(ctx, p)
	if errors.Is(err, fs.ErrNotExist) {
		return FileInfo{}, opError("stat", name, syscall.ENOENT)
	}
	return fi, err
}

// Resolve returns the path that name (absolute, clean) stands for in h's
// root once the symlinks of its directories are resolved as chroot(2)
// into the root would resolve them; a last symlink is kept, as a write
// replaces it. Two names that Resolve to one path are one file.
func Resolve(ctx context.Context, h Host, name string) (string, error) {
	p, err := chaserOver(ctx, h, true).chase(name)
	if err != nil {
		return "", opError("resolve", name, err)
	}
	return p, nil
}

// chaserOver is a chaser that reads h, refusing ".." above the root.
func chaserOver(ctx context.Context, h Host, keepLast bool) chaser {
	return chaser{
		lstat:    func(p string) (FileInfo, error) { return h.Lstat(ctx, p) },
		readlink: func(p string) (string, error) { return h.Readlink(ctx, p) },
		keepLast: keepLast,
	}
}
