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
//
// Names are checked and resolved as Real's os.Root resolves them, over
// the tree as the writes so far left it: every symlink on the way is
// followed, one of the base or one made in memory (at most 8 in one
// lookup, as os.Root), and a write through a symlinked directory is kept
// under the path it leads to, so that a read of either name sees it. A
// name that os.Root would refuse for an absolute target is looked up
// again as chroot(2) resolves it, as Real does (lookup). So
// an operation fails where Real's would for the shape of the tree, with
// Real's error: a parent that is not a directory; a symlink on the way
// that dangles, leads to a file, loops or leaves the root; a name element
// longer than NAME_MAX or holding a NUL byte; a directory in the way or
// one that is not empty. It does not predict permission errors.
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
	files map[string]*dryFile // by path inside the root, with no symlink on the way
	// recording is set by Record; ops are the changes made since, in
	// order.
	recording bool
	ops       []Op

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

// Record makes the Dry keep, from now on, each change it makes in memory
// as an Op (Ops), for a Committer to make on the base: a run applies a
// batch of steps to a recording Dry over the Real, then commits the
// batch's ops at once. Only file changes are kept; a Dry over a live
// service manager, etcd or API server keeps their changes in memory only,
// so a batch holds none of those.
func (d *Dry) Record() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.recording = true
}

// Ops returns the changes recorded since Record, in the order they were
// made. The caller must not change them.
func (d *Dry) Ops() []Op {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ops
}

// record keeps op if the Dry records. d.mu must be held.
func (d *Dry) record(op Op) {
	if d.recording {
		d.ops = append(d.ops, op)
	}
}

// begin checks name and ctx, as Real's begin does.
func (d *Dry) begin(ctx context.Context, op, name string) error {
	if _, err := relName(op, d.base.Root(), name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s: %w", op, name, err)
	}
	return nil
}

// makeRoot records the root as a new directory of mode 0755 if it is
// missing, as Real's first write makes it. d.mu must be held.
func (d *Dry) makeRoot(ctx context.Context, op, name string) error {
	_, ok, err := d.entry(ctx, "/", false)
	if err != nil {
		return d.fail(op, name, err)
	}
	if !ok {
		d.files["/"] = &dryFile{info: FileInfo{Mode: fs.ModeDir | 0o755, UID: d.uid, GID: d.gid}, fresh: true}
	}
	return nil
}

// entry describes p, a path whose parent is a directory reached with no
// symlink: its record in memory, else the base's, unless the parent was
// made in memory (inFresh), which the base has nothing below. ok is false
// when nothing is there. An element that the kernel refuses gives the
// error a system call on it would. Errors are bare (see fail). d.mu must
// be held.
func (d *Dry) entry(ctx context.Context, p string, inFresh bool) (info FileInfo, ok bool, err error) {
	if p != "/" {
		if err := elemError(path.Base(p)); err != nil {
			return FileInfo{}, false, err
		}
	}
	if f, ok := d.files[p]; ok {
		return f.info, !f.removed, nil
	}
	if inFresh {
		return FileInfo{}, false, nil
	}
	info, err = d.base.Lstat(ctx, p)
	switch {
	case err == nil:
		return info, true, nil
	case errors.Is(err, fs.ErrNotExist):
		return FileInfo{}, false, nil
	}
	return FileInfo{}, false, bare(err)
}

// fresh reports whether dir is a directory made in memory: the base has
// nothing below it. d.mu must be held.
func (d *Dry) fresh(dir string) bool {
	f, ok := d.files[dir]
	return ok && f.fresh
}

// elemError is the error of a system call given the path element elem: a
// NUL byte cannot be passed (Go says EINVAL), and an element longer than
// NAME_MAX is ENAMETOOLONG, whether or not it exists.
func elemError(elem string) error {
	switch {
	case strings.IndexByte(elem, 0) >= 0:
		return syscall.EINVAL
	case len(elem) > nameMax:
		return syscall.ENAMETOOLONG
	}
	return nil
}

