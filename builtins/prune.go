package builtins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"syscall"
	"time"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/unitfile"
)

// Manages says what the file step manages in the root, for the ledger.
// The hash of a sensitive file's content is left out: a hash of a short
// secret can be guessed. It is worked out once: a run asks for it
// several times, and the ledger keeps it in more than one place.
func (s *fileStep) Manages() []engine.Object {
	s.managesOnce.Do(func() {
		o := engine.Object{Kind: s.meta.Kind, Target: s.path, Sensitive: s.meta.Sensitive == engine.SensitiveYes}
		if s.src == "" && !o.Sensitive && !engine.SensitiveContent(s.content) {
			sum := sha256.Sum256(s.content)
			o.Hash = hex.EncodeToString(sum[:])
		}
		s.manages = []engine.Object{o}
	})
	return slices.Clone(s.manages)
}

// Manages says the directory step manages its path (the engine records
// whether kplay made it).
func (s *directoryStep) Manages() []engine.Object {
	return []engine.Object{{Kind: "directory", Target: s.path}}
}

// Manages says an enable step manages the unit's being enabled.
func (s *systemctlStep) Manages() []engine.Object {
	if s.action != "enable" {
		return nil
	}
	return []engine.Object{{Kind: "enable", Target: s.unit}}
}

// Manages records the etcd key, which is cluster state: never pruned,
// only listed as left in place when the playbook stops declaring it.
func (s *etcdPutStep) Manages() []engine.Object {
	return []engine.Object{{Kind: "etcd_put", Target: s.key}}
}

// Manages records the API object, which is cluster state: never pruned,
// only listed as left in place.
func (s *kubeCreateStep) Manages() []engine.Object {
	return []engine.Object{{Kind: "kube_create", Target: s.meta.Target}}
}

// leftStep reports cluster state that the playbook no longer declares:
// shared by every master, it is never removed by a run of one.
type leftStep struct {
	meta engine.StepMeta
}

func (s *leftStep) Meta() *engine.StepMeta { return &s.meta }

func (s *leftStep) Diff(context.Context, host.Host) (engine.Change, error) {
	return engine.Change{Keep: true, Summary: "no longer declared; left in place: cluster state is never pruned"}, nil
}

func (s *leftStep) Apply(context.Context, host.Host, engine.Change) error { return nil }

// Pruner returns the step that removes obj, which the playbook no longer
// declares (see engine.LedgerOptions):
//   - a file, manifest or drop-in: the file is removed (a drop-in then
//     owes a daemon-reload);
//   - a unit: stopped (live), disabled, then its file removed, with a
//     daemon-reload;
//   - an enable: the unit is disabled;
//   - a directory kplay made: removed if it is empty;
//   - an etcd key or API object: listed as left in place, never removed
//     (cluster state that every master shares).
func Pruner(obj engine.Object) (engine.Step, bool) {
	meta := engine.StepMeta{Kind: obj.Kind, Target: obj.Target, Resource: obj.Target}
	switch obj.Kind {
	case "file", "manifest":
		return &pruneFileStep{meta: meta, obj: obj}, true
	case "dropin", "unit":
		meta.Reload = engine.UnitFile
		return &pruneFileStep{meta: meta, obj: obj}, true
	case "directory":
		return &pruneDirStep{meta: meta}, obj.Created
	case "enable":
		return &systemctlStep{meta: engine.StepMeta{Kind: "systemctl", Target: "disable " + obj.Target, Resource: "disable " + obj.Target, Reload: engine.NeedsReload}, action: "disable", unit: obj.Target, timeout: time.Minute}, true
	case "etcd_put", "kube_create":
		return &leftStep{meta: meta}, true
	}
	return nil, false
}

// pruneFileStep removes a file that kplay wrote and the playbook no
// longer declares, or one the playbook declares absent; a unit is
// stopped and disabled first.
type pruneFileStep struct {
	meta   engine.StepMeta
	obj    engine.Object
	absent bool // state = "absent": a symlink there goes too
}

func (s *pruneFileStep) Meta() *engine.StepMeta { return &s.meta }

// InRoot is true: the step acts on a path in the root (engine.InRoot).
func (s *pruneFileStep) InRoot() bool { return true }

