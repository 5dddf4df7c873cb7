package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
)

var _ Host = (*Dry)(nil)

// Dry is the Host that check uses. Reads go to the base host; writes
// (WriteFile, Mkdir, Chmod, Chown, Symlink, Remove) are kept in memory
// and never reach the base, and later reads see them: Lstat reports the
// new mode, owner, size and kind (ModeSymlink for a dry symlink),
// ReadFile the written content, Readlink a dry symlink's target, a
// removed base file reads as absent, ReadDir merges the base's entries
// with the dry ones minus the removed ones, and missing parents made by a
// write show up as directories of mode 0755 owned by the running user.
// Names are checked as Real checks them, and a write fails where Real's
// would for the shape of the tree (a parent that is not a directory, a
// directory in the way, a directory that is not empty). It does not
// predict permission errors.
//
// Limits: written paths are kept by name, so a write through a symlinked
// directory (/var/run/x with /var/run -> ../run) is not seen by a read of
// the resolved name (/run/x). A symlink made in memory is followed by
// ReadFile (relative targets only, as Real) but not as a directory on the
// way to another name: such a name gives an error.
//
// Systemd is built once, at its first call: over a live base it records
// enable, disable, mask and job changes in memory; otherwise it is the
// offline backend over the Dry itself.
//
// Etcd, HTTP and Kube read through to the base's clients and never change
// anything: an etcd Set and a Kubernetes Create are kept in memory and
// seen by later reads of the same Dry; an HTTP request other than GET and
// HEAD is not sent, and an HTTP wait is not done (ErrNotInCheck).
//
// A Dry is safe for concurrent use.
type Dry struct {
	base     Host
	uid, gid int // owner of directories a write creates: the running user

	mu    sync.Mutex
	files map[string]*dryFile // by name inside the root

	sdOnce sync.Once
	sd     Systemd

	clusterMu sync.Mutex
	etcdSets  map[dryEtcdKey]string // values Set in memory
	baseReads map[any]*sharedRead   // the base's etcd and API answers, by dryEtcdKey or kubeObject
	kubeMade  map[kubeObject]bool   // objects Created in memory
}

// dryFile is one path changed in memory.
type dryFile struct {
	info    FileInfo
	data    []byte
	written bool   // data replaces the base's content; else read the base
	target  string // of a symlink made in memory
	removed bool   // the name is gone, whatever the base holds
	fresh   bool   // a directory made in memory: the base has nothing below it
}