// bare is the cause of an error of the base: ErrOutsideRoot, a
// syscall.Errno, or the error itself (a context error, a
// *NotRegularError).
func bare(err error) error {
	var errno syscall.Errno
	switch {
	case errors.Is(err, ErrOutsideRoot):
		return ErrOutsideRoot
	case errors.As(err, &errno):
		return errno
	}
	return err
}

// fail words a bare error of op on name as Real words it.
func (d *Dry) fail(op, name string, err error) error {
	if errno, ok := err.(syscall.Errno); ok {
		return opError(op, name, errno)
	}
	var nr *NotRegularError
	switch {
	case err == ErrOutsideRoot:
		return outsideError(op, name, d.base.Root())
	case errors.As(err, &nr):
		return notRegularError(name, nr)
	}
	return err
}

// Bounds of one os.Root lookup (its rootMaxSymlinks, and the steps and
// ".." restarts after which it gives up), which are not the kernel's: a
// chain of 9 symlinks that Linux follows, os.Root does not.
const (
	rootMaxSymlinks = 8
	rootMaxSteps    = 255
	rootMaxRestarts = 8
)

// resolve looks name up below the directory top ("/", or one that an
// earlier resolve reached; name is top or a path in it) as an os.Root
// opened at top does: element by element, following each symlink on the
// way, and the last one too if follow is set or a target ends in "/", at
// most rootMaxSymlinks in all. A ".." above top, or an absolute target,
// gives ErrOutsideRoot. It returns the path the last element stands at,
// reached with no symlink, and what is there (ok is false when nothing
// is). Errors are bare (see fail). d.mu must be held.
func (d *Dry) resolve(ctx context.Context, top, name string, follow bool) (at string, info FileInfo, ok bool, err error) {
	if top == "/" {
		// Real reads a missing root as empty.
		if _, ok, err := d.entry(ctx, "/", false); err != nil || !ok {
			if err == nil {
				err = syscall.ENOENT
			}
			return "", FileInfo{}, false, err
		}
	}
	rel := strings.TrimPrefix(name[len(top):], "/")
	if rel == "" {
		rel = "."
	}
	parts, slash := splitRel(rel, nil, nil)
	dir, inFresh := top, d.fresh(top)
	links, steps, restarts := 0, 0, 0
	for i := 0; ; {
		if steps++; steps > rootMaxSteps && restarts > rootMaxRestarts {
			return "", FileInfo{}, false, syscall.ENAMETOOLONG
		}
		if parts[i] == ".." {
			// As os.Root: drop what the run of ".." undoes and walk
			// again from top.
			restarts++
			end := i + 1
			for end < len(parts) && parts[end] == ".." {
				end++
			}
			if end-i > i {
				return "", FileInfo{}, false, ErrOutsideRoot
			}
			parts = slices.Delete(parts, 2*i-end, end)
			if len(parts) == 0 {
				parts = []string{"."}
			}
			i, dir, inFresh = 0, top, d.fresh(top)
			continue
		}
		p := child(name, dir, parts[i])
		last := i == len(parts)-1
		info, ok, err := d.entry(ctx, p, inFresh)
		if err != nil {
			return "", FileInfo{}, false, err
		}
		switch isLink := ok && info.Mode&fs.ModeSymlink != 0; {
		case isLink && (!last || follow || slash):
			// Follow it, below.
		case last && slash && !ok:
			return "", FileInfo{}, false, syscall.ENOENT
		case last && slash && !info.IsDir():
			return "", FileInfo{}, false, syscall.ENOTDIR
		case last:
			return p, info, ok, nil
		case !ok:
			return "", FileInfo{}, false, syscall.ENOENT
		case !info.IsDir():
			return "", FileInfo{}, false, syscall.ENOTDIR
		default:
			dir, inFresh = p, inFresh || d.fresh(p)
			i++
			continue
		}
		if links++; links > rootMaxSymlinks {
			return "", FileInfo{}, false, syscall.ELOOP
		}
		target, err := d.linkTarget(ctx, p)
		if err != nil {
			return "", FileInfo{}, false, err
		}
		if strings.HasPrefix(target, "/") {
			return "", FileInfo{}, false, ErrOutsideRoot
		}
		var targetSlash bool
		parts, targetSlash = splitRel(target, parts[:i], parts[i+1:])
		slash = slash || last && targetSlash
	}
}