// Diff is a Delete of the file, with its content as Before for the diff
// to /dev/null. A file that is gone is nothing to do; anything but a
// regular file at the path is not what kplay wrote, and is an error.
func (s *pruneFileStep) Diff(ctx context.Context, h host.Host) (engine.Change, error) {
	redirected, keep, err := removalGuard(ctx, h, s.obj.Target, s.absent)
	if keep != "" || err != nil {
		return engine.Change{Keep: true, Summary: keep}, err
	}
	fi, exists, err := lstatGone(ctx, h, s.obj.Target)
	if err != nil || !exists {
		return engine.Change{}, err
	}
	if s.absent && fi.Mode&fs.ModeSymlink != 0 {
		target, err := h.Readlink(ctx, s.obj.Target)
		if err != nil {
			return engine.Change{}, err
		}
		return engine.Change{Action: engine.Delete, Summary: "declared absent: symlink → " + target}, nil
	}
	if !fi.IsRegular() {
		if s.absent {
			return engine.Change{}, fmt.Errorf("%s is %s, which kplay does not remove (remove it yourself)", s.obj.Target, host.Kind(fi.Mode))
		}
		// Not what kplay wrote: left, and listed, for a person.
		return engine.Change{Keep: true, Summary: fmt.Sprintf("kept: it is %s now, not the file kplay wrote", host.Kind(fi.Mode))}, nil
	}
	data, err := h.ReadFile(ctx, s.obj.Target)
	if err != nil {
		return engine.Change{}, err
	}
	summary := "no longer declared"
	if s.absent {
		summary = "declared absent"
	}
	if !s.absent {
		// What kplay wrote goes; what someone changed since, or what a
		// symlink made since leads to, stays for a person to judge.
		sum := sha256.Sum256(data)
		switch same := s.obj.Hash == hex.EncodeToString(sum[:]); {
		case s.obj.Hash != "" && !same:
			return engine.Change{Keep: true, Summary: "kept: changed since kplay wrote it (remove it yourself, or declare it again)"}, nil
		case redirected != "" && !same:
			return engine.Change{Keep: true, Summary: "kept: a symlink in the root leads it to " + redirected + ", which kplay cannot tell it wrote"}, nil
		}
	}
	if s.obj.Kind == "unit" {
		if vendor := host.VendorUnit(ctx, h, path.Base(s.obj.Target)); vendor != "" {
			summary += ": remove the override (" + vendor + " takes over)"
		} else {
			summary += ": stop, disable and remove"
		}
	}
	// As for an update: a file closed to others keeps its content out
	// of the output.
	sensitive := s.obj.Sensitive || engine.SensitiveName(s.obj.Target) || engine.SensitiveContent(data) || engine.SensitiveMode(fi.Mode)
	return engine.Change{Action: engine.Delete, Summary: summary, Before: data, Sensitive: sensitive}, nil
}

// removalGuard says why target must stay (a reason, or an error for a
// path declared absent): its path leads through a symlink in the root
// to kplay's own state, or cannot be resolved. redirected is where a
// symlink in the root leads target, "" when nowhere else: the caller
// removes it there only if it is what kplay wrote.
func removalGuard(ctx context.Context, h host.Host, target string, absent bool) (redirected, keep string, err error) {
	at, err := host.Resolve(ctx, h, target)
	if gone(err) {
		return "", "", nil
	}
	if err != nil {
		if absent {
			return "", "", err
		}
		return "", fmt.Sprintf("kept: %v", err), nil
	}
	if serr := engine.StatePathError(at); serr != nil {
		if absent {
			return "", "", fmt.Errorf("a symlink in the root makes it %s: %w", at, serr)
		}
		return "", fmt.Sprintf("kept: a symlink in the root makes it %s, kplay's own state", at), nil
	}
	if at != target {
		redirected = at
	}
	return redirected, "", nil
}

// Manages declares the path of an absent step (engine.Object.Absent):
// nothing is pruned there, and nothing recorded.
func (s *pruneFileStep) Manages() []engine.Object {
	if !s.absent {
		return nil
	}
	return []engine.Object{{Kind: s.obj.Kind, Target: s.obj.Target, Absent: true}}
}

// Apply stops and disables a unit (as systemctl --root disable offline),
// then removes the file.
func (s *pruneFileStep) Apply(ctx context.Context, h host.Host, c engine.Change) error {
	if s.obj.Kind == "unit" && host.VendorUnit(ctx, h, path.Base(s.obj.Target)) == "" {
		// A unit of kplay's own: stopped and disabled. An override of
		// a vendor unit only goes, and the vendor's takes over at the
		// daemon-reload.
		unit := path.Base(s.obj.Target)
		sd := h.Systemd()
		if sd.Live() {
			if err := sd.Job(ctx, "stop", unit, time.Minute); err != nil && !errors.Is(err, host.ErrNotApplicable) {
				return fmt.Errorf("stop %s before removing it: %w", unit, err)
			}
		}
		if err := sd.Disable(ctx, unit); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("disable %s before removing it: %w", unit, err)
		}
	}
	if err := h.Remove(ctx, s.obj.Target); err != nil && !gone(err) {
		return err
	}
	return nil
}

// gone reports whether err says a path is not there: missing, or below
// something that is no longer a directory (a directory kplay made, since
// replaced by a file: what was in it went with it).
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// lstatGone is lstat with a path below a non-directory as absent.
func lstatGone(ctx context.Context, h host.Host, name string) (fi host.FileInfo, exists bool, err error) {
	fi, exists, err = lstat(ctx, h, name)
	if gone(err) {
		return fi, false, nil
	}
	return fi, exists, err
}

