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

	"golang.org/x/sys/unix"
)

// OpKind is the kind of change an Op records.
type OpKind int

// The changes a recording Dry keeps: one for each of Host's writing
// methods.
const (
	OpWrite   OpKind = iota + 1 // WriteFile(Name, Data, Perm, UID, GID)
	OpMkdir                     // Mkdir(Name, Perm, UID, GID)
	OpChmod                     // Chmod(Name, Perm)
	OpChown                     // Chown(Name, UID, GID)
	OpSymlink                   // Symlink(Target, Name)
	OpRemove                    // Remove(Name)
)

// Op is one change that a recording Dry made in memory (Dry.Record), with
// the arguments it was given: what Commit makes on a Real.
type Op struct {
	Kind OpKind
	// Name is the path the step gave; At is where the change landed in
	// the dry tree: Name with every symlink on the way resolved (the
	// last element too where the method follows it). Two ops with the
	// same At change the same file, whatever their Names.
	Name, At string
	Data     []byte      // OpWrite
	Perm     fs.FileMode // OpWrite, OpMkdir, OpChmod
	UID, GID int         // OpWrite, OpMkdir, OpChown
	Target   string      // OpSymlink
	// State marks a write of kplay's own state (the journal, a ledger,
	// the fingerprint key), which the caller made sure has no symlink
	// on the way (CheckStatePath): such writes come first in the ops,
	// and Commit makes them durable together, in one round of fsyncs,
	// before any other op (not even a directory the next write needs is
	// made before them).
	State bool
}

// Committer is a host that can make the changes a recording Dry kept, as
// one batch (Real.Commit).
type Committer interface {
	Commit(ctx context.Context, ops []Op) (failed int, err error)
}

var _ Committer = (*Real)(nil)

// Commit makes ops on the root, in their order, and makes them durable:
// ops are what a Dry over this Real recorded (Dry.Record) while a batch
// of steps ran on it, so Commit finds the root as that Dry read it, and
// each op lands where it landed there (Op.At).
//
// A run of consecutive file writes goes to temp files beside their
// targets (as WriteFile's does), neither synced nor renamed at once; the
// temp files are then made durable together, renamed over their targets
// in order, and the renames made durable. So a file's new content is on
// disk before the rename that publishes it, as with WriteFile, for a
// sync of the run instead of two fsyncs a file. The other ops (mkdir,
// symlink, remove, chmod, chown) come after the writes before them are
// published, so every change reaches the root in the order the steps
// made it, and a failed rename leaves nothing of what follows. A
// second write of a file waiting for its rename comes after it too.
//
// How writes are made durable: a run of more than smallBatch writes, by
// syncfs(2) of each file system it touches, before and after the renames
// (two system calls for thousands of files); a smaller run, or any run on
// a kernel older than 5.8 (whose syncfs does not report write-back
// errors), by fsync(2) of each temp file before the renames and of each
// directory on the way to them after, several at once. syncfs writes
// whatever other processes left dirty on those file systems too: cheap on
// a quiet disk, but a few files would wait for a busy one
// (docs/performance.md).
//
// An op that lands in kplay's state (StatePathError), through a symlink
// made since the check, is refused. Directory handles kept from before
// are dropped when Commit starts and ends: a directory moved away since
// (out of the root, even) is never written through.
//
// On error, what came before the failing op is published and made
// durable as far as the error allows, nothing after it is made (but the
// missing directories of a write staged in the same run), and Commit
// returns the failing op's index with the error, which names its Name as
// the other methods' errors do. A failure of a sync is the error of the
// first write it concerns. Commit does not stop for a cancelled ctx: the
// batch's steps are done in the dry tree, and what ops it makes it makes
// whole.
func (r *Real) Commit(ctx context.Context, ops []Op) (failed int, err error) {
	ctx = context.WithoutCancel(ctx)
	r.forgetDirs()
	defer r.forgetDirs()
	b := &batch{r: r, waiting: map[string]bool{}, syncers: map[uint64]*os.File{}, devOf: map[string]uint64{}, dirs: map[string]bool{}}
	defer b.close()
	made := func(rel string) { b.touch(path.Dir("/" + rel)) }
	r.onMade.Store(&made)
	defer r.onMade.Store(nil)
	b.track("/") // before the first write, so that syncfs reports its errors
	for i, op := range ops {
		last := len(b.staged) - 1
		if op.Kind != OpWrite && last >= 0 || b.waiting[op.At] || !op.State && last >= 0 && b.staged[last].state {
			if j, err := b.publish(); err != nil {
				return j, err
			}
		}
		if err := StatePathError(op.At); err != nil && !op.State {
			if j, perr := b.publish(); perr != nil {
				return j, perr
			}
			return i, fmt.Errorf("%s %s: a symlink in the root makes it %s: %w", opNames[op.Kind], op.Name, op.At, err)
		}
		if err := b.make(ctx, i, op); err != nil {
			if j, perr := b.publish(); perr != nil {
				return j, perr
			}
			return i, err
		}
	}
	return b.publish()
}

