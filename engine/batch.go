package engine

import (
	"context"
	"fmt"
	"io/fs"
	"slices"

	"github.com/kplay-dev/kplay/host"
)

// Batchable is a step that, on the host h of a run, reads and changes
// nothing but files of the root: no live service manager, etcd, HTTP or
// API server. A run on a host.Committer (a Real) applies consecutive
// such steps to a recording dry host over it, then commits their changes
// at once (host.Real.Commit): two syncs of the file system for the
// batch, where writing each file on its own costs two fsyncs a file.
//
// A batch ends before any other step, since that step may observe the
// batch's effects on the live system (a daemon-reload reads the unit
// files, a restart the configuration), and before a step whose on_change
// names a step of the batch; so what a person sees happen keeps the
// declaration order. The results of a batch's steps are observed once it
// is committed: a line printed is a change made, and durable.
type Batchable interface {
	Batchable(h host.Host) bool
}

// batch is the open batch of a run: the recording dry host its steps run
// on, and where each step's results and changes start.
type batch struct {
	dry     *host.Dry
	state   []host.Op // writes of kplay's own files, committed first (stateWriter)
	counted int       // ops whose bytes are counted
	bytes   int       // of the content its ops write
	steps   []batched
	ids     map[int]bool    // IDs of its plan steps, for on_change
	groups  map[string]bool // their groups (Grouper), for on_change
}

type batched struct {
	step    Step
	results int // len(a.results) before it ran
	ops     int // len(dry.Ops()) before it ran
}

// batchable reports whether s may run in a batch on the run's host, and
// whether it must start a new one: its on_change names a step of the
// open batch, whose change it must see made.
func (a *applier) batchable(s Step) (ok, fresh bool) {
	if a.committer == nil {
		return false, false
	}
	m := s.Meta()
	if !a.sel.selects(m) && !isEngineReload(m) {
		return true, false // not selected: it touches nothing
	}
	b, isBatchable := inner(s).(Batchable)
	if !isBatchable || !b.Batchable(a.real) {
		return false, false
	}
	if open := a.batch; open != nil {
		for _, id := range m.OnChange {
			if open.ids[id] || a.groupOf[id] != "" && open.groups[a.groupOf[id]] {
				return true, true
			}
		}
	}
	return true, false
}

// do does step s: in the open batch (opening one) if it is batchable,
// else on the real host once the open batch is committed. The results of
// steps done outside a batch are observed at once.
func (a *applier) do(ctx context.Context, s Step) error {
	if a.start != nil {
		a.start(s.Meta())
	}
	ok, fresh := a.batchable(s)
	if !ok || fresh {
		if err := a.commit(ctx); err != nil {
			return err
		}
	}
	if !ok {
		err := a.step(ctx, s)
		a.emit()
		return err
	}
	if a.batch == nil {
		dry := host.NewDry(a.real)
		dry.Record()
		a.batch = &batch{dry: dry, ids: map[int]bool{}, groups: map[string]bool{}}
		a.h = dry
		a.journal.hold()
	}
	b := a.batch
	m := s.Meta()
	b.steps = append(b.steps, batched{step: s, results: len(a.results), ops: len(b.dry.Ops())})
	if m.ID >= 0 {
		b.ids[m.ID] = true
	}
	if g := groupOf(s); g != "" {
		b.groups[g] = true
	}
	if err := a.step(ctx, s); err != nil {
		// What the batch did before it (and it, before it failed) is
		// made, as without a batch.
		if cerr := a.commit(ctx); cerr != nil {
			return cerr
		}
		return err
	}
	ops := b.dry.Ops()
	for _, op := range ops[b.counted:] {
		b.bytes += len(op.Data)
	}
	b.counted = len(ops)
	if len(ops) >= maxBatchOps || b.bytes >= maxBatchBytes {
		return a.commit(ctx)
	}
	return nil
}

// A batch is committed once it holds maxBatchOps changes or
// maxBatchBytes of content, whatever follows: the dry host holds all of
// it in memory until then, and one sync writes it all. Past a few
// thousand files, a sync more costs little (docs/performance.md).
const (
	maxBatchOps   = 2048
	maxBatchBytes = 16 << 20
)

// commit makes the open batch's changes on the real host, and observes
// its results. The journal's new owed actions are written before the
// changes that owe them, and the actions done in the batch are taken out
// after. If the commit fails at a step's change, the results of the steps
// before it stand and the error is that step's.
func (a *applier) commit(ctx context.Context) error {
	b := a.batch
	if b == nil {
		return nil
	}
	a.batch, a.h = nil, a.real
	ctx = context.WithoutCancel(ctx) // the batch's steps are done: make them whole
	first := b.steps[0].step.Meta()
	a.journal.h = stateWriter{a.real, b}
	err := a.journal.release(ctx, true)
	a.journal.h = a.real
	if err != nil {
		a.results = a.results[:b.steps[0].results]
		return &Error{Pos: first.Pos, Err: err}
	}
	ops := append(slices.Clip(b.state), b.dry.Ops()...)
	if failed, err := a.committer.Commit(ctx, ops); err != nil {
		failed -= len(b.state) // an op of kplay's state counts as the first step's
		k := len(b.steps) - 1
		for k > 0 && b.steps[k].ops > failed {
			k--
		}
		a.results = a.results[:b.steps[k].results]
		a.emit()
		m := b.steps[k].step.Meta()
		return &Error{Pos: m.Pos, Err: a.secrets.redactError(fmt.Errorf("%s %s: %w", m.Kind, m.Target, err))}
	}
	if err := a.journal.release(ctx, false); err != nil {
		a.emit()
		return &Error{Pos: b.steps[len(b.steps)-1].step.Meta().Pos, Err: err}
	}
	a.emit()
	return nil
}

// stateHost is where kplay writes its own files during the pass: the
// real host, or while a batch is open, the real host with its writes
// committed with the batch (stateWriter).
func (a *applier) stateHost() host.Host {
	if a.batch != nil {
		return stateWriter{a.real, a.batch}
	}
	return a.real
}

// stateWriter is a host whose WriteFile queues the write in batch b, to
// be committed ahead of b's changes (host.Op.State): the journal of the
// actions they owe, the ledger's intent, the fingerprint key. They are
// made durable with b's first files, in one round of syncs, and
// published before any of b's changes. Everything else goes to the
// host.
type stateWriter struct {
	host.Host
	b *batch
}

func (w stateWriter) WriteFile(_ context.Context, name string, data []byte, perm fs.FileMode, uid, gid int) error {
	op := host.Op{Kind: host.OpWrite, Name: name, At: name, Data: slices.Clone(data), Perm: perm, UID: uid, GID: gid, State: true}
	for i := range w.b.state {
		if w.b.state[i].At == name {
			w.b.state[i] = op // the last content of one file
			return nil
		}
	}
	w.b.state = append(w.b.state, op)
	return nil
}

// emit gives observe the results it has not seen.
func (a *applier) emit() {
	for ; a.emitted < len(a.results); a.emitted++ {
		if a.observe != nil {
			a.observe(a.results[a.emitted])
		}
	}
}

// Batchable: an engine reload runs only on a live system.
func (s *reloadStep) Batchable(h host.Host) bool { return !h.Systemd().Live() }

// Batchable: a ledger's note touches nothing.
func (s *leftStep) Batchable(host.Host) bool { return true }
