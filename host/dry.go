package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"sync"
	"syscall"
)

var _ Host = (*Dry)(nil)

// Dry is the Host that check uses. Reads go to the base host; writes
// (WriteFile, Mkdir, Chmod, Chown) are kept in memory and never reach the
// base, and later reads see them: Lstat reports the new mode, owner, size
// and kind, ReadFile the written content, and missing parents made by a
// write show up as directories of mode 0755 owned by the running user.
// Names are checked as Real checks them, and a write fails where Real's
// would for the shape of the tree (a parent that is not a directory, a
// directory in the way). It does not predict permission errors.
//
// Limit: written paths are kept by name, so a write through a symlinked
// directory (/var/run/x with /var/run -> ../run) is not seen by a read of
// the resolved name (/run/x).
//
// A Dry is safe for concurrent use.
type Dry struct {
	base     Host
	uid, gid int // owner of directories a write creates: the running user

	mu    sync.Mutex
	files map[string]*dryFile // by name inside the root
}

// dryFile is one path changed in memory.
type dryFile struct {
	info    FileInfo
	data    []byte
	written bool // data replaces the base's content; else read the base
}

// NewDry returns a Dry host over base, with no writes yet.
func NewDry(base Host) *Dry {
	return &Dry{base: base, uid: os.Geteuid(), gid: os.Getegid(), files: map[string]*dryFile{}}
}

// Root returns the base host's root.
func (d *Dry) Root() string { return d.base.Root() }

// begin checks name and ctx.
func (d *Dry) begin(ctx context.Context, op, name string) error {
	if _, err := relName(op, d.base.Root(), name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s: %w", op, name, err)
	}
	return nil
}

// lookup describes name as the writes so far left it. ok is false when it
// does not exist. d.mu must be held.
func (d *Dry) lookup(ctx context.Context, op, name string) (info FileInfo, ok bool, err error) {
	if f, ok := d.files[name]; ok {
		return f.info, true, nil
	}
	// A file written in memory has no children, whatever the base holds.
	for p := path.Dir(name); p != "/"; p = path.Dir(p) {
		if f, ok := d.files[p]; ok && !f.info.IsDir() {
			return FileInfo{}, false, opError(op, name, syscall.ENOTDIR)
		}
	}
	info, err = d.base.Lstat(ctx, name)
	switch {
	case err == nil:
		return info, true, nil
	case errors.Is(err, fs.ErrNotExist):
		return FileInfo{}, false, nil
	case errors.Is(err, ErrOutsideRoot):
		return FileInfo{}, false, outsideError(op, name, d.base.Root())
	}
	return FileInfo{}, false, err
}

