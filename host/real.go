package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
)

var _ Host = (*Real)(nil)

// Real is the Host for a target root directory on this machine. Every file
// operation goes through an os.Root, so no name, ".." element or symlink
// chain can reach outside the root: such names give an error wrapping
// ErrOutsideRoot. A symlink with an absolute target, which os.Root
// refuses, leads to that path in the root, as after chroot(2) into it
// (inRoot): in an image, /etc/kubernetes/cni/net.d -> /etc/cni/net.d is
// ROOT/etc/cni/net.d, and with the root "/" it is what the kernel does. Errors name the path inside the root
// ("write /etc/motd: permission denied") and keep the cause, so
// errors.Is(err, fs.ErrNotExist) holds for absent files.
//
// A Real is safe for concurrent use. Close it when done.
type Real struct {
	dir    string
	create bool // make dir at the first write if it does not exist

	// root is nil while dir does not exist; set once, at OpenReal or at
	// the first write of a Real opened with create.
	root   atomic.Pointer[os.Root]
	rootMu sync.Mutex // serialises making the root

	// escape is os.Root's unexported "path escapes from parent" error,
	// caught once by OpenReal, so that it is recognised by identity
	// rather than by its text.
	escape error

	pid int
	seq atomic.Uint64 // numbers temp files, unique within this Real

	// sd is the Systemd given with WithSystemd; nil means offline.
	sd Systemd

	web *realHTTP // built once, by OpenReal

	// kube and etcd make clients (WithKube, WithEtcd); nil means this
	// Real has none.
	kube KubeFactory
	etcd EtcdFactory
	// lockTimeout is how long Lock waits (WithLockTimeout).
	lockTimeout time.Duration
	// cleaned are the directories removeStaleTemps has read.
	cleaned sync.Map

	kubeMu      sync.Mutex
	kubeClients map[KubeConfig]Kube // the clients kube made, by configuration
	etcdMu      sync.Mutex
	etcdClients map[string]Etcd // the clients etcd made, by etcdConfigKey

	dirs dirRoots // handles of directories that reads looked into

	// local, given with WithLocalSources, is where ReadLocal reads: the
	// files a fleet controller shipped, laid out under their paths on
	// the controller (LocalSources). nil reads this machine's files.
	local *LocalSources

	// onMade, while a Commit runs, is told each directory mkdirOne makes
	// (relative to the root), whose parent the commit then syncs.
	onMade atomic.Pointer[func(rel string)]
}

// OpenReal opens the target root dir. If dir does not exist, the Real
// reads as empty (Lstat and ReadFile give fs.ErrNotExist); with
// create=true, its first write makes dir (and its parents) with mode
// 0755, so a run that fails before writing leaves no trace, while with
// create=false writes give an error wrapping ErrNoRoot (check never
// writes anyway). opts give the Real its clients and settings
// (WithSystemd, WithKube, WithEtcd, WithLocalSources, WithLockTimeout);
// they are fixed for the Real's life.
func OpenReal(dir string, create bool, opts ...Option) (*Real, error) {
	r := &Real{dir: dir, create: create, pid: os.Getpid(), web: newRealHTTP(httpRequestTimeout, httpTryTimeout), lockTimeout: DefaultLockTimeout}
	for _, opt := range opts {
		opt(r)
	}
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open root %s: %w", dir, cause(err))
	}
	r.setRoot(root)
	return r, nil
}

// An Option sets up a Real at OpenReal.
type Option func(*Real)

// WithSystemd makes Systemd return s (the CLI gives a live D-Bus backend
// when the root is "/"). Without it, Systemd is the offline backend over
// the root.
func WithSystemd(s Systemd) Option { return func(r *Real) { r.sd = s } }

// WithKube makes Kube use f (the CLI gives host/kube.New). Without it,
// Kube returns an error: no Kubernetes client.
func WithKube(f KubeFactory) Option { return func(r *Real) { r.kube = f } }

// WithEtcd makes Etcd use f (the CLI gives host/etcdv2.New). Without it,
// Etcd returns an error: no etcd client.
func WithEtcd(f EtcdFactory) Option { return func(r *Real) { r.etcd = f } }

// WithLocalSources makes ReadLocal, and the TLS and kubeconfig files of
// the clients, read l rather than this machine's files: a fleet host
// reads the copies its controller shipped.
func WithLocalSources(l *LocalSources) Option {
	return func(r *Real) {
		r.local = l
		r.web.clients.local = l
	}
}

