package host

// The lookup half of Offline: finding a unit's file in the search path,
// reading its [Install] section and drop-ins, following its symlinks, and
// finding the links that enable it, as systemd 252's install.c does.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/kplay-dev/kplay/host/unitfile"
)

// findLinksInScope looks for symlinks that enable u in every search
// directory, as systemd's find_symlinks_in_scope: with matchName, only
// links under a name that [Install] gives count. It returns "enabled",
// "enabled-runtime", "static" (an instance linked from a vendor
// directory), "linked" or "linked-runtime", or "" if nothing was found.
func (o *Offline) findLinksInScope(ctx context.Context, u *unitInfo, matchName bool) (string, error) {
	var enabledRuntime, enabledAtAll, sameNameConfig, sameNameRuntime, ignoreSameName bool
	for _, dir := range unitfile.SearchPath() {
		found, sameName, err := o.findLinks(ctx, u, dir, matchName, ignoreSameName)
		if err != nil {
			return "", fmt.Errorf("is-enabled %s: %w", u.name, err)
		}
		switch {
		case found && dir == unitfile.ConfigDir:
			return "enabled", nil
		case found && unitfile.IsRuntimePath(dir):
			enabledRuntime = true
		case found:
			enabledAtAll = true
		case sameName && dir == unitfile.ConfigDir:
			sameNameConfig = true
		case sameName && unitfile.IsRuntimePath(dir):
			sameNameRuntime = true
		}
		// Directories after the unit file's own hold names it hides.
		if unitfile.Under(u.path, dir) {
			ignoreSameName = true
		}
	}
	switch {
	case enabledRuntime:
		return "enabled-runtime", nil
	case enabledAtAll && unitfile.NameIs(u.name, unitfile.Instance):
		return "static", nil
	case sameNameConfig:
		return "linked", nil
	case sameNameRuntime:
		return "linked-runtime", nil
	}
	return "", nil
}

// findLinks looks in the search directory dir for symlinks to u, as
// systemd's find_symlinks: first in its *.wants and *.requires
// directories (by link name), then in dir itself (by link name and
// target). sameName reports a link in dir of u's own name to a file of
// that name (a linked unit file).
func (o *Offline) findLinks(ctx context.Context, u *unitInfo, dir string, matchName, ignoreSameName bool) (found, sameName bool, err error) {
	rdir, err := o.resolve(ctx, dir, false, nil)
	if err != nil {
		return false, false, err
	}
	names, err := o.fs.ReadDir(ctx, rdir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrPermission) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	for _, n := range names {
		ext := path.Ext(n)
		if unitfile.HiddenOrBackup(n) || ext != ".wants" && ext != ".requires" {
			continue
		}
		fi, err := o.fs.Lstat(ctx, path.Join(rdir, n))
		if err != nil || !fi.IsDir() {
			continue
		}
		found, _, err := o.findLinksIn(ctx, u, path.Join(dir, n), dir, true, matchName, ignoreSameName)
		if err == nil && found {
			return true, false, nil
		}
	}
	return o.findLinksIn(ctx, u, dir, dir, false, matchName, ignoreSameName)
}

// findLinksIn is systemd's find_symlinks_in_directory for dir, a search
// directory (configDir) or one of its .wants or .requires directories
// (byName: only the link name counts there).
func (o *Offline) findLinksIn(ctx context.Context, u *unitInfo, dir, configDir string, byName, matchName, ignoreSameName bool) (found, sameName bool, err error) {
	rdir, err := o.resolve(ctx, dir, false, nil)
	if err != nil {
		return false, false, err
	}
	names, err := o.fs.ReadDir(ctx, rdir)
	if err != nil {
		return false, false, err
	}
	for _, n := range names {
		if unitfile.HiddenOrBackup(n) {
			continue
		}
		fi, err := o.fs.Lstat(ctx, path.Join(rdir, n))
		if err != nil || fi.Mode&fs.ModeSymlink == 0 {
			continue
		}
		foundDest, foundPath := false, false
		if !byName {
			dest, err := o.fs.Readlink(ctx, path.Join(rdir, n))
			if err != nil {
				continue
			}
			foundDest = path.Base(dest) == u.name
		}
		if byName || !ignoreSameName {
			foundPath = n == u.name
		}
		if !foundPath && byName {
			if tmpl, ok := unitfile.TemplateOf(n); ok {
				foundDest = tmpl == u.name
			}
		}
		switch {
		case foundPath && foundDest && path.Join(dir, n) == path.Join(configDir, u.name):
			sameName = true
		case !foundPath && !foundDest:
		case !matchName || u.knownName(n):
			return true, sameName, nil
		}
	}
	return false, sameName, nil
}