// NewDry returns a Dry host over base, with no writes yet. It reads each
// name of the base once and remembers the answer (a check sees the base
// as it was when first read): every step looks up its owner in
// /etc/passwd and /etc/group, and the offline systemd lists the same
// directories for every unit.
func NewDry(base Host) *Dry {
	return &Dry{
		base:      newReadCache(base),
		uid:       os.Geteuid(),
		gid:       os.Getegid(),
		files:     map[string]*dryFile{},
		etcdSets:  map[dryEtcdKey]string{},
		baseReads: map[any]*sharedRead{},
		kubeMade:  map[kubeObject]bool{},
	}
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
		if f.removed {
			return FileInfo{}, false, nil
		}
		return f.info, true, nil
	}
	// A file written in memory has no children, whatever the base holds;
	// nor has a removed one or a directory made in memory.
	for p := path.Dir(name); p != name; p = path.Dir(p) {
		if f, ok := d.files[p]; ok {
			switch {
			case f.removed || f.fresh:
				return FileInfo{}, false, nil
			case f.info.Mode&fs.ModeSymlink != 0:
				return FileInfo{}, false, drySymlinkError(op, name, p)
			case !f.info.IsDir():
				return FileInfo{}, false, opError(op, name, syscall.ENOTDIR)
			}
		}
		if p == "/" {
			break
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

// drySymlinkError refuses a name whose parent link is a symlink made in
// memory: the dry host does not follow those as directories.
func drySymlinkError(op, name, link string) error {
	return fmt.Errorf("%s %s: %s is a symlink made by this check, which the dry host does not follow (name the path it points to)", op, name, link)
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
	if info.Mode&fs.ModeSymlink != 0 {
		if f, ok := d.files[name]; ok {
			return d.readLink(ctx, name, f.target)
		}
	}
	return d.base.ReadFile(ctx, name)
}

// readLink reads the file that the dry symlink name -> target leads to,
// as Real would: a relative target inside the root is followed, an
// absolute one leaves the root. d.mu must be held.
func (d *Dry) readLink(ctx context.Context, name, target string) ([]byte, error) {
	const op = "read"
	link := name
	for hops := 0; ; hops++ {
		if hops == maxSymlinks {
			return nil, opError(op, name, syscall.ELOOP)
		}
		next, ok := joinInside(path.Dir(link), target)
		if !ok {
			return nil, outsideError(op, name, d.base.Root())
		}
		info, ok, err := d.lookup(ctx, op, next)
		switch {
		case err != nil:
			return nil, err
		case !ok:
			return nil, opError(op, name, syscall.ENOENT)
		case info.IsDir():
			return nil, opError(op, name, syscall.EISDIR)
		}
		f, inMemory := d.files[next]
		switch {
		case inMemory && f.written:
			return slices.Clone(f.data), nil
		case inMemory && info.Mode&fs.ModeSymlink != 0:
			link, target = next, f.target
		default:
			return d.base.ReadFile(ctx, next) // an error names the target

		}
	}
}

// maxSymlinks is how many symlinks a name may go through, as Linux's
// limit for one lookup.
const maxSymlinks = 40

// joinInside joins the relative symlink target to dir. ok is false for
// an absolute target or one whose ".." leaves the root.
func joinInside(dir, target string) (string, bool) {
	if strings.HasPrefix(target, "/") {
		return "", false
	}
	p := dir
	for elem := range strings.SplitSeq(target, "/") {
		switch elem {
		case "", ".":
		case "..":
			if p == "/" {
				return "", false
			}
			p = path.Dir(p)
		default:
			p = path.Join(p, elem)
		}
	}
	return p, true
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
			Mode:  perm & permBits,
			UID:   idOr(uid, d.uid),
			GID:   idOr(gid, d.gid),
			Size:  int64(len(data)),
			Links: 1,
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
		d.files[dir] = &dryFile{info: FileInfo{Mode: fs.ModeDir | perm, UID: uid, GID: gid}, fresh: true}
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
		if info.IsRegular() && info.Links > 1 {
			f.info.Links = 1 // Real replaces a hard-linked file rather than change it
		}
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

// Readlink returns the target of the symlink name: one made in memory,
// else the base's. A removed name gives fs.ErrNotExist, a name that is
// not a symlink syscall.EINVAL, as with Real.
func (d *Dry) Readlink(ctx context.Context, name string) (string, error) {
	const op = "readlink"
	if err := d.begin(ctx, op, name); err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	info, ok, err := d.lookup(ctx, op, name)
	switch {
	case err != nil:
		return "", err
	case !ok:
		return "", opError(op, name, syscall.ENOENT)
	case info.Mode&fs.ModeSymlink == 0:
		return "", opError(op, name, syscall.EINVAL)
	}
	if f, ok := d.files[name]; ok {
		return f.target, nil
	}
	return d.base.Readlink(ctx, name)
}

// Symlink records the symlink name -> target (stored as given), creating
// missing parents in memory. An existing name gives an error wrapping
// fs.ErrExist, as with Real.
func (d *Dry) Symlink(ctx context.Context, target, name string) error {
	const op = "symlink"
	if err := d.begin(ctx, op, name); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.mkdirParents(ctx, op, name); err != nil {
		return err
	}
	_, ok, err := d.lookup(ctx, op, name)
	if err != nil {
		return err
	}
	if ok {
		return opError(op, name, syscall.EEXIST)
	}
	d.files[name] = &dryFile{
		info:   FileInfo{Mode: fs.ModeSymlink | fs.ModePerm, UID: d.uid, GID: d.gid, Size: int64(len(target))},
		target: target,
	}
	return nil
}

// Remove records that the file, symlink or empty directory name is gone;
// later reads see it absent. A missing name gives fs.ErrNotExist and a
// directory with entries (in the base or in memory) syscall.ENOTEMPTY, as
// with Real.
func (d *Dry) Remove(ctx context.Context, name string) error {
	const op = "remove"
	if err := d.begin(ctx, op, name); err != nil {
		return err
	}
	if name == "/" {
		return opError(op, name, syscall.EBUSY)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	info, ok, err := d.lookup(ctx, op, name)
	switch {
	case err != nil:
		return err
	case !ok:
		return opError(op, name, syscall.ENOENT)
	case info.IsDir():
		names, err := d.readDir(ctx, op, name, info)
		if err != nil {
			return err
		}
		if len(names) > 0 {
			return opError(op, name, syscall.ENOTEMPTY)
		}
	}
	d.files[name] = &dryFile{removed: true}
	return nil
}

// ReadDir returns the names in directory name, sorted: the base's, minus
// those removed in memory, plus those made in memory. A directory made in
// memory lists only what was made in it.
func (d *Dry) ReadDir(ctx context.Context, name string) ([]string, error) {
	const op = "readdir"
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
	}
	return d.readDir(ctx, op, name, info)
}

// readDir lists the directory name described by info. d.mu must be held.
func (d *Dry) readDir(ctx context.Context, op, name string, info FileInfo) ([]string, error) {
	f, inMemory := d.files[name]
	switch {
	case inMemory && info.Mode&fs.ModeSymlink != 0:
		return nil, drySymlinkError(op, name, name)
	case !info.IsDir() && info.Mode&fs.ModeSymlink == 0:
		return nil, opError(op, name, syscall.ENOTDIR)
	}
	seen := map[string]bool{}
	if !inMemory || !f.fresh {
		base, err := d.base.ReadDir(ctx, name)
		if err != nil {
			return nil, err
		}
		for _, n := range base {
			seen[n] = true
		}
	}
	for p, f := range d.files {
		if p == "/" || path.Dir(p) != name {
			continue
		}
		seen[path.Base(p)] = !f.removed
	}
	var names []string
	for n, present := range seen {
		if present {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

// Systemd returns the service manager check uses, built at the first
// call: if the base's is live, a wrapper that reads through to it and
// keeps enable, disable, mask, unmask, jobs and daemon-reload in memory;
// otherwise NewOffline(d), so that enabling a unit that an earlier step
// only plans to write works.
func (d *Dry) Systemd() Systemd {
	d.sdOnce.Do(func() {
		if live := d.base.Systemd(); live.Live() {
			d.sd = newDryLive(live)
		} else {
			d.sd = NewOffline(d)
		}
	})
	return d.sd
}