// WithLockTimeout sets how long Lock waits for another run
// (--lock-timeout); without it, DefaultLockTimeout. A d of 0 or less
// keeps the default.
func WithLockTimeout(d time.Duration) Option {
	return func(r *Real) {
		if d > 0 {
			r.lockTimeout = d
		}
	}
}

// setRoot installs an opened root and learns its escape error: Lstat("..")
// cannot succeed in a root, and what it returns is the error os.Root gives
// for every escape.
func (r *Real) setRoot(root *os.Root) {
	_, probe := root.Lstat("..")
	r.escape = cause(probe)
	r.root.Store(root)
}

// makeRoot creates and opens the root directory for the first write.
func (r *Real) makeRoot(op, name string) error {
	r.rootMu.Lock()
	defer r.rootMu.Unlock()
	if r.root.Load() != nil {
		return nil
	}
	if err := mkdirAllExact(r.dir, 0o755); err != nil {
		return fmt.Errorf("%s %s: create root %s: %w", op, name, r.dir, cause(err))
	}
	root, err := os.OpenRoot(r.dir)
	if err != nil {
		return fmt.Errorf("%s %s: open root %s: %w", op, name, r.dir, cause(err))
	}
	r.setRoot(root)
	return nil
}

// mkdirAllExact is os.MkdirAll that gives each directory it makes exactly
// perm, whatever the umask: a root made under umask 077 must not be 0700.
func mkdirAllExact(dir string, perm fs.FileMode) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := mkdirAllExact(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil {
		if fi, serr := os.Lstat(dir); serr == nil && fi.IsDir() {
			return nil // made by someone else meanwhile
		}
		return err
	}
	return os.Chmod(dir, perm)
}

// Close releases the root directory and the etcd clients' connections.
// The Real must not be used after.
func (r *Real) Close() error {
	r.closeEtcdClients()
	r.forgetDirs()
	if root := r.root.Load(); root != nil {
		return root.Close()
	}
	return nil
}

// Root returns the root directory as given to OpenReal.
func (r *Real) Root() string { return r.dir }

// begin checks name and ctx and returns name relative to the root. It
// refuses writes to a missing root with ErrNoRoot and answers reads of it
// with ENOENT.
func (r *Real) begin(ctx context.Context, op, name string, write bool) (string, error) {
	rel, err := relName(op, r.dir, name)
	if err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("%s %s: %w", op, name, err)
	}
	if r.root.Load() == nil {
		switch {
		case !write:
			return "", opError(op, name, syscall.ENOENT)
		case !r.create:
			return "", noRootError(op, name, r.dir)
		}
		if err := r.makeRoot(op, name); err != nil {
			return "", err
		}
	}
	return rel, nil
}

// fail is opError that also recognises os.Root's escape error.
func (r *Real) fail(op, name string, err error) error {
	if r.isEscape(err) {
		return outsideError(op, name, r.dir)
	}
	return opError(op, name, err)
}

// inRoot runs fn with rel and, when os.Root refused that as leaving the
// root, once more with rel resolved as chroot(2) into the root resolves
// it (see chaser). os.Root refuses every symlink with an absolute target,
// but in an image root such links are common ("/etc/kubernetes/cni/net.d
// -> /etc/cni/net.d") and mean a path in the root. The second run gets a
// path whose directories hold no symlink, nor its last element with
// follow (set for the operations that follow a last symlink). A ".."
// that climbs above the root keeps fn's error, and so does a symlink made
// in between that leaves the root: os.Root still guards every call.
func inRoot[T any](r *Real, op, name, rel string, follow bool, fn func(rel string) (T, error)) (T, error) {
	v, err := fn(rel)
	if !errors.Is(err, ErrOutsideRoot) {
		return v, err
	}
	to, cerr := r.chase(rel, follow)
	switch {
	case errors.Is(cerr, ErrOutsideRoot), cerr == nil && to == rel:
		return v, err
	case cerr != nil:
		var zero T
		return zero, r.fail(op, name, cerr)
	}
	return fn(to)
}

// inRootErr is inRoot for an operation that returns only an error.
func inRootErr(r *Real, op, name, rel string, follow bool, fn func(rel string) error) error {
	_, err := inRoot(r, op, name, rel, follow, func(rel string) (struct{}, error) { return struct{}{}, fn(rel) })
	return err
}