// smallBatch is the most writes a run of them makes durable with fsyncs
// rather than syncfs: measured on this project's machines, two syncfs
// calls cost about what a dozen fsyncs do on a quiet disk, and far more
// when another process keeps the disk busy (docs/performance.md).
const smallBatch = 32

// syncfsReportsErrors is whether this kernel's syncfs(2) returns the
// write-back errors of the file system (Linux 5.8 and later).
var syncfsReportsErrors = func() bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	var major, minor int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor); err != nil {
		return false
	}
	return major > 5 || major == 5 && minor >= 8
}()

// batch is the state of one Commit.
type batch struct {
	r       *Real
	staged  []staged        // temp files waiting for their rename, in order
	waiting map[string]bool // their At
	dirty   bool            // something was made since the last publish
	// dirs are the directories whose entries the ops since the last
	// publish changed, all the way up (for fsyncs); syncers hold a
	// directory open on each file system the batch touched, by device,
	// for syncfs; devOf is the device of each directory seen.
	dirs    map[string]bool
	syncers map[uint64]*os.File
	devOf   map[string]uint64
}

// staged is a file written to a temp name, waiting for its rename.
type staged struct {
	state    bool   // Op.State
	op       int    // its index in the ops
	name     string // Op.Name, for errors
	at       string // Op.At
	rel, tmp string // target and temp file, relative to the root
}

// make makes op i: a write is staged; the others are made now.
func (b *batch) make(ctx context.Context, i int, op Op) error {
	r := b.r
	b.dirty = true
	b.touch(path.Dir(op.At))
	var err error
	switch op.Kind {
	case OpWrite:
		return b.stage(ctx, i, op)
	case OpMkdir:
		err = r.Mkdir(ctx, op.Name, op.Perm, op.UID, op.GID)
	case OpChmod:
		err = r.Chmod(ctx, op.Name, op.Perm)
	case OpChown:
		err = r.Chown(ctx, op.Name, op.UID, op.GID)
	case OpSymlink:
		err = r.Symlink(ctx, op.Target, op.Name)
	case OpRemove:
		err = r.Remove(ctx, op.Name)
	default:
		return fmt.Errorf("commit: unknown op %d on %s", op.Kind, op.Name)
	}
	if err == nil {
		// Its file system too is synced, should a syncfs make the
		// batch durable (a mkdir on a /var mounted apart).
		b.track(path.Dir(op.At))
		reach(opNames[op.Kind], op.At)
	}
	return err
}

// opNames name the kinds of Op, for failpoints and errors.
var opNames = map[OpKind]string{OpWrite: "write", OpMkdir: "mkdir", OpChmod: "chmod", OpChown: "chown", OpSymlink: "symlink", OpRemove: "remove"}

// stage writes the temp file of op i at op.At, which has no symlink on
// the way (the Dry resolved it as the Real does).
func (b *batch) stage(ctx context.Context, i int, op Op) error {
	const verb = "write"
	r := b.r
	if _, err := r.begin(ctx, verb, op.Name, true); err != nil {
		return err
	}
	rel := relOf(op.At)
	if rel == "." {
		return opError(verb, op.Name, syscall.EISDIR)
	}
	b.track(path.Dir(op.At))
	tmp, err := r.stageFile(verb, op.Name, rel, op.Data, op.Perm, op.UID, op.GID, false)
	if err != nil {
		return err
	}
	b.staged = append(b.staged, staged{state: op.State, op: i, name: op.Name, at: op.At, rel: rel, tmp: tmp})
	b.waiting[op.At] = true
	b.track(path.Dir(op.At)) // made just now, perhaps on another file system
	reach("staged", op.At)
	return nil
}

// relOf is the path of at, a clean absolute path in the root, relative
// to the root ("." for "/").
func relOf(at string) string {
	if at == "/" {
		return "."
	}
	return at[1:]
}

// touch notes dir as a directory whose entries changed, for the fsyncs
// after a publish. The directories Real makes on the way, the commit
// notes through Real.onMade: their parents changed.
func (b *batch) touch(dir string) {
	b.dirs[dir] = true
}