// splitRel splits the relative path s into elements, between prefix and
// suffix, as os.Root does: empty and "." elements go, except a last "."
// with no suffix after it. slash reports that s ends in "/".
func splitRel(s string, prefix, suffix []string) (parts []string, slash bool) {
	trimmed := strings.TrimRight(s, "/")
	slash = len(trimmed) < len(s)
	n := strings.Count(trimmed, "/") + 1
	parts = append(make([]string, 0, len(prefix)+n+len(suffix)), prefix...)
	for j := 0; len(trimmed) > 0; j++ {
		e, rest, _ := strings.Cut(trimmed, "/")
		trimmed = rest
		if e == "" || e == "." && (j < n-1 || len(suffix) > 0) {
			continue
		}
		parts = append(parts, e)
	}
	return append(parts, suffix...), slash
}

// child is the path of elem in dir, a path with no symlink on the way;
// "." is dir itself. While the walk follows name, it is a prefix of name
// rather than a new string.
func child(name, dir, elem string) string {
	if elem == "." {
		return dir
	}
	start := len(dir) + 1
	if dir == "/" {
		start = 1
	}
	end := start + len(elem)
	if end <= len(name) && strings.HasPrefix(name, dir) && name[start-1] == '/' &&
		name[start:end] == elem && (end == len(name) || name[end] == '/') {
		return name[:end]
	}
	return dir[:start-1] + "/" + elem
}

// linkTarget is the target of the symlink p: one made in memory, else the
// base's. Errors are bare. d.mu must be held.
func (d *Dry) linkTarget(ctx context.Context, p string) (string, error) {
	if f, ok := d.files[p]; ok {
		return f.target, nil
	}
	target, err := d.base.Readlink(ctx, p)
	if err != nil {
		return "", bare(err)
	}
	return target, nil
}

// lookup is resolve from the root, followed, when that leaves the root,
// by a second resolve of name as chroot(2) resolves it (rechase): Real's
// inRoot runs an operation again alike. d.mu must be held.
func (d *Dry) lookup(ctx context.Context, name string, follow bool) (at string, info FileInfo, ok bool, err error) {
	at, info, ok, err = d.resolve(ctx, "/", name, follow)
	if err == nil {
		return at, info, ok, nil
	}
	to, err := d.rechase(ctx, name, follow, err)
	if err != nil {
		return "", FileInfo{}, false, err
	}
	return d.resolve(ctx, "/", to, follow)
}

// rechase decides, after a lookup of name failed with err, whether to
// look it up again, as Real's inRoot does: only when err is
// ErrOutsideRoot and chaser, resolving as chroot(2) into the root would,
// finds another path inside the root. It returns that path, or the error
// to give. d.mu must be held.
func (d *Dry) rechase(ctx context.Context, name string, follow bool, err error) (string, error) {
	if err != ErrOutsideRoot {
		return "", err
	}
	c := chaser{
		lstat: func(p string) (FileInfo, error) {
			_, info, ok, err := d.resolve(ctx, "/", p, false)
			if err == nil && !ok {
				err = syscall.ENOENT
			}
			return info, err
		},
		readlink: func(p string) (string, error) { return d.linkTarget(ctx, p) },
		keepLast: !follow,
	}
	to, cerr := c.chase(name)
	switch {
	case cerr == ErrOutsideRoot, cerr == nil && to == name:
		return "", err
	case cerr != nil:
		return "", cerr
	}
	return to, nil
}