// chase resolves rel, a path relative to the root, as chroot(2) into the
// root would (see chaser): a last symlink is followed too if follow is
// set. It returns a path relative to the root. Errors are bare.
func (r *Real) chase(rel string, follow bool) (string, error) {
	root := r.root.Load()
	c := chaser{
		lstat: func(p string) (FileInfo, error) {
			fi, err := root.Lstat(p[1:])
			if err != nil {
				return FileInfo{}, r.bare(err)
			}
			return infoOf(fi), nil
		},
		readlink: func(p string) (string, error) {
			target, err := root.Readlink(p[1:])
			return target, r.bare(err)
		},
		keepLast: !follow,
	}
	p, err := c.chase("/" + rel)
	if err != nil || p == "/" {
		return ".", err
	}
	return p[1:], nil
}

// bare is the cause of an os.Root error: ErrOutsideRoot for its escape
// error, else what cause gives (nil for nil).
func (r *Real) bare(err error) error {
	if r.isEscape(err) {
		return ErrOutsideRoot
	}
	return cause(err)
}

// Lstat describes name without following a final symlink. Mode holds the
// type bits and the permission bits including setuid, setgid and sticky.
func (r *Real) Lstat(ctx context.Context, name string) (FileInfo, error) {
	rel, err := r.begin(ctx, "lstat", name, false)
	if err != nil {
		return FileInfo{}, err
	}
	return inRoot(r, "lstat", name, rel, false, func(rel string) (FileInfo, error) {
		var fi fs.FileInfo
		var err error
		if !r.withDir(rel, func(d *os.Root, base string) { fi, err = d.Lstat(base) }) {
			fi, err = r.root.Load().Lstat(rel)
		}
		if err != nil {
			return FileInfo{}, r.fail("lstat", name, err)
		}
		return infoOf(fi), nil
	})
}

func infoOf(fi fs.FileInfo) FileInfo {
	info := FileInfo{Mode: fi.Mode(), Size: fi.Size(), UID: -1, GID: -1}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		info.UID, info.GID, info.Links = int(st.Uid), int(st.Gid), int(st.Nlink)
	}
	return info
}

// ReadFile returns the content of name, following symlinks that stay
// inside the root.
func (r *Real) ReadFile(ctx context.Context, name string) ([]byte, error) {
	rel, err := r.begin(ctx, "read", name, false)
	if err != nil {
		return nil, err
	}
	return inRoot(r, "read", name, rel, true, func(rel string) ([]byte, error) {
		var data []byte
		var err error
		if !r.withDir(rel, func(d *os.Root, base string) { data, err = ReadRegular(d, base, 0) }) || r.isEscape(err) {
			// A symlink that leaves the directory: follow it from the top.
			data, err = ReadRegular(r.root.Load(), rel, 0)
		}
		var nr *NotRegularError
		if errors.As(err, &nr) {
			return nil, notRegularError(name, nr)
		}
		if err != nil {
			return nil, r.fail("read", name, err)
		}
		return data, nil
	})
}

// notRegularError is ReadFile's error for a name that is not a regular
// file; it wraps nr.
func notRegularError(name string, nr *NotRegularError) error {
	return fmt.Errorf("read %s: %w (kplay reads only regular files in the root; remove it)", name, nr)
}

// WriteFile replaces name atomically with data, mode perm and owner
// uid:gid (-1 keeps the running user's). The temp file (see tempName)
// beside name gets its owner, then its mode (chown clears setuid, so the
// mode comes second), before any content; then the content is written
// (setuid and setgid are set again after it, since an unprivileged write
// clears them) and synced, renamed over name, and the directory is
// synced. The replaced file's SELinux label and ACL go to the new file
// (keptXattr). On error the temp file is removed and name is left as it was.
// A symlink at name is replaced, not followed; a directory at name is an
// error. Missing parents are created with mode 0755 and the running user
// as owner. Without privilege, an owner other than the running user gives
// EPERM with a hint.
func (r *Real) WriteFile(ctx context.Context, name string, data []byte, perm fs.FileMode, uid, gid int) error {
	const op = "write"
	rel, err := r.begin(ctx, op, name, true)
	if err != nil {
		return err
	}
	return inRootErr(r, op, name, rel, false, func(rel string) error {
		return r.writeFile(op, name, rel, data, perm, uid, gid)
	})
}

