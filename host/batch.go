package host

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
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
// Each file write goes to a temp file beside its target (as WriteFile's
// does) but is neither synced nor renamed at once: the temp files of a
// batch are made durable together by one syncfs(2) of each file system
// they are on, then renamed over their targets in order, then the
// renames (and the directories, links and removals made meanwhile) are
// made durable by a second syncfs. So a file's new content is on disk
// before the rename that publishes it, as with WriteFile, for two
// syncs a batch instead of two fsyncs a file. The other ops are made at
// their turn; an op on a file still waiting for its rename, or on one of
// its directories, first publishes what waits (so a later write of the
// same file, or a chmod of its directory, comes after it).
//
// On error, what came before the failing op is published and made
// durable as far as the error allows, nothing after it is made, and
// Commit returns the failing op's index with the error, which names its
// Name as the other methods' errors do. A failure of a sync or rename is
// the error of the first op it concerns. Commit does not stop for a
// cancelled ctx: the batch's steps are done in the dry tree, and what
// ops it makes it makes whole.
//
// syncfs also writes what other processes left dirty on those file
// systems; on a master that is little, and one sync costs less than the
// fsyncs of a dozen files (docs/performance.md).
func (r *Real) Commit(ctx context.Context, ops []Op) (failed int, err error) {
	ctx = context.WithoutCancel(ctx)
	b := &batch{r: r, waiting: map[string]bool{}, under: map[string]int{}, syncers: map[uint64]*os.File{}, devOf: map[string]uint64{}}
	defer b.close()
	for i, op := range ops {
		if b.conflicts(op) {
			if j, err := b.publish(); err != nil {
				return j, err
			}
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

// batch is the state of one Commit.
type batch struct {
	r       *Real
	staged  []staged        // temp files waiting for their rename, in order
	waiting map[string]bool // their At
	under   map[string]int  // directories of their At (all the way up): how many wait below
	dirty   bool            // something was made since the last publish
	// syncers hold a directory open on each file system the batch
	// touched, by device, for syncfs; devOf is the device of each
	// directory seen.
	syncers map[uint64]*os.File
	devOf   map[string]uint64
}

// staged is a file written to a temp name, waiting for its rename.
type staged struct {
	op       int    // its index in the ops
	name     string // Op.Name, for errors
	at       string // Op.At
	rel, tmp string // target and temp file, relative to the root
}

// conflicts reports whether op must wait until the staged files are
// published: it changes one of them, or one of their directories (a
// chmod or chown there could keep the rename from happening; a remove
// would fail while they wait).
func (b *batch) conflicts(op Op) bool {
	if b.waiting[op.At] {
		return true
	}
	return op.Kind != OpWrite && op.Kind != OpMkdir && b.under[op.At] > 0
}

// make makes op i: a write is staged; the others are made now.
func (b *batch) make(ctx context.Context, i int, op Op) error {
	r := b.r
	b.dirty = true
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
		b.track(path.Dir(op.At))
		reach(opNames[op.Kind], op.At)
	}
	return err
}

// opNames name the kinds of Op, for failpoints.
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
	tmp, err := r.stageFile(verb, op.Name, rel, op.Data, op.Perm, op.UID, op.GID, false)
	if err != nil {
		return err
	}
	b.staged = append(b.staged, staged{op: i, name: op.Name, at: op.At, rel: rel, tmp: tmp})
	b.waiting[op.At] = true
	for d := path.Dir(op.At); ; d = path.Dir(d) {
		b.under[d]++
		if d == "/" {
			break
		}
	}
	b.track(path.Dir(op.At))
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

// track notes the file system of dir, a directory in the root, for the
// syncs; a directory it cannot open is the root's file system.
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
		f, err = root.Open(".")
		if err != nil {
			return
		}
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
	staged := b.staged
	b.staged, b.dirty = nil, false
	clear(b.waiting)
	clear(b.under)
	first := func() (int, string) {
		if len(staged) > 0 {
			return staged[0].op, staged[0].name
		}
		return -1, b.r.dir
	}
	if len(staged) > 0 {
		if err := b.sync(); err != nil {
			b.drop(staged)
			i, name := first()
			return i, opError("write", name, fmt.Errorf("sync the file system: %w", err))
		}
		reach("synced", "the staged files")
	}
	for k, s := range staged {
		if err := b.r.publishTemp(s.tmp, s.rel); err != nil {
			b.drop(staged[k:])
			_ = b.sync() // what was renamed stays renamed
			return s.op, b.r.fail("write", s.name, err)
		}
		reach("renamed", s.at)
	}
	if err := b.sync(); err != nil {
		i, name := first()
		return i, opError("write", name, fmt.Errorf("sync the file system: %w", err))
	}
	reach("synced", "the batch")
	for _, s := range staged {
		b.r.removeStaleTemps(path.Dir(s.rel))
	}
	return -1, nil
}

// sync calls syncfs(2) on each file system the batch touched.
func (b *batch) sync() error {
	for _, f := range b.syncers {
		if err := unix.Syncfs(int(f.Fd())); err != nil {
			return err
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
