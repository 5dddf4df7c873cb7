package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
)

// permBits are the mode bits a step may set: the permissions plus setuid,
// setgid and sticky. Type bits in a requested mode are ignored.
const permBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// relName checks that name is an absolute, clean path without ".."
// elements and returns it relative to the root ("." for "/"). Real and Dry
// both use it, so they refuse the same names. The error wraps
// ErrOutsideRoot; op and root only go into its message.
func relName(op, root, name string) (string, error) {
	if name == "" {
		return "", &wrapError{
			msg: fmt.Sprintf(`%s "": name is empty (write an absolute path such as "/etc/motd")`, op),
			err: ErrOutsideRoot,
		}
	}
	if slices.Contains(strings.Split(name, "/"), "..") {
		return "", fmt.Errorf(`%s %q: %w %s (".." is not allowed in a name)`, op, name, ErrOutsideRoot, root)
	}
	if !strings.HasPrefix(name, "/") {
		return "", &wrapError{
			msg: fmt.Sprintf("%s %q: name must be absolute inside the root (write %q)", op, name, path.Clean("/"+name)),
			err: ErrOutsideRoot,
		}
	}
	if clean := path.Clean(name); clean != name {
		return "", &wrapError{
			msg: fmt.Sprintf("%s %q: name is not clean (write %q)", op, name, clean),
			err: ErrOutsideRoot,
		}
	}
	if name == "/" {
		return ".", nil
	}
	return name[1:], nil
}

// wrapError is an error whose message does not quote the error it wraps,
// for messages such as "root /tmp/r does not exist" that read better than
// "...: root does not exist: /tmp/r".
type wrapError struct {
	msg string
	err error
}

func (e *wrapError) Error() string { return e.msg }
func (e *wrapError) Unwrap() error { return e.err }

// outsideError is the error for a name that os.Root refused because a
// symlink or ".." on the way leaves the root.
func outsideError(op, name, root string) error {
	return fmt.Errorf(`%s %s: %w %s (a symlink or ".." points outside it)`, op, name, ErrOutsideRoot, root)
}

// noRootError is the error for a write to a root that does not exist.
func noRootError(op, name, root string) error {
	return &wrapError{msg: fmt.Sprintf("%s %s: root %s does not exist", op, name, root), err: ErrNoRoot}
}

// opError names the operation and the path inside the root. It drops the
// os wrappers, whose paths are relative to the root or absolute on the
// machine running kplay, and keeps the cause (a syscall.Errno), so
// errors.Is(err, fs.ErrNotExist) and friends still hold.
func opError(op, name string, err error) error {
	return fmt.Errorf("%s %s: %w", op, name, cause(err))
}

// ownerError is opError for a chown; EPERM gets the way out.
func ownerError(op, name string, err error) error {
	err = cause(err)
	if errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("%s %s: %w (run kplay as root, or set owner to the running user)", op, name, err)
	}
	return fmt.Errorf("%s %s: %w", op, name, err)
}

// symlinkError refuses to change the mode or owner of a symlink: doing it
// through the link would change its target, which a step did not name.
func symlinkError(op, name string) error {
	return fmt.Errorf("%s %s: is a symlink (kplay does not follow it; name its target instead)", op, name)
}

// cause strips the os wrappers from err.
func cause(err error) error {
	for {
		switch e := err.(type) {
		case *fs.PathError:
			err = e.Err
		case *os.LinkError:
			err = e.Err
		case *os.SyscallError:
			err = e.Err
		default:
			return err
		}
	}
}