// writeFile is WriteFile at rel, a path relative to the root: the new
// content goes to a temp file (stageFile), which is synced, renamed over
// rel, and the directory synced. A Commit does the same for many files
// with one sync of each file system before the renames and one after.
func (r *Real) writeFile(op, name, rel string, data []byte, perm fs.FileMode, uid, gid int) error {
	tmp, err := r.stageFile(op, name, rel, data, perm, uid, gid, true)
	if err != nil {
		return err
	}
	if err := r.publishTemp(tmp, rel); err != nil {
		_ = r.root.Load().Remove(tmp) // the error that matters is err
		return r.fail(op, name, err)
	}
	dir := path.Dir(rel)
	if err := r.syncDir(dir); err != nil {
		return fmt.Errorf("%s %s: sync directory: %w", op, name, cause(err))
	}
	r.removeStaleTemps(dir)
	return nil
}

// stageFile writes data to a new temp file beside rel (tempName), with
// owner uid:gid and mode perm set before the content and the replaced
// file's labels and ACL (keptXattr), and returns the temp's path
// relative to the root; with sync, the temp is synced too. Missing
// parents of rel are made. A directory at rel is an error. On error no
// temp file is left.
func (r *Real) stageFile(op, name, rel string, data []byte, perm fs.FileMode, uid, gid int, sync bool) (string, error) {
	dir := path.Dir(rel)
	if err := r.mkdirParents(op, name, dir); err != nil {
		return "", err
	}
	var tmp string
	called := false
	err := r.inDir(rel, func(d *os.Root, base string) error {
		called = true
		fi, err := d.Lstat(base)
		if err == nil && fi.IsDir() {
			return opError(op, name, syscall.EISDIR)
		}
		var keep *os.File // the file replaced, whose labels and ACL are kept
		if old := openReplaced(d, base, fi); old != nil {
			defer old.Close()
			keep = old
		}
		f, tmpBase, err := r.createTemp(d, base)
		if err != nil {
			return r.fail(op, name, err)
		}
		err = fillTemp(f, op, name, data, perm, uid, gid)
		if err == nil && keep != nil {
			err = keepXattrs(keep, f, op, name, perm)
		}
		if err == nil && sync {
			if serr := f.Sync(); serr != nil {
				err = opError(op, name, serr)
			}
		}
		if cerr := f.Close(); err == nil && cerr != nil {
			err = r.fail(op, name, cerr)
		}
		if err != nil {
			_ = d.Remove(tmpBase) // the error that matters is err
			return err
		}
		tmp = path.Join(dir, tmpBase)
		return nil
	})
	if err != nil && !called {
		err = r.fail(op, name, err) // the directory could not be opened
	}
	return tmp, err
}

// publishTemp renames the temp file tmp over rel, in rel's directory.
// Errors are bare.
func (r *Real) publishTemp(tmp, rel string) error {
	return r.inDir(rel, func(d *os.Root, base string) error {
		return d.Rename(path.Base(tmp), base)
	})
}

// removeStaleTemps removes the temp files (or the empty temp directories)
// that kplay processes which no longer run left behind in dir, killed
// between create and rename: a file may hold an old copy of a key. Each
// directory is read once per Real, not at every write. Best effort.
func (r *Real) removeStaleTemps(dir string) {
	if _, done := r.cleaned.LoadOrStore(dir, true); done {
		return
	}
	d, err := r.root.Load().Open(dir)
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, n := range names {
		if StaleTemp(n) {
			_ = r.root.Load().Remove(path.Join(dir, n))
		}
	}
}

// StaleTemp reports whether name is a temp file or directory (tempName)
// of a kplay process that no longer runs: one killed between create and
// rename, whose debris any run may remove.
func StaleTemp(name string) bool {
	m := tempPattern.FindStringSubmatch(name)
	if m == nil {
		return false
	}
	pid, err := strconv.Atoi(m[1])
	return err == nil && pid != os.Getpid() && syscall.Kill(pid, 0) == syscall.ESRCH
}

// tempPattern matches every name tempName gives, whatever bytes its base
// holds (a newline too), and captures the pid.
var tempPattern = regexp.MustCompile(`(?s)^\..+\.kplay-([0-9]+)-[0-9]+$`)