// knownName reports whether a link named n is one that enabling u makes:
// u's name, an Alias= value, or its DefaultInstance= instance.
func (u *unitInfo) knownName(n string) bool {
	if n == u.name || slices.Contains(u.Aliases, n) {
		return true
	}
	if u.DefaultInstance == "" || !unitfile.NameIs(u.name, unitfile.Template) {
		return false
	}
	inst, _ := unitfile.ReplaceInstance(u.name, u.DefaultInstance)
	return n == inst
}

// installMode is what a unit name was found to be, as systemd's
// InstallMode.
type installMode int

const (
	modeUnknown installMode = iota // not looked up yet
	modeRegular                    // a unit file
	modeLinked                     // a symlink to a file outside the search path
	modeAlias                      // a symlink to another unit in the search path
	modeMasked                     // empty, or a symlink to /dev/null
)

// unitInfo is one unit name being installed, as systemd's InstallInfo.
type unitInfo struct {
	unitfile.Install
	name      string
	path      string // the unit file, as a path inside the root, once found
	mode      installMode
	target    string // of a linked or alias symlink: the file it leads to
	auxiliary bool   // named by Also=: failing to find it is not an error
}

// installCtx is the set of units an operation works on, in the order they
// were added (Also= and alias targets add more), as systemd's
// InstallContext.
type installCtx struct {
	units  []*unitInfo
	byName map[string]*unitInfo
}

func newInstallCtx() *installCtx { return &installCtx{byName: map[string]*unitInfo{}} }

// add returns the unit named name (or, if name is empty, after p's last
// element, with p as its file), adding it if it is new.
func (c *installCtx) add(p, name string, auxiliary bool) (*unitInfo, error) {
	if name == "" {
		name = path.Base(p)
	}
	if !unitfile.NameIs(name, unitfile.AnyKind) {
		return nil, fmt.Errorf("%q is not a valid unit name", name)
	}
	if u, ok := c.byName[name]; ok {
		u.auxiliary = u.auxiliary && auxiliary
		return u, nil
	}
	u := &unitInfo{name: name, path: p, auxiliary: auxiliary}
	c.units = append(c.units, u)
	c.byName[name] = u
	return u, nil
}

// errUnitNotFound is matched (errors.Is) by the error for a unit without
// a unit file in the search path.
var errUnitNotFound = errors.New("unit not found")

// errFollowed is traverse's signal that a symlink leads to another unit
// name (systemd's EXDEV).
var errFollowed = errors.New("symlink to another unit name")

// notFoundError says that no search directory has a file of these names
// (a unit, and the template of an instance). It matches errUnitNotFound
// and fs.ErrNotExist.
type notFoundError struct{ names []string }

func (e *notFoundError) Error() string {
	return fmt.Sprintf("no unit file %s in %s", strings.Join(e.names, " or "), strings.Join(unitfile.SearchPath(), ", "))
}

func (e *notFoundError) Is(target error) bool {
	return target == errUnitNotFound || target == fs.ErrNotExist
}