// resolveRead looks name up as Real's ReadFile does: its directory
// first, then the last element from there with a count of symlinks of its
// own (Real reads through a handle of the directory); a symlink that
// leaves the directory sends the lookup again from the root, with one
// count. d.mu must be held.
func (d *Dry) resolveRead(ctx context.Context, name string) (at string, info FileInfo, ok bool, err error) {
	at, info, ok, err = d.resolveReadAt(ctx, name)
	if err == nil {
		return at, info, ok, nil
	}
	to, err := d.rechase(ctx, name, true, err)
	if err != nil {
		return "", FileInfo{}, false, err
	}
	return d.resolveReadAt(ctx, to)
}

// resolveReadAt is resolveRead without the second lookup of rechase.
func (d *Dry) resolveReadAt(ctx context.Context, name string) (at string, info FileInfo, ok bool, err error) {
	i := strings.LastIndexByte(name, '/')
	if i <= 0 {
		return d.resolve(ctx, "/", name, true)
	}
	dir, base := name[:i], name[i+1:]
	at, info, ok, err = d.resolve(ctx, "/", dir, true)
	switch {
	case err != nil:
		return "", FileInfo{}, false, err
	case !ok:
		return "", FileInfo{}, false, syscall.ENOENT
	case !info.IsDir():
		return "", FileInfo{}, false, syscall.ENOTDIR
	}
	inDir := name
	if at != dir {
		inDir = child("", at, base)
	}
	at, info, ok, err = d.resolve(ctx, at, inDir, true)
	if errors.Is(err, ErrOutsideRoot) {
		return d.resolve(ctx, "/", name, true)
	}
	return at, info, ok, err
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
	_, info, ok, err := d.lookup(ctx, name, false)
	switch {
	case err != nil:
		return FileInfo{}, d.fail(op, name, err)
	case !ok:
		return FileInfo{}, opError(op, name, syscall.ENOENT)
	}
	return info, nil
}