// nameMax is NAME_MAX, the longest name of one path element in bytes on
// the file systems Linux mounts.
const nameMax = 255

// tempName is the name of the n-th temp file or directory that process
// pid makes beside base: ".<base>.kplay-<pid>-<n>". base is cut so that
// the name fits in nameMax (a name of 255 bytes is valid, and its temp
// must be too), at a character boundary so that a UTF-8 name stays UTF-8;
// the suffix is kept whole, so removeStaleTemps reads the pid back.
func tempName(base string, pid int, n uint64) string {
	suffix := ".kplay-" + strconv.Itoa(pid) + "-" + strconv.FormatUint(n, 10)
	if keep := nameMax - 1 - len(suffix); len(base) > keep {
		cut := keep
		for i := 1; i < utf8.UTFMax && cut > 1 && !utf8.RuneStart(base[cut]); i++ {
			cut--
		}
		base = base[:cut]
	}
	return "." + base + suffix
}

// tempPath is the path of a new temp name beside base in dir, unique
// within this Real.
func (r *Real) tempPath(dir, base string) string {
	return path.Join(dir, tempName(base, r.pid, r.seq.Add(1)))
}

// createTemp creates a new, empty temp file beside base in the directory
// d with O_EXCL, skipping names left behind by an earlier process with
// our pid, and returns it and its name in d.
func (r *Real) createTemp(d *os.Root, base string) (*os.File, string, error) {
	for {
		tmp := tempName(base, r.pid, r.seq.Add(1))
		f, err := d.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, tmp, err
	}
}

// fillTemp sets the owner and mode of the temp file f, then writes data.
// The owner comes first because chown clears setuid.
func fillTemp(f *os.File, op, name string, data []byte, perm fs.FileMode, uid, gid int) error {
	if err := f.Chown(uid, gid); err != nil {
		return ownerError(op, name, fmt.Errorf("set owner %d:%d: %w", uid, gid, cause(err)))
	}
	perm &= permBits
	if err := f.Chmod(perm); err != nil {
		return opError(op, name, fmt.Errorf("set mode %v: %w", perm, cause(err)))
	}
	if _, err := f.Write(data); err != nil {
		return opError(op, name, err)
	}
	// Without CAP_FSETID, a write clears setuid and setgid: set them again.
	// The content was never more open than perm.
	if perm&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
		if err := f.Chmod(perm); err != nil {
			return opError(op, name, fmt.Errorf("set mode %v: %w", perm, cause(err)))
		}
	}
	return nil
}

// keepXattrs copies the kept extended attributes of old (keptXattr) to
// f, and sets f's mode again if an ACL came with them (the playbook's mode
// wins over the ACL's mode bits).
func keepXattrs(old, f *os.File, op, name string, perm fs.FileMode) error {
	acl, err := copyKeptXattrs(old, f)
	if err != nil {
		return opError(op, name, err)
	}
	if acl {
		if err := f.Chmod(perm & permBits); err != nil {
			return opError(op, name, fmt.Errorf("set mode %v: %w", perm, cause(err)))
		}
	}
	return nil
}