// search finds the file of u in the search path and loads it (its
// [Install] section and drop-ins with load), as systemd's
// unit_file_search. An instance without its own file uses its template's.
func (o *Offline) search(ctx context.Context, ic *installCtx, u *unitInfo, load bool) error {
	if u.mode != modeUnknown {
		return nil
	}
	if u.path != "" {
		return o.loadOrReadlink(ctx, ic, u, u.path, load)
	}
	names := []string{u.name}
	tmpl, _ := unitfile.TemplateOf(u.name)
	isInstance := unitfile.NameIs(u.name, unitfile.Instance)
	if isInstance {
		names = append(names, tmpl)
	}
	found := false
	for _, n := range names {
		for _, dir := range unitfile.SearchPath() {
			p := path.Join(dir, n)
			err := o.loadOrReadlink(ctx, ic, u, p, load)
			if err == nil {
				u.path, found = p, true
				break
			}
			if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) && !errors.Is(err, fs.ErrPermission) {
				return err
			}
		}
		if found {
			break
		}
	}
	if !found {
		return &notFoundError{names: names}
	}
	if u.mode == modeMasked || !load {
		return nil
	}
	dropinDirs := make([]string, 0, 2*len(unitfile.SearchPath()))
	for _, dir := range unitfile.SearchPath() {
		dropinDirs = append(dropinDirs, path.Join(dir, u.name+".d"))
	}
	if isInstance {
		for _, dir := range unitfile.SearchPath() {
			dropinDirs = append(dropinDirs, path.Join(dir, tmpl+".d"))
		}
	}
	dropins, err := o.listDropins(ctx, dropinDirs)
	if err != nil {
		return err
	}
	for _, p := range dropins {
		if err := o.loadDropin(ctx, ic, u, p); err != nil {
			return err
		}
	}
	return nil
}