// ReadFile returns the content written to name, else the base's,
// following symlinks as Real does.
func (d *Dry) ReadFile(ctx context.Context, name string) ([]byte, error) {
	const op = "read"
	if err := d.begin(ctx, op, name); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	at, info, ok, err := d.resolveRead(ctx, name)
	switch {
	case err != nil:
		return nil, d.fail(op, name, err)
	case !ok:
		return nil, opError(op, name, syscall.ENOENT)
	case info.IsDir():
		return nil, opError(op, name, syscall.EISDIR)
	}
	if f, ok := d.files[at]; ok && f.written {
		return slices.Clone(f.data), nil
	}
	data, err := d.base.ReadFile(ctx, at)
	if err != nil {
		return nil, d.fail(op, name, bare(err))
	}
	return data, nil
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
	if err := d.makeRoot(ctx, op, name); err != nil {
		return err
	}
	if err := d.mkdirParents(ctx, op, name); err != nil {
		return err
	}
	at, info, ok, err := d.lookup(ctx, name, false)
	switch {
	case err != nil:
		return d.fail(op, name, err)
	case ok && info.IsDir():
		return opError(op, name, syscall.EISDIR)
	}
	d.files[at] = &dryFile{
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
	d.record(Op{Kind: OpWrite, Name: name, At: at, Data: d.files[at].data, Perm: perm & permBits, UID: uid, GID: gid})
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
// directory, or a symlink that leads to one, is left as it is; anything
// else is an error, as with Real.
func (d *Dry) Mkdir(ctx context.Context, name string, perm fs.FileMode, uid, gid int) error {
	const op = "mkdir"
	if err := d.begin(ctx, op, name); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.makeRoot(ctx, op, name); err != nil {
		return err
	}
	if name == "/" {
		return nil
	}
	if err := d.mkdirParents(ctx, op, name); err != nil {
		return err
	}
	if err := d.mkdirOne(ctx, op, name, name, perm&permBits, idOr(uid, d.uid), idOr(gid, d.gid)); err != nil {
		return err
	}
	if d.recording {
		at, _, _, err := d.lookup(ctx, name, true)
		if err != nil {
			return d.fail(op, name, err)
		}
		d.record(Op{Kind: OpMkdir, Name: name, At: at, Perm: perm & permBits, UID: uid, GID: gid})
	}
	return nil
}

// mkdirParents records the missing parents of name as directories of
// mode 0755, as Real's mkdirParents makes them. d.mu must be held.
func (d *Dry) mkdirParents(ctx context.Context, op, name string) error {
	for i := 1; i < len(name); i++ {
		if name[i] != '/' {
			continue
		}
		if err := d.mkdirOne(ctx, op, name, name[:i], 0o755, d.uid, d.gid); err != nil {
			return err
		}
	}
	return nil
}

// mkdirOne records the directory dir unless one is there, as Real's
// mkdirOne makes it: following symlinks, and failing where it fails.
// Errors are about name, the path op was given. d.mu must be held.
func (d *Dry) mkdirOne(ctx context.Context, op, name, dir string, perm fs.FileMode, uid, gid int) error {
	_, info, ok, err := d.lookup(ctx, dir, true)
	switch {
	case err == nil && ok && info.IsDir():
		return nil
	case err == nil && ok:
		return opError(op, name, syscall.ENOTDIR)
	case err != nil && !errors.Is(err, syscall.ENOENT):
		return d.fail(op, name, err)
	}
	// Nothing there, which Real makes, or a symlink that leads nowhere,
	// which it refuses (rename(2) would not put a directory over it).
	at, _, ok, err := d.lookup(ctx, dir, false)
	switch {
	case err != nil:
		return d.fail(op, name, err)
	case ok:
		return opError(op, name, syscall.ENOTDIR)
	}
	d.files[at] = &dryFile{info: FileInfo{Mode: fs.ModeDir | perm, UID: uid, GID: gid}, fresh: true}
	return nil
}

// change returns the in-memory record of the existing, non-symlink name
// to change it, and its path. d.mu must be held.
func (d *Dry) change(ctx context.Context, op, name string) (*dryFile, string, error) {
	if err := d.makeRoot(ctx, op, name); err != nil {
		return nil, "", err
	}
	at, info, ok, err := d.lookup(ctx, name, false)
	switch {
	case err != nil:
		return nil, "", d.fail(op, name, err)
	case !ok:
		return nil, "", opError(op, name, syscall.ENOENT)
	case info.Mode&fs.ModeSymlink != 0:
		return nil, "", symlinkError(op, name)
	}
	f, ok := d.files[at]
	if !ok {
		f = &dryFile{info: info}
		if info.IsRegular() && info.Links > 1 {
			f.info.Links = 1 // Real replaces a hard-linked file rather than change it
		}
		d.files[at] = f
	}
	return f, at, nil
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
	f, at, err := d.change(ctx, op, name)
	if err != nil {
		return err
	}
	f.info.Mode = f.info.Mode&^permBits | perm&permBits
	d.record(Op{Kind: OpChmod, Name: name, At: at, Perm: perm & permBits})
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
	f, at, err := d.change(ctx, op, name)
	if err != nil {
		return err
	}
	d.record(Op{Kind: OpChown, Name: name, At: at, UID: uid, GID: gid})
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
	at, info, ok, err := d.lookup(ctx, name, false)
	switch {
	case err != nil:
		return "", d.fail(op, name, err)
	case !ok:
		return "", opError(op, name, syscall.ENOENT)
	case info.Mode&fs.ModeSymlink == 0:
		return "", opError(op, name, syscall.EINVAL)
	}
	target, err := d.linkTarget(ctx, at)
	if err != nil {
		return "", d.fail(op, name, err)
	}
	return target, nil
}

// pathMax is PATH_MAX, which counts the NUL that ends a C string: the
// longest symlink target is one byte shorter.
const pathMax = 4096

// Symlink records the symlink name -> target (stored as given), creating
// missing parents in memory. An existing name gives an error wrapping
// fs.ErrExist, and a target that symlink(2) refuses (empty, with a NUL
// byte, longer than PATH_MAX) its error, as with Real.
func (d *Dry) Symlink(ctx context.Context, target, name string) error {
	const op = "symlink"
	if err := d.begin(ctx, op, name); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.makeRoot(ctx, op, name); err != nil {
		return err
	}
	if name == "/" {
		return opError(op, name, syscall.EEXIST)
	}
	if err := d.mkdirParents(ctx, op, name); err != nil {
		return err
	}
	// The order of symlinkat(2)'s checks: Go's of the two strings, then
	// the kernel's of the target, then the lookup of the new name.
	base := path.Base(name)
	switch {
	case strings.IndexByte(target, 0) >= 0 || strings.IndexByte(base, 0) >= 0:
		return opError(op, name, syscall.EINVAL)
	case target == "":
		return opError(op, name, syscall.ENOENT)
	case len(target) >= pathMax:
		return opError(op, name, syscall.ENAMETOOLONG)
	}
	at, _, ok, err := d.lookup(ctx, name, false)
	switch {
	case err != nil:
		return d.fail(op, name, err)
	case ok:
		return opError(op, name, syscall.EEXIST)
	}
	d.files[at] = &dryFile{
		info:   FileInfo{Mode: fs.ModeSymlink | fs.ModePerm, UID: d.uid, GID: d.gid, Size: int64(len(target))},
		target: target,
	}
	d.record(Op{Kind: OpSymlink, Name: name, At: at, Target: target})
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
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.makeRoot(ctx, op, name); err != nil {
		return err
	}
	if name == "/" {
		return opError(op, name, syscall.EBUSY)
	}
	at, info, ok, err := d.lookup(ctx, name, false)
	switch {
	case err != nil:
		return d.fail(op, name, err)
	case !ok:
		return opError(op, name, syscall.ENOENT)
	case info.IsDir():
		names, err := d.readDir(ctx, op, name, at)
		if err != nil {
			return err
		}
		if len(names) > 0 {
			return opError(op, name, syscall.ENOTEMPTY)
		}
	}
	d.files[at] = &dryFile{removed: true}
	d.record(Op{Kind: OpRemove, Name: name, At: at})
	return nil
}

// ReadDir returns the names in directory name, sorted: the base's, minus
// those removed in memory, plus those made in memory. A directory made in
// memory lists only what was made in it. A symlink to a directory is
// followed, as with Real.
func (d *Dry) ReadDir(ctx context.Context, name string) ([]string, error) {
	const op = "readdir"
	if err := d.begin(ctx, op, name); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	at, info, ok, err := d.lookup(ctx, name, true)
	switch {
	case err != nil:
		return nil, d.fail(op, name, err)
	case !ok:
		return nil, opError(op, name, syscall.ENOENT)
	case !info.IsDir():
		return nil, opError(op, name, syscall.ENOTDIR)
	}
	return d.readDir(ctx, op, name, at)
}

// readDir lists the directory at, a path reached with no symlink. Errors
// are about name, the path op was given. d.mu must be held.
func (d *Dry) readDir(ctx context.Context, op, name, at string) ([]string, error) {
	seen := map[string]bool{}
	if f, ok := d.files[at]; !ok || !f.fresh {
		base, err := d.base.ReadDir(ctx, at)
		if err != nil {
			return nil, d.fail(op, name, bare(err))
		}
		for _, n := range base {
			seen[n] = true
		}
	}
	for p, f := range d.files {
		if p == "/" || path.Dir(p) != at {
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
