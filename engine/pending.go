package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"

	"github.com/kplay-dev/kplay/host"
)

// PendingFile is the journal of actions a run owes: a restart whose
// on_change step changed, or a daemon-reload after a unit file changed. An
// action goes in before the change is written and comes out once it ran,
// so a run that is killed or fails in between leaves it for the next run,
// which runs it although the file no longer differs. check reads it and
// shows the owed actions, and writes nothing.
const PendingFile = "/var/lib/kplay/pending.json"

// reloadKey is the journal's name for a daemon-reload owed: the Key of
// a systemctl("daemon-reload") step.
const reloadKey = "systemctl daemon-reload"

type journal struct {
	Pending []string `json:"pending"`
}

// pending is the journal of one pass, kept in the host (the dry host keeps
// its writes in memory).
//
// While a batch is open (hold), saves wait: release writes, before the
// batch's changes are made, every action owed before or since (more is
// safe: an action owed runs once more), and after them what is still
// owed. An action done within a batch is one that cannot run on this
// root (offline): a step that could observe a change runs outside it.
type pending struct {
	h    host.Host
	set  map[string]bool
	disk map[string]bool // what the journal file lists
	held bool
}

func loadPending(ctx context.Context, h host.Host) (*pending, error) {
	p := &pending{h: h, set: map[string]bool{}, disk: map[string]bool{}}
	data, fi, err := readState(ctx, h, PendingFile)
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, err
	}
	var j journal
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("read %s: %v (it lists actions an earlier run owes; fix or remove it)", PendingFile, err)
	}
	for _, k := range j.Pending {
		p.set[k], p.disk[k] = true, true
	}
	if fi.Perm() != stateMode {
		// Written by an older kplay, or opened up by hand: close it.
		if err := p.save(ctx); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *pending) has(key string) bool { return p.set[key] }

// add records actions as owed, before the change that owes them.
func (p *pending) add(ctx context.Context, keys ...string) error {
	changed := false
	for _, k := range keys {
		if !p.set[k] {
			p.set[k], changed = true, true
		}
	}
	if !changed {
		return nil
	}
	return p.save(ctx)
}

// done records that an action ran (or cannot run here).
func (p *pending) done(ctx context.Context, key string) error {
	if !p.set[key] {
		return nil
	}
	delete(p.set, key)
	return p.save(ctx)
}

// keepOnly forgets owed actions that are not in known.
func (p *pending) keepOnly(ctx context.Context, known map[string]bool) error {
	changed := false
	for k := range p.set {
		if !known[k] {
			delete(p.set, k)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return p.save(ctx)
}

// hold makes saves wait for release.
func (p *pending) hold() { p.held = true }

// release writes what held saves left unwritten: with before, the
// actions owed now and those the file lists (the batch's changes are not
// made yet, and what was owed before them still is); else the actions
// owed now, and saves no longer wait.
func (p *pending) release(ctx context.Context, before bool) error {
	want := maps.Clone(p.set)
	if before {
		maps.Copy(want, p.disk)
	} else {
		p.held = false
	}
	if maps.Equal(want, p.disk) {
		return nil
	}
	return p.write(ctx, want)
}

func (p *pending) save(ctx context.Context) error {
	if p.held {
		return nil
	}
	return p.write(ctx, p.set)
}

// write makes the journal file list keys (none: no file).
func (p *pending) write(ctx context.Context, keys map[string]bool) error {
	if err := p.writeKeys(ctx, keys); err != nil {
		return err
	}
	p.disk = maps.Clone(keys)
	return nil
}

func (p *pending) writeKeys(ctx context.Context, set map[string]bool) error {
	if len(set) == 0 {
		err := p.h.Remove(ctx, PendingFile)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	keys := slices.Sorted(maps.Keys(set))
	data, err := json.MarshalIndent(journal{Pending: keys}, "", "  ")
	if err != nil {
		return err
	}
	return p.h.WriteFile(ctx, PendingFile, append(data, '\n'), stateMode, -1, -1)
}

// StateDir is the directory of the files kplay keeps for itself in a
// root (host.StateDir).
const StateDir = host.StateDir

// StatePathError is host.StatePathError.
func StatePathError(p string) error { return host.StatePathError(p) }

// stateMode is the mode of the files kplay keeps in StateDir: they name
// units, keys and URLs of the machine, which are no one else's business.
const stateMode = 0o600

// readState reads name, a file kplay keeps for itself, and describes it,
// refusing a symlink at it or on the way to it (host.CheckStatePath), and
// anything but a regular file with one link
// (errors wrap host.ErrNotStateFile; absence wraps fs.ErrNotExist). A
// write replaces such a file by rename and never goes through a link.
func readState(ctx context.Context, h host.Host, name string) ([]byte, host.FileInfo, error) {
	if err := host.CheckStatePath(ctx, h, "read", name); err != nil {
		return nil, host.FileInfo{}, err
	}
	fi, err := h.Lstat(ctx, name)
	if err != nil {
		return nil, host.FileInfo{}, err
	}
	if err := host.CheckStateFile("read", name, fi); err != nil {
		return nil, host.FileInfo{}, err
	}
	data, err := h.ReadFile(ctx, name)
	if errors.Is(err, fs.ErrPermission) {
		err = fmt.Errorf("%w (kplay's own files are root's: run kplay as root)", err)
	}
	return data, fi, err
}