func (r *Real) syncDir(dir string) error {
	d, err := r.root.Load().Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Mkdir creates the directory name with exactly perm (whatever the umask)
// and owner uid:gid (-1 keeps the running user's). Missing parents are
// created with mode 0755 and the running user as owner. An existing
// directory, or a symlink to one inside the root, is left as it is; any
// other existing file gives an error wrapping syscall.ENOTDIR.
func (r *Real) Mkdir(ctx context.Context, name string, perm fs.FileMode, uid, gid int) error {
	const op = "mkdir"
	rel, err := r.begin(ctx, op, name, true)
	if err != nil {
		return err
	}
	return inRootErr(r, op, name, rel, false, func(rel string) error {
		if rel == "." {
			return nil
		}
		if err := r.mkdirParents(op, name, path.Dir(rel)); err != nil {
			return err
		}
		return r.mkdirOne(op, name, rel, perm&permBits, uid, gid)
	})
}

// mkdirParents makes the directories of rel dir that are missing, mode
// 0755. Errors are about name, the path op was given.
func (r *Real) mkdirParents(op, name, dir string) error {
	if dir == "." {
		return nil
	}
	p := ""
	for elem := range strings.SplitSeq(dir, "/") {
		p = path.Join(p, elem)
		if err := r.mkdirOne(op, name, p, 0o755, -1, -1); err != nil {
			return err
		}
	}
	return nil
}

// mkdirOne makes the directory rel unless it exists. It creates it
// private, sets the owner and then the mode, so the directory is never
// more open than asked and the umask does not matter.
func (r *Real) mkdirOne(op, name, rel string, perm fs.FileMode, uid, gid int) error {
	if r.knownDir(rel) {
		return nil
	}
	fi, err := r.root.Load().Stat(rel)
	if r.isEscape(err) {
		// A symlink to a directory, with an absolute target, is a
		// directory as much as one with a relative target.
		switch to, cerr := r.chase(rel, true); {
		case cerr == nil:
			fi, err = r.root.Load().Stat(to)
		case cerr != ErrOutsideRoot:
			err = cerr // ENOENT: it leads nowhere, as Dry's mkdirOne finds
		}
	}
	if err == nil {
		if fi.IsDir() {
			r.markDir(rel)
			return nil
		}
		return opError(op, name, syscall.ENOTDIR)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return r.fail(op, name, err)
	}
	root := r.root.Load()
	if fi, err := root.Lstat(rel); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		// A symlink that leads nowhere: rename(2) would refuse to put
		// the directory over it, after making it.
		return opError(op, name, syscall.ENOTDIR)
	}
	// Made under a temp name and renamed into place once its owner and
	// mode are set: a run killed in between leaves no directory at rel
	// with the wrong mode, which the next run would take as made.
	tmp, err := r.mkdirTemp(path.Dir(rel), path.Base(rel))
	if err != nil {
		return r.fail(op, name, err)
	}
	err = func() error {
		if uid != -1 || gid != -1 {
			if err := root.Lchown(tmp, uid, gid); err != nil {
				return ownerError(op, name, fmt.Errorf("set owner %d:%d of /%s: %w", uid, gid, rel, cause(err)))
			}
		}
		if err := root.Chmod(tmp, perm); err != nil {
			return r.fail(op, name, err)
		}
		return root.Rename(tmp, rel)
	}()
	if err != nil {
		_ = root.Remove(tmp) // the error that matters is err
		if fi, serr := root.Stat(rel); serr == nil && fi.IsDir() {
			return nil // made by someone else meanwhile
		}
		return r.fail(op, name, err)
	}
	// A handle kept for this path reached a directory that was here
	// before (moved away since): from now on the path is this one.
	r.forgetDirsUnder(rel)
	r.markDir(rel)
	if made := r.onMade.Load(); made != nil {
		(*made)(rel)
	}
	r.removeStaleTemps(path.Dir(rel))
	return nil
}

// mkdirTemp makes a new, empty temp directory of mode 0700 beside base in
// dir, skipping names left behind by an earlier process with our pid.
func (r *Real) mkdirTemp(dir, base string) (string, error) {
	for {
		tmp := r.tempPath(dir, base)
		err := r.root.Load().Mkdir(tmp, 0o700)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return tmp, err
	}
}

// Chmod sets the permission bits of name (including setuid, setgid and
// sticky; type bits in perm are ignored). A symlink at name is refused
// rather than followed. A regular file with more than one hard link is
// replaced by a copy with the new mode (as WriteFile writes it), so the
// change never reaches the other names of the file, which may lie outside
// the root.
func (r *Real) Chmod(ctx context.Context, name string, perm fs.FileMode) error {
	const op = "chmod"
	rel, err := r.begin(ctx, op, name, true)
	if err != nil {
		return err
	}
	return inRootErr(r, op, name, rel, false, func(rel string) error {
		fi, err := r.refuseSymlink(op, name, rel)
		if err != nil {
			return err
		}
		if linked(fi) {
			return r.replaceLinked(ctx, op, name, rel, perm&permBits, fi.UID, fi.GID)
		}
		if err := r.root.Load().Chmod(rel, perm&permBits); err != nil {
			return r.fail(op, name, err)
		}
		return nil
	})
}