// listDropins returns the *.conf files of dirs, a name in an earlier
// directory hiding the same name in a later one, sorted by name, as
// systemd's conf_files_list_strv.
func (o *Offline) listDropins(ctx context.Context, dirs []string) ([]string, error) {
	byName := map[string]string{}
	for _, dir := range dirs {
		rdir, err := o.resolve(ctx, dir, false, nil)
		if err != nil {
			return nil, err
		}
		names, err := o.fs.ReadDir(ctx, rdir)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if !strings.HasSuffix(n, ".conf") || unitfile.HiddenOrBackup(n) {
				continue
			}
			if _, ok := byName[n]; ok {
				continue
			}
			fi, err := o.fs.Lstat(ctx, path.Join(rdir, n))
			if err != nil {
				return nil, err
			}
			if fi.IsDir() {
				continue
			}
			byName[n] = path.Join(dir, n)
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	files := make([]string, len(names))
	for i, n := range names {
		files[i] = byName[n]
	}
	return files, nil
}

// loadDropin reads the [Install] section of the drop-in p into u,
// following symlinks inside the root. An empty drop-in or one linked to
// /dev/null is skipped.
func (o *Offline) loadDropin(ctx context.Context, ic *installCtx, u *unitInfo, p string) error {
	rp, err := o.resolve(ctx, p, false, nil)
	if err != nil {
		return err
	}
	if rp == "/dev/null" {
		return nil
	}
	fi, err := o.fs.Lstat(ctx, rp)
	if err != nil {
		return fmt.Errorf("drop-in %s: %w", p, err)
	}
	if nullOrEmpty(fi) {
		return nil
	}
	if !fi.IsRegular() {
		return fmt.Errorf("drop-in %s: not a regular file (remove it)", p)
	}
	return o.parse(ctx, ic, u, p, rp)
}

// parse reads the unit file or drop-in p (at rp once resolved) into u and
// adds the units its Also= names.
func (o *Offline) parse(ctx context.Context, ic *installCtx, u *unitInfo, p, rp string) error {
	data, err := o.fs.ReadFile(ctx, rp)
	if err != nil {
		return err
	}
	also, err := u.Install.Parse(u.name, p, data)
	if err != nil {
		return err
	}
	for _, a := range also {
		if _, err := ic.add("", a, true); err != nil {
			return fmt.Errorf("%s: Also=%s: %w", p, a, err)
		}
	}
	return nil
}

// nullOrEmpty reports whether fi masks a unit: an empty file or a device
// node, as systemd's null_or_empty.
func nullOrEmpty(fi FileInfo) bool {
	return fi.IsRegular() && fi.Size == 0 || fi.Mode&(fs.ModeCharDevice|fs.ModeDevice) != 0
}

// loadOrReadlink describes the unit file p for u, as systemd's
// unit_file_load_or_readlink: a regular file is loaded (with load), an
// empty one masks, and a symlink is classified (masked, linked or alias)
// with its target kept in u.target.
func (o *Offline) loadOrReadlink(ctx context.Context, ic *installCtx, u *unitInfo, p string, load bool) error {
	if unitfile.NameIs(u.name, unitfile.Template|unitfile.Instance) && !unitfile.MayTemplate(unitfile.TypeOf(u.name)) {
		return fmt.Errorf("unit %s: %s units cannot be templates (use a plain name)", u.name, unitfile.TypeOf(u.name))
	}
	rp, err := o.resolve(ctx, p, true, nil)
	if err != nil {
		return err
	}
	fi, err := o.fs.Lstat(ctx, rp)
	if err != nil {
		return err
	}
	switch {
	case fi.Mode&fs.ModeSymlink != 0:
		return o.readUnitLink(ctx, u, p, rp)
	case nullOrEmpty(fi):
		u.mode = modeMasked
		return nil
	case fi.IsDir():
		return fmt.Errorf("unit file %s: %w (remove it, or write a unit file there)", p, syscall.EISDIR)
	case !fi.IsRegular():
		return fmt.Errorf("unit file %s: not a regular file (remove it, or write a unit file there)", p)
	}
	if load {
		if err := o.parse(ctx, ic, u, p, rp); err != nil {
			return err
		}
	}
	u.mode = modeRegular
	return nil
}

// readUnitLink classifies the unit file p (at rp), a symlink, as
// systemd's unit_file_resolve_symlink: to /dev/null or an empty file it
// masks; outside the search path it links a unit file; inside it aliases
// another unit, and must keep the unit type.
func (o *Offline) readUnitLink(ctx context.Context, u *unitInfo, p, rp string) error {
	dest, err := o.fs.Readlink(ctx, rp)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(dest, "/") {
		dest = path.Dir(p) + "/" + dest
	}
	target, err := o.resolve(ctx, dest, true, nil)
	if err != nil {
		return err
	}
	inside := unitfile.UnderSearchPath(target)
	if inside {
		if err := unitfile.ValidateAlias(path.Base(p), path.Base(target)); err != nil {
			if errors.Is(err, unitfile.ErrSelfAlias) {
				return fmt.Errorf("%s links to %s, a unit of the same name: %w (remove the symlink)", p, target, syscall.ELOOP)
			}
			return fmt.Errorf("%s -> %s: %w (fix or remove the symlink)", p, target, err)
		}
	}
	masks, err := o.isMask(ctx, target)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	u.target = target
	switch {
	case masks:
		u.mode = modeMasked
	case inside:
		u.mode = modeAlias
	default:
		u.mode = modeLinked
	}
	return nil
}

// isMask reports whether p (resolved but for its last element) masks a
// unit: it is /dev/null, leads to /dev/null, or is an empty file. A
// missing p does not mask.
func (o *Offline) isMask(ctx context.Context, p string) (bool, error) {
	if p == "/dev/null" {
		return true, nil
	}
	rp, err := o.resolve(ctx, p, false, nil)
	if err != nil {
		return false, err
	}
	if rp == "/dev/null" {
		return true, nil
	}
	fi, err := o.fs.Lstat(ctx, rp)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return nullOrEmpty(fi), nil
}

// traverse finds u and follows it while it is a symlink, returning the
// unit that has the file, as systemd's install_info_traverse: a linked
// file keeps u's name, an alias to another name continues with a unit of
// that name (added to ic). Without followConfig, a symlink in a
// configuration directory is refused.
func (o *Offline) traverse(ctx context.Context, ic *installCtx, u *unitInfo, load, followConfig bool) (*unitInfo, error) {
	if err := o.search(ctx, ic, u, load); err != nil {
		return nil, err
	}
	for hops := 0; u.mode == modeLinked || u.mode == modeAlias; hops++ {
		link := u.path
		if hops == maxSymlinks {
			return nil, fmt.Errorf("unit %s: %w (fix the symlinks that name it)", u.name, syscall.ELOOP)
		}
		if !followConfig && unitfile.IsConfigPath(u.path) {
			return nil, fmt.Errorf("%s is a symlink in a configuration directory; systemctl refuses to operate on it (enable the unit it points to instead)", u.path)
		}
		err := o.follow(ctx, ic, u, load, u.mode == modeLinked)
		if !errors.Is(err, errFollowed) {
			if err != nil {
				return nil, err
			}
			continue
		}
		bn := path.Base(u.target)
		if unitfile.NameIs(u.name, unitfile.Instance) && unitfile.NameIs(bn, unitfile.Template) {
			inst, _ := unitfile.ReplaceInstance(bn, unitfile.InstanceOf(u.name))
			if inst == u.name {
				// The template of the instance itself: honour the link.
				if err := o.follow(ctx, ic, u, load, true); err != nil {
					return nil, err
				}
				continue
			}
			bn = inst
		}
		next, err := ic.add("", bn, false)
		if err != nil {
			return nil, err
		}
		u = next
		if err := o.search(ctx, ic, u, load); err != nil {
			if errors.Is(err, errUnitNotFound) {
				return nil, fmt.Errorf("%s links to %s, which has no unit file (remove the link, or restore the unit)", link, u.name)
			}
			return nil, err
		}
	}
	return u, nil
}

// follow replaces u's file by the symlink target, as systemd's
// install_info_follow; errFollowed if the target has another name and
// anyName is false.
func (o *Offline) follow(ctx context.Context, ic *installCtx, u *unitInfo, load, anyName bool) error {
	if !anyName && path.Base(u.target) != u.name {
		return errFollowed
	}
	u.path, u.target, u.mode = u.target, "", modeUnknown
	return o.loadOrReadlink(ctx, ic, u, u.path, load)
}

// resolve returns name with the symlinks on its way resolved inside the
// root, as the kernel would with the root as "/": an absolute target
// starts again at the root and ".." never goes above it (see chaser). At
// the first missing element the rest is appended unresolved (the path
// need not exist). With keepLast, a symlink as the last element is kept.
// Paths in gone read as missing. More than 40 symlinks give
// syscall.ELOOP.
func (o *Offline) resolve(ctx context.Context, name string, keepLast bool, gone map[string]bool) (string, error) {
	return o.chase(ctx, name, keepLast, true, gone)
}

// resolveWrite is resolve with keepLast for a link kplay makes or
// removes: a ".." that climbs above the root is refused with
// ErrOutsideRoot, as for every path kplay writes, where systemd's chase
// stops it at the root (and systemctl --root 252 even writes the link
// outside the root); and a path that lands on kplay's own state is
// refused (StatePathError).
func (o *Offline) resolveWrite(ctx context.Context, name string) (string, error) {
	p, err := o.chase(ctx, name, true, false, nil)
	if err == ErrOutsideRoot {
		return "", outsideError("resolve", name, o.fs.Root())
	}
	if serr := StatePathError(p); err == nil && serr != nil {
		return "", fmt.Errorf("%s: a symlink in the root makes it %s: %w", name, p, serr)
	}
	return p, err
}

// chase is resolve; clamp as for chaser.
func (o *Offline) chase(ctx context.Context, name string, keepLast, clamp bool, gone map[string]bool) (string, error) {
	c := chaser{
		lstat: func(p string) (FileInfo, error) {
			if gone[p] {
				return FileInfo{}, fs.ErrNotExist
			}
			return o.fs.Lstat(ctx, p)
		},
		readlink: func(p string) (string, error) { return o.fs.Readlink(ctx, p) },
		keepLast: keepLast,
		clamp:    clamp,
	}
	p, err := c.chase(name)
	if errors.Is(err, syscall.ELOOP) {
		return "", fmt.Errorf("resolve %s: %w", name, err)
	}
	return p, err
}