// pruneDirStep removes a directory that kplay made and the playbook no
// longer declares, if it is empty; one with entries is kept.
type pruneDirStep struct {
	meta engine.StepMeta
}

func (s *pruneDirStep) Meta() *engine.StepMeta { return &s.meta }

// InRoot is true: the step acts on a path in the root (engine.InRoot).
func (s *pruneDirStep) InRoot() bool { return true }

// Diff is a Delete of the directory when it is empty but for the temp
// files of killed kplay runs (host.StaleTemp); one with other entries is
// kept, and stays in the ledger (Change.Keep).
func (s *pruneDirStep) Diff(ctx context.Context, h host.Host) (engine.Change, error) {
	redirected, keep, err := removalGuard(ctx, h, s.meta.Target, false)
	if redirected != "" {
		keep = "kept: a symlink in the root leads it to " + redirected
	}
	if keep != "" || err != nil {
		return engine.Change{Keep: true, Summary: keep}, err
	}
	fi, exists, err := lstatGone(ctx, h, s.meta.Target)
	if err != nil || !exists || !fi.IsDir() {
		return engine.Change{}, err
	}
	names, err := h.ReadDir(ctx, s.meta.Target)
	if err != nil {
		return engine.Change{}, err
	}
	for _, n := range names {
		if !host.StaleTemp(n) || !removable(ctx, h, path.Join(s.meta.Target, n)) {
			return engine.Change{Keep: true, Summary: "kept: not empty"}, nil
		}
	}
	return engine.Change{Action: engine.Delete, Summary: "no longer declared, empty, made by kplay"}, nil
}

// removable reports whether the stale temp entry p can go with one
// remove: a file, a symlink, or an empty directory.
func removable(ctx context.Context, h host.Host, p string) bool {
	fi, err := h.Lstat(ctx, p)
	if err != nil || !fi.IsDir() {
		return err == nil
	}
	names, err := h.ReadDir(ctx, p)
	return err == nil && len(names) == 0
}

// Apply removes the stale temp files left in the directory, then it.
func (s *pruneDirStep) Apply(ctx context.Context, h host.Host, c engine.Change) error {
	names, err := h.ReadDir(ctx, s.meta.Target)
	if err != nil && !gone(err) {
		return err
	}
	for _, n := range names {
		if host.StaleTemp(n) {
			if err := h.Remove(ctx, path.Join(s.meta.Target, n)); err != nil && !gone(err) {
				return err
			}
		}
	}
	if err := h.Remove(ctx, s.meta.Target); err != nil && !gone(err) {
		return err
	}
	return nil
}

// unitGroup is the group (engine.Grouper) of a unit file or drop-in at p
// of kind "unit" or "dropin": "unit <name>", the unit it configures; ""
// for other kinds, and for a drop-in of many units (service.d).
func unitGroup(kind, p string) string {
	switch kind {
	case "unit":
		return "unit " + path.Base(p)
	case "dropin":
		if u := configuredUnit(p); unitfile.NameError(u) == nil {
			return "unit " + u
		}
	}
	return ""
}

// Group puts a unit's file and its drop-ins in one group: removing a
// drop-in the playbook no longer declares restarts what restarts on a
// change of the unit (see engine.Grouper).
func (s *fileStep) Group() string { return unitGroup(s.meta.Kind, s.path) }

// Group is the group of what is removed: its unit's for a unit file or
// drop-in, else its path's (a removed() handle's).
func (s *pruneFileStep) Group() string {
	if g := unitGroup(s.obj.Kind, s.obj.Target); g != "" {
		return g
	}
	return "path " + s.obj.Target
}

// presence is the state= argument of file(), unit(), dropin() and
// manifest(): "present" (the default) or "absent".
type presence string

func (p *presence) Unpack(v starlark.Value) error {
	s, ok := starlark.AsString(v)
	if !ok || s != "present" && s != "absent" {
		return fmt.Errorf("got %s, want \"present\" or \"absent\"", v)
	}
	*p = presence(s)
	return nil
}

// recordAbsent records a step that makes sure nothing is at target: what
// is there is removed as pruning removes it (a unit stopped and disabled
// first), and the result is a delete like pruning's. It claims target,
// so declaring it present too is an error.
func recordAbsent(thread *starlark.Thread, kind, target string, meta engine.StepMeta) (starlark.Value, error) {
	meta.Kind, meta.Target, meta.Resource = kind, target, target
	if kind == "unit" || kind == "dropin" {
		meta.Reload = engine.UnitFile
	}
	return engine.Record(thread, &pruneFileStep{meta: meta, obj: engine.Object{Kind: kind, Target: target}, absent: true})
}

// Claim owns the path of an absent declaration: present elsewhere in the
// plan is a conflict.
func (s *pruneFileStep) Claim() (string, string) {
	return s.obj.Target, "absent"
}