// Chown sets the owner and group of name (-1 leaves one as it is). A
// symlink at name is refused rather than followed. As the kernel does, it
// clears setuid, and setgid on a group-executable file, of anything but a
// directory: set the mode after the owner. A regular file with more than
// one hard link is replaced by a copy with the new owner, as Chmod does.
// Without privilege, an owner other than the running user gives EPERM
// with a hint.
func (r *Real) Chown(ctx context.Context, name string, uid, gid int) error {
	const op = "chown"
	rel, err := r.begin(ctx, op, name, true)
	if err != nil {
		return err
	}
	return inRootErr(r, op, name, rel, false, func(rel string) error {
		fi, err := r.refuseSymlink(op, name, rel)
		if err != nil {
			return err
		}
		if linked(fi) {
			perm := fi.Perm() &^ fs.ModeSetuid
			if perm&0o010 != 0 {
				perm &^= fs.ModeSetgid
			}
			return r.replaceLinked(ctx, op, name, rel, perm, idOr(uid, fi.UID), idOr(gid, fi.GID))
		}
		// Lchown: should name become a symlink after the check, the
		// link is changed, never its target.
		if err := r.root.Load().Lchown(rel, uid, gid); err != nil {
			if r.isEscape(err) {
				return outsideError(op, name, r.dir)
			}
			return ownerError(op, name, err)
		}
		return nil
	})
}

// linked reports whether fi is a regular file with other hard links: a
// name elsewhere, perhaps outside the root, shares its inode, so a chmod
// or chown in place would change that file too.
func linked(fi FileInfo) bool {
	return fi.IsRegular() && fi.Links > 1
}

// replaceLinked gives the hard-linked regular file rel a fresh inode with
// its content and mode perm, owner uid:gid, through WriteFile's atomic
// replace; the other links keep the old inode, unchanged.
func (r *Real) replaceLinked(ctx context.Context, op, name, rel string, perm fs.FileMode, uid, gid int) error {
	data, err := r.root.Load().ReadFile(rel)
	if err != nil {
		return r.fail(op, name, err)
	}
	if err := r.WriteFile(ctx, name, data, perm, uid, gid); err != nil {
		return fmt.Errorf("%s %s: replace the hard-linked file: %w", op, name, err)
	}
	return nil
}

// refuseSymlink describes rel, or refuses it if it is a symlink.
func (r *Real) refuseSymlink(op, name, rel string) (FileInfo, error) {
	fi, err := r.root.Load().Lstat(rel)
	if err != nil {
		return FileInfo{}, r.fail(op, name, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return FileInfo{}, symlinkError(op, name)
	}
	return infoOf(fi), nil
}

// ReadLocal reads name on the machine running kplay, outside the root by
// design (the src of a file step); name is absolute or relative to the
// working directory. It reads regular files only (a named pipe would
// block, a device could fill the memory) of at most SrcLimit bytes.
func (r *Real) ReadLocal(ctx context.Context, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read local file %s: %w", name, err)
	}
	var data []byte
	var err error
	if r.local != nil {
		data, err = r.local.read(name)
	} else {
		data, err = ReadRegular(nil, name, SrcLimit)
	}
	var nr *NotRegularError
	var big *FileSizeError
	switch {
	case errors.As(err, &nr):
		return nil, fmt.Errorf("read local file %s: %s, not a regular file (give a regular file)", name, nr.Kind)
	case errors.As(err, &big):
		return nil, fmt.Errorf("read local file %s: %v", name, big)
	}
	if err != nil {
		return nil, fmt.Errorf("read local file %s: %w", name, cause(err))
	}
	return data, nil
}

// LocalSources are files shipped from another machine, the controller
// of a fleet run, laid out in Dir under their absolute paths there:
// the controller's /srv/pb/ca.pem is Dir/srv/pb/ca.pem. A relative name
// is relative to WorkDir, the controller's working directory.
type LocalSources struct {
	root    *os.Root // of Dir: no name leaves it
	dir     string
	workDir string
}

