package builtins

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
)

// owners resolves an owner and group against the target root.
func owners(ctx context.Context, h host.Host, owner, group account) (uid, gid int, err error) {
	if uid, err = host.LookupUser(ctx, h, string(owner)); err != nil {
		return 0, 0, err
	}
	if gid, err = host.LookupGroup(ctx, h, string(group)); err != nil {
		return 0, 0, err
	}
	return uid, gid, nil
}

// metaDrift describes how an existing file's mode and owner differ from
// what the step wants, as summary parts ("mode 0644 → 0600"); none if equal.
func metaDrift(fi host.FileInfo, mode fs.FileMode, uid, gid int, owner, group account) []string {
	var parts []string
	if fi.Perm() != mode {
		parts = append(parts, fmt.Sprintf("mode %s → %s", modeString(fi.Perm()), modeString(mode)))
	}
	if fi.UID != uid || fi.GID != gid {
		parts = append(parts, fmt.Sprintf("owner %d:%d → %s:%s", fi.UID, fi.GID, owner, group))
	}
	return parts
}

// fixMeta sets the owner and mode of an existing file or directory. The
// owner goes first: chown clears setuid and setgid, so a chmod before it
// would be undone. A mode that closes bits is first narrowed to what
// both modes allow, so that between the chown and the last chmod the
// file is never open to the new group (or others) with the old mode's
// bits: 0660 root:adm → 0600 root:shadow never passes by 0660
// root:shadow, even if the run is killed there.
func fixMeta(ctx context.Context, h host.Host, name string, mode fs.FileMode, uid, gid int) error {
	fi, err := h.Lstat(ctx, name)
	if err != nil {
		return err
	}
	if old := fi.Perm(); old&^mode != 0 {
		if err := h.Chmod(ctx, name, old&mode); err != nil {
			return err
		}
	}
	if err := h.Chown(ctx, name, uid, gid); err != nil {
		return err
	}
	return h.Chmod(ctx, name, mode)
}

// lstat is h.Lstat with absence as a result rather than an error.
func lstat(ctx context.Context, h host.Host, name string) (fi host.FileInfo, exists bool, err error) {
	fi, err = h.Lstat(ctx, name)
	if errors.Is(err, fs.ErrNotExist) {
		return fi, false, nil
	}
	return fi, err == nil, err
}

func summary(parts ...string) string { return strings.Join(parts, ", ") }

// holdsSecret reports whether v, a string or a list, tuple or dict of
// them at any depth (keys too), holds a sensitive var's value: the flow
// rule, applied to the strings before kplay turns them into YAML or JSON,
// whose quoting and folding (a block scalar, a line folded at column 80)
// would hide the value from a search of the text.
// Past maxNesting levels it stops looking (a cycle, x.append(x), would
// be endless): ToGo refuses such a value.
func holdsSecret(thread *starlark.Thread, v starlark.Value) bool { return holdsSecretAt(thread, v, 0) }

func holdsSecretAt(thread *starlark.Thread, v starlark.Value, depth int) bool {
	if depth > maxNesting {
		return false
	}
	switch v := v.(type) {
	case starlark.String:
		return engine.ContainsSecret(thread, []byte(v))
	case *starlark.List, starlark.Tuple:
		items, _ := engine.Sequence(v)
		return slices.ContainsFunc(items, func(item starlark.Value) bool { return holdsSecretAt(thread, item, depth+1) })
	case *starlark.Dict:
		for _, kv := range v.Items() {
			if holdsSecretAt(thread, kv[0], depth+1) || holdsSecretAt(thread, kv[1], depth+1) {
				return true
			}
		}
	}
	return false
}

// missingParents returns the directories above name that do not exist,
// outermost first: what a write of name makes on the way (see
// engine.Change.Parents).
func missingParents(ctx context.Context, h host.Host, name string) ([]string, error) {
	var missing []string
	for dir := path.Dir(name); dir != "/"; dir = path.Dir(dir) {
		_, exists, err := lstat(ctx, h, dir)
		if err != nil {
			return nil, err
		}
		if exists {
			break
		}
		missing = append(missing, dir)
	}
	slices.Reverse(missing)
	return missing, nil
}