// Lstat describes name as the writes so far left it, else as the base
// does.
func (d *Dry) Lstat(ctx context.Context, name string) (FileInfo, error) {
	const op = "lstat"
	if err := d.begin(ctx, op, name); err != nil {
		return FileInfo{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	info, ok, err := d.lookup(ctx, op, name)
	if err != nil {
		return FileInfo{}, err
	}
	if !ok {
		return FileInfo{}, opError(op, name, syscall.ENOENT)
	}
	return info, nil
}

// ReadFile returns the content written to name, else the base's.
func (d *Dry) ReadFile(ctx context.Context, name string) ([]byte, error) {
	const op = "read"
	if err := d.begin(ctx, op, name); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	info, ok, err := d.lookup(ctx, op, name)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, opError(op, name, syscall.ENOENT)
	case info.IsDir():
		return nil, opError(op, name, syscall.EISDIR)
	}
	if f, ok := d.files[name]; ok && f.written {
		return slices.Clone(f.data), nil
	}
	return d.base.ReadFile(ctx, name)
}

// WriteFile records that name holds data with mode perm and owner uid:gid
// (-1 means the running user), creating missing parents in memory. A
// directory at name, or a parent that is not a directory, is an error as
// with Real.
func (d *Dry) WriteFile(ctx context.Context, name string, data []byte, perm fs.FileMode, uid, gid int) error {
	const op = "write"
	if err := d.begin(ctx, op, name); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.mkdirParents(ctx, op, name); err != nil {
		return err
	}
	info, ok, err := d.lookup(ctx, op, name)
	if err != nil {
		return err
	}
	if ok && info.IsDir() {
		return opError(op, name, syscall.EISDIR)
	}
	d.files[name] = &dryFile{
		info: FileInfo{
			Mode: perm & permBits,
			UID:  idOr(uid, d.uid),
			GID:  idOr(gid, d.gid),
			Size: int64(len(data)),
		},
		data:    slices.Clone(data),
		written: true,
	}
	return nil
}

// idOr is id, or def for -1 ("the default" or "leave as it is").
func idOr(id, def int) int {
	if id == -1 {
		return def
	}
	return id
}

// Mkdir records the directory name with perm and owner uid:gid (-1 means
// the running user), creating missing parents in memory. An existing
// directory or symlink is left as it is (Real follows a symlink and
// accepts it if it leads to a directory); any other file is an error.
func (d *Dry) Mkdir(ctx context.Context, name string, perm fs.FileMode, uid, gid int) error {
	const op = "mkdir"
	if err := d.begin(ctx, op, name); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.mkdirParents(ctx, op, name); err != nil {
		return err
	}
	return d.mkdirOne(ctx, op, name, name, perm&permBits, idOr(uid, d.uid), idOr(gid, d.gid))
}

// mkdirParents records the missing parents of name as directories of mode
// 0755. d.mu must be held.
func (d *Dry) mkdirParents(ctx context.Context, op, name string) error {
	if name == "/" {
		return nil
	}
	var parents []string
	for p := path.Dir(name); ; p = path.Dir(p) {
		parents = append(parents, p)
		if p == "/" {
			break
		}
	}
	slices.Reverse(parents)
	for _, p := range parents {
		if err := d.mkdirOne(ctx, op, name, p, 0o755, d.uid, d.gid); err != nil {
			return err
		}
	}
	return nil
}

// mkdirOne records the directory dir unless something is there already.
// Errors are about name, the path op was given. d.mu must be held.
func (d *Dry) mkdirOne(ctx context.Context, op, name, dir string, perm fs.FileMode, uid, gid int) error {
	info, ok, err := d.lookup(ctx, op, dir)
	if err != nil {
		// lookup named dir; the caller was given name.
		if errors.Is(err, ErrOutsideRoot) {
			return outsideError(op, name, d.base.Root())
		}
		return err
	}
	if !ok {
		d.files[dir] = &dryFile{info: FileInfo{Mode: fs.ModeDir | perm, UID: uid, GID: gid}}
		return nil
	}
	if info.IsDir() || info.Mode&fs.ModeSymlink != 0 {
		return nil
	}
	return opError(op, name, syscall.ENOTDIR)
}

// change returns the in-memory record of the existing, non-symlink name to
// change it. d.mu must be held.
func (d *Dry) change(ctx context.Context, op, name string) (*dryFile, error) {
	info, ok, err := d.lookup(ctx, op, name)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, opError(op, name, syscall.ENOENT)
	case info.Mode&fs.ModeSymlink != 0:
		return nil, symlinkError(op, name)
	}
	f, ok := d.files[name]
	if !ok {
		f = &dryFile{info: info}
		d.files[name] = f
	}
	return f, nil
}

// Chmod records the new permission bits of name; a file never written
// keeps reading its content from the base. A symlink is refused, as with
// Real.
func (d *Dry) Chmod(ctx context.Context, name string, perm fs.FileMode) error {
	const op = "chmod"
	if err := d.begin(ctx, op, name); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	f, err := d.change(ctx, op, name)
	if err != nil {
		return err
	}
	f.info.Mode = f.info.Mode&^permBits | perm&permBits
	return nil
}

// Chown records the new owner and group of name (-1 leaves one as it is),
// clearing setuid and setgid as Real's chown does. A symlink is refused,
// as with Real.
func (d *Dry) Chown(ctx context.Context, name string, uid, gid int) error {
	const op = "chown"
	if err := d.begin(ctx, op, name); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	f, err := d.change(ctx, op, name)
	if err != nil {
		return err
	}
	f.info.UID = idOr(uid, f.info.UID)
	f.info.GID = idOr(gid, f.info.GID)
	if !f.info.IsDir() {
		// The kernel drops setuid on chown, and setgid when it means
		// "run as group" (group-executable) rather than locking.
		f.info.Mode &^= fs.ModeSetuid
		if f.info.Mode&0o010 != 0 {
			f.info.Mode &^= fs.ModeSetgid
		}
	}
	return nil
}

// ReadLocal reads a file on the machine running kplay through the base.
func (d *Dry) ReadLocal(ctx context.Context, name string) ([]byte, error) {
	return d.base.ReadLocal(ctx, name)
}