// OpenLocalSources opens dir as the LocalSources of a controller whose
// working directory was workDir (absolute).
func OpenLocalSources(dir, workDir string) (*LocalSources, error) {
	if !filepath.IsAbs(workDir) {
		return nil, fmt.Errorf("local sources: working directory %q is not absolute", workDir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("local sources: %w", cause(err))
	}
	return &LocalSources{root: root, dir: dir, workDir: workDir}, nil
}

// Path is where the shipped copy of the controller's file name is on
// this machine. Clients that read files by name (TLS files, a
// kubeconfig) are given it. "" stays "", and a nil l (no shipped files:
// not a fleet host) keeps name as it is.
func (l *LocalSources) Path(name string) string {
	if l == nil || name == "" {
		return name
	}
	return filepath.Join(l.dir, l.abs(name))
}

// TLS is f with each file's shipped copy (Path).
func (l *LocalSources) TLS(f TLSFiles) TLSFiles {
	return TLSFiles{CAFile: l.Path(f.CAFile), CertFile: l.Path(f.CertFile), KeyFile: l.Path(f.KeyFile)}
}

// Close closes the directory.
func (l *LocalSources) Close() error { return l.root.Close() }

// abs is the controller's absolute path of name.
func (l *LocalSources) abs(name string) string {
	if filepath.IsAbs(name) {
		return filepath.Clean(name)
	}
	return filepath.Join(l.workDir, name)
}

func (l *LocalSources) read(name string) ([]byte, error) {
	rel := strings.TrimPrefix(l.abs(name), "/")
	if rel == "" {
		rel = "."
	}
	return ReadRegular(l.root, rel, SrcLimit)
}

// Readlink returns the target of the symlink name as stored; an absolute
// target is a path inside the root (it is not followed). A name that is
// not a symlink gives an error wrapping syscall.EINVAL.
func (r *Real) Readlink(ctx context.Context, name string) (string, error) {
	rel, err := r.begin(ctx, "readlink", name, false)
	if err != nil {
		return "", err
	}
	return inRoot(r, "readlink", name, rel, false, func(rel string) (string, error) {
		target, err := r.root.Load().Readlink(rel)
		if err != nil {
			return "", r.fail("readlink", name, err)
		}
		return target, nil
	})
}

// Symlink creates the symlink name pointing to target, stored as given:
// an absolute target such as "/dev/null" or
// "/etc/systemd/system/foo.service" is a path inside the root, as
// systemctl --root writes it, and later operations through it resolve it
// there (inRoot). Missing parents are created with mode 0755 and the
// running user as owner. An existing name, even a symlink to target,
// gives an error wrapping fs.ErrExist.
func (r *Real) Symlink(ctx context.Context, target, name string) error {
	const op = "symlink"
	rel, err := r.begin(ctx, op, name, true)
	if err != nil {
		return err
	}
	if rel == "." {
		return opError(op, name, syscall.EEXIST)
	}
	return inRootErr(r, op, name, rel, false, func(rel string) error {
		if err := r.mkdirParents(op, name, path.Dir(rel)); err != nil {
			return err
		}
		if err := r.root.Load().Symlink(target, rel); err != nil {
			return r.fail(op, name, err)
		}
		return nil
	})
}

// Remove removes the file, symlink (not its target) or empty directory
// name. A directory with entries gives an error wrapping
// syscall.ENOTEMPTY; a missing name one wrapping fs.ErrNotExist.
func (r *Real) Remove(ctx context.Context, name string) error {
	const op = "remove"
	rel, err := r.begin(ctx, op, name, true)
	if err != nil {
		return err
	}
	if rel == "." {
		return opError(op, name, syscall.EBUSY)
	}
	// The directory handles may reach what goes (a directory, or one
	// behind a symlink): drop them.
	r.forgetDirs()
	return inRootErr(r, op, name, rel, false, func(rel string) error {
		if err := r.root.Load().Remove(rel); err != nil {
			return r.fail(op, name, err)
		}
		return nil
	})
}

// ReadDir returns the names of the entries of directory name, sorted,
// without "." and "..". A symlink to a directory inside the root is
// followed. A name that is not a directory gives an error wrapping
// syscall.ENOTDIR.
func (r *Real) ReadDir(ctx context.Context, name string) ([]string, error) {
	const op = "readdir"
	rel, err := r.begin(ctx, op, name, false)
	if err != nil {
		return nil, err
	}
	return inRoot(r, op, name, rel, true, func(rel string) ([]string, error) {
		f, err := r.root.Load().Open(rel)
		if err != nil {
			return nil, r.fail(op, name, err)
		}
		defer f.Close()
		names, err := f.Readdirnames(-1)
		if err != nil {
			return nil, r.fail(op, name, err)
		}
		slices.Sort(names)
		return names, nil
	})
}

// Systemd returns the Systemd given with WithSystemd, else NewOffline(r):
// unit files and [Install] symlinks of this root, as systemctl --root.
func (r *Real) Systemd() Systemd {
	if r.sd != nil {
		return r.sd
	}
	return NewOffline(r)
}