// track notes the file system of dir, a directory in the root, for
// syncfs; a directory it cannot open (not made yet) is left for later.
func (b *batch) track(dir string) {
	if _, ok := b.devOf[dir]; ok {
		return
	}
	root := b.r.root.Load()
	if root == nil {
		return
	}
	f, err := root.Open(relOf(dir))
	if err != nil {
		return
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return
	}
	b.devOf[dir] = st.Dev
	if _, ok := b.syncers[st.Dev]; ok {
		f.Close()
		return
	}
	b.syncers[st.Dev] = f
}

// publish makes the staged temp files durable, renames each over its
// target in order, and makes the renames and whatever else was made
// durable. On error it returns the index of the op concerned; the temp
// files not renamed are removed.
func (b *batch) publish() (int, error) {
	if !b.dirty {
		return -1, nil
	}
	staged, dirs := b.staged, b.dirs
	b.staged, b.dirty, b.dirs = nil, false, map[string]bool{}
	clear(b.waiting)
	byFsync := len(staged) <= smallBatch || !syncfsReportsErrors
	first := -1
	if len(staged) > 0 {
		first = staged[0].op
		var err error
		if byFsync {
			err = b.fsyncTemps(staged)
		} else {
			err = b.syncfs()
		}
		if err != nil {
			b.drop(staged)
			return first, opError("write", staged[0].name, fmt.Errorf("sync: %w", err))
		}
		reach("synced", "the staged files")
	}
	for k, s := range staged {
		if err := b.r.publishTemp(s.tmp, s.rel); err != nil {
			b.drop(staged[k+1:])
			_ = b.r.root.Load().Remove(s.tmp)
			_ = b.syncDirs(dirs, byFsync) // what was renamed stays renamed
			return s.op, b.r.fail("write", s.name, err)
		}
		reach("renamed", s.at)
	}
	if err := b.syncDirs(dirs, byFsync); err != nil {
		name := b.r.dir
		if len(staged) > 0 {
			name = staged[0].name
		}
		return first, opError("write", name, fmt.Errorf("sync: %w", err))
	}
	reach("synced", "the batch")
	for _, s := range staged {
		b.r.removeStaleTemps(path.Dir(s.rel))
	}
	return -1, nil
}

// syncfs calls syncfs(2) on each file system the batch touched.
func (b *batch) syncfs() error {
	for _, f := range b.syncers {
		if err := unix.Syncfs(int(f.Fd())); err != nil {
			return err
		}
	}
	return nil
}

// fsyncTemps syncs each staged temp file, several at once: the file
// system commits concurrent fsyncs together.
func (b *batch) fsyncTemps(staged []staged) error {
	paths := make([]string, len(staged))
	for i, s := range staged {
		paths[i] = s.tmp
	}
	return b.fsyncAll(paths, os.O_RDONLY|unix.O_NOFOLLOW)
}

// syncDirs makes the changes to the entries of dirs durable: by fsync of
// each, or by syncfs.
func (b *batch) syncDirs(dirs map[string]bool, byFsync bool) error {
	if !byFsync {
		return b.syncfs()
	}
	paths := make([]string, 0, len(dirs))
	for d := range dirs {
		paths = append(paths, relOf(d))
	}
	slices.Sort(paths)
	return b.fsyncAll(paths, os.O_RDONLY|unix.O_DIRECTORY)
}

// fsyncAll opens each of paths (relative to the root) with flag and
// fsyncs it, several at once. A path that is gone, or no longer a
// directory (one removed, or replaced by a file) is skipped: the entry
// that changed is in its parent, which is synced too. It returns the
// first error.
func (b *batch) fsyncAll(paths []string, flag int) error {
	root := b.r.root.Load()
	if root == nil || len(paths) == 0 {
		return nil
	}
	const workers = 8
	errs := make([]error, len(paths))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(workers, len(paths)) {
		wg.Go(func() {
			for i := range next {
				f, err := root.OpenFile(paths[i], flag, 0)
				if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
					continue
				}
				if err == nil {
					err = f.Sync()
					f.Close()
				}
				errs[i] = err
			}
		})
	}
	for i := range paths {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("/%s: %w", paths[i], err)
		}
	}
	return nil
}

// drop removes the temp files of staged.
func (b *batch) drop(staged []staged) {
	for _, s := range staged {
		_ = b.r.root.Load().Remove(s.tmp) // best effort: a later run removes what stays
	}
}

// close releases the directories held for the syncs.
func (b *batch) close() {
	for _, f := range b.syncers {
		f.Close()
	}
}
