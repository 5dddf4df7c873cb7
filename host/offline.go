package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/kplay-dev/kplay/host/unitfile"
)

var _ Systemd = (*Offline)(nil)

// Offline is the Systemd of a root that no running systemd manages
// (kplay --root DIR). It reads and writes the unit files and [Install]
// symlinks of the root through a Host, so it works over a Real and over
// a Dry alike, and it behaves as `systemctl --root=DIR` of systemd 252
// does for enable, disable, mask, unmask and is-enabled:
//
//   - Units are looked up in systemctl's search path (unitfile.SearchPath),
//     first match wins: /etc/systemd/system overrides /usr/lib/systemd/system.
//     Symlinks in the root are resolved inside it, absolute targets
//     included.
//   - [Install] (WantedBy=, RequiredBy=, Alias=, Also=, DefaultInstance=)
//     is read from the unit file and its drop-ins <unit>.d/*.conf (and
//     <template>.d/*.conf for an instance) in every search directory.
//   - Links go to /etc/systemd/system and point to the unit file's path
//     as seen inside the root ("/usr/lib/systemd/system/foo.service").
//
// Where systemctl would report an error yet change some links, Offline
// changes nothing and returns the error. Job, DaemonReload and
// ActiveState return an error wrapping ErrNotApplicable. An Offline is
// safe for concurrent use if its Host is; two changes at once to the same
// unit race as two systemctl commands would.
type Offline struct {
	fs Host
}

// NewOffline returns the offline systemd of the root that fs holds.
func NewOffline(fs Host) *Offline { return &Offline{fs: fs} }

// lookup returns an Offline for one operation's reads: it reads each
// name once (see readCache). Writes go through the original.
func (o *Offline) lookup() *Offline { return &Offline{fs: newReadCache(o.fs)} }

// Live reports false: Offline manages unit files, not a running manager.
func (o *Offline) Live() bool { return false }

// ActiveState returns an error wrapping ErrNotApplicable: nothing runs in
// an offline root.
func (o *Offline) ActiveState(ctx context.Context, unit string) (string, error) {
	return "", fmt.Errorf("is-active %s: %w", unit, ErrNotApplicable)
}

// Job returns an error wrapping ErrNotApplicable, such as
// "start kubelet.service: not applicable to an offline root".
func (o *Offline) Job(ctx context.Context, action, unit string, timeout time.Duration) error {
	return fmt.Errorf("%s %s: %w", action, unit, ErrNotApplicable)
}

// DaemonReload returns an error wrapping ErrNotApplicable.
func (o *Offline) DaemonReload(ctx context.Context) error {
	return fmt.Errorf("daemon-reload: %w", ErrNotApplicable)
}

// UnitFileState returns what `systemctl --root is-enabled unit` prints:
// "enabled", "enabled-runtime", "linked", "linked-runtime", "alias",
// "masked", "masked-runtime", "static", "indirect", "disabled",
// "generated" or "transient"; and "not-found" where systemctl fails with
// "No such file or directory". Other failures of systemctl (a unit file
// that links to itself, an alias to a missing unit) are errors.
func (o *Offline) UnitFileState(ctx context.Context, unit string) (string, error) {
	const op = "is-enabled"
	if err := checkUnitName(op, unit); err != nil {
		return "", err
	}
	o = o.lookup()
	ic := newInstallCtx()
	start, err := ic.add("", unit, false)
	if err != nil {
		return "", err
	}
	u, err := o.traverse(ctx, ic, start, true, true)
	if errors.Is(err, errUnitNotFound) {
		return "not-found", nil
	}
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", op, unit, err)
	}
	if u.mode == modeMasked {
		if unitfile.IsRuntimePath(u.path) {
			return "masked-runtime", nil
		}
		return "masked", nil
	}
	if unit != path.Base(u.path) && !unitfile.NameIs(u.name, unitfile.Instance) {
		return "alias", nil
	}
	switch generated, transient := unitfile.IsGeneratedPath(u.path); {
	case generated:
		return "generated", nil
	case transient:
		return "transient", nil
	}
	state, err := o.findLinksInScope(ctx, u, true)
	if err != nil || state != "" {
		return state, err
	}
	state, err = o.findLinksInScope(ctx, u, false)
	switch {
	case err != nil:
		return "", err
	case state != "":
		return "indirect", nil // linked from elsewhere under another name
	case u.HasRules():
		return "disabled", nil
	case len(u.Also) > 0:
		return "indirect", nil
	}
	return "static", nil
}

// EnableLinks returns the symlinks that Enable would create, sorted by
// name: none when unit is enabled already or has nothing to enable
// (static). A link that exists with another target that Enable replaces
// (in a .wants or .requires directory) is listed with its new target.
// Errors are those of Enable.
func (o *Offline) EnableLinks(ctx context.Context, unit string) ([]Link, error) {
	plan, err := o.planEnable(ctx, unit)
	if err != nil {
		return nil, err
	}
	links := make([]Link, 0, len(plan))
	for _, c := range plan {
		links = append(links, c.Link)
	}
	return links, nil
}

// Enable creates the [Install] symlinks of unit, as `systemctl --root
// enable`: Alias= links in /etc/systemd/system, WantedBy= and RequiredBy=
// links in /etc/systemd/system/<target>.wants or .requires (made with
// mode 0755 as needed), for unit and the units its Also= names; a
// template with DefaultInstance= is enabled as that instance. A unit
// without a unit file, a masked, generated or transient unit, a template
// whose targets need an instance, and a link path taken by another file
// are errors, and then nothing is changed. For a unit without a unit
// file, errors.Is(err, fs.ErrNotExist) holds.
func (o *Offline) Enable(ctx context.Context, unit string) error {
	plan, err := o.planEnable(ctx, unit)
	if err != nil {
		return err
	}
	for _, c := range plan {
		if err := o.writeLink(ctx, c); err != nil {
			return fmt.Errorf("enable %s: %w", unit, err)
		}
	}
	return nil
}

// DisableLinks returns the symlinks that Disable would remove, sorted by
// name: those in /etc/systemd/system and below that are named after unit
// (or after a unit its Also= names), or after its template, or that lead
// to a file of that name. Links of other units are left alone.
func (o *Offline) DisableLinks(ctx context.Context, unit string) ([]Link, error) {
	return o.planDisable(ctx, unit)
}

// Disable removes the symlinks DisableLinks returns, and the directories
// under /etc/systemd/system that this leaves empty, as `systemctl --root
// disable`. A unit without a unit file is not an error (its links, if
// any, are removed); a masked unit is left as it is.
func (o *Offline) Disable(ctx context.Context, unit string) error {
	links, err := o.planDisable(ctx, unit)
	if err != nil {
		return err
	}
	for _, l := range links {
		if err := o.removeLink(ctx, l.Name); err != nil {
			return fmt.Errorf("disable %s: %w", unit, err)
		}
	}
	return nil
}

// Mask links /etc/systemd/system/<unit> to /dev/null, as `systemctl
// --root mask`; the unit need not exist. A mask link already there is
// not an error; any other file there is, and is left alone.
func (o *Offline) Mask(ctx context.Context, unit string) error {
	const op = "mask"
	if err := checkUnitName(op, unit); err != nil {
		return err
	}
	p := path.Join(unitfile.ConfigDir, unit)
	c, err := o.planLink(ctx, p, "/dev/null", false)
	if err != nil {
		return fmt.Errorf("%s %s: %w (remove it first to mask the unit)", op, unit, err)
	}
	if c == nil {
		return nil
	}
	if err := o.writeLink(ctx, *c); err != nil {
		return fmt.Errorf("%s %s: %w", op, unit, err)
	}
	return nil
}

// Unmask removes /etc/systemd/system/<unit> if it masks the unit (a
// symlink to /dev/null, or an empty file), as `systemctl --root unmask`,
// and nothing else: a mask in /run/systemd/system stays.
func (o *Offline) Unmask(ctx context.Context, unit string) error {
	const op = "unmask"
	if err := checkUnitName(op, unit); err != nil {
		return err
	}
	p := path.Join(unitfile.ConfigDir, unit)
	rp, err := o.resolveWrite(ctx, p)
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, unit, err)
	}
	masks, err := o.isMask(ctx, rp)
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, unit, err)
	}
	if !masks {
		return nil
	}
	if err := o.fs.Remove(ctx, rp); err != nil {
		return fmt.Errorf("%s %s: %w", op, unit, err)
	}
	return nil
}

// checkUnitName refuses a name that is not a full unit name.
func checkUnitName(op, unit string) error {
	if unitfile.NameIs(unit, unitfile.AnyKind) {
		return nil
	}
	if unitfile.NameIs(unit+".service", unitfile.AnyKind) {
		return fmt.Errorf("%s %q: not a unit name (write %q)", op, unit, unit+".service")
	}
	return fmt.Errorf("%s %q: not a valid unit name (write a name such as \"kubelet.service\")", op, unit)
}

// linkChange is one symlink to create; replace says that a symlink with
// another target is there and goes first.
type linkChange struct {
	Link
	replace bool
}

// planEnable returns the links enable would create or replace, sorted by
// name, as systemd's unit_file_enable: the unit is looked up following
// links in /etc, then each unit of the context is installed in turn.
func (o *Offline) planEnable(ctx context.Context, unit string) ([]linkChange, error) {
	const op = "enable"
	if err := checkUnitName(op, unit); err != nil {
		return nil, err
	}
	o = o.lookup()
	ic := newInstallCtx()
	start, err := ic.add("", unit, false)
	if err != nil {
		return nil, err
	}
	u, err := o.traverse(ctx, ic, start, true, true)
	if errors.Is(err, errUnitNotFound) {
		return nil, fmt.Errorf("%s %s: %w (write the unit file first, or check the name)", op, unit, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, unit, err)
	}
	if err := mayInstall(u); err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, unit, err)
	}
	planned := map[string]*linkChange{}
	for k := 0; k < len(ic.units); k++ {
		u := ic.units[k]
		if _, err := o.traverse(ctx, ic, u, true, false); err != nil {
			if u.auxiliary {
				continue // systemctl: "Failed to enable auxiliary unit ..., ignoring"
			}
			return nil, fmt.Errorf("%s %s: %w", op, unit, err)
		}
		if u.mode != modeRegular {
			continue // masked (named by Also=), or an alias whose target follows
		}
		if err := o.planInstall(ctx, u, planned); err != nil {
			return nil, fmt.Errorf("%s %s: %w", op, unit, err)
		}
	}
	plan := make([]linkChange, 0, len(planned))
	for _, c := range planned {
		plan = append(plan, *c)
	}
	slices.SortFunc(plan, func(a, b linkChange) int { return strings.Compare(a.Name, b.Name) })
	return plan, nil
}

// mayInstall refuses a unit that enable must not touch: masked,
// generated or transient.
func mayInstall(u *unitInfo) error {
	if u.mode == modeMasked {
		return fmt.Errorf("unit is masked by %s (unmask it first)", u.path)
	}
	if generated, transient := unitfile.IsGeneratedPath(u.path); generated || transient {
		return fmt.Errorf("unit file %s is generated or transient, which systemctl does not enable (enable a unit file of your own instead)", u.path)
	}
	return nil
}

// planInstall adds to planned the links that install u.
func (o *Offline) planInstall(ctx context.Context, u *unitInfo, planned map[string]*linkChange) error {
	if err := o.checkDefaultInstance(ctx, u); err != nil {
		return err
	}
	links, err := installLinks(u)
	if err != nil {
		return err
	}
	for _, l := range links {
		if err := o.plan(ctx, planned, l.Name, l.Target, l.force); err != nil {
			return fmt.Errorf("%w (%s needs it)", err, l.why)
		}
	}
	return nil
}

// checkDefaultInstance refuses to link the DefaultInstance= of a
// template when that instance is masked, as systemd does.
func (o *Offline) checkDefaultInstance(ctx context.Context, u *unitInfo) error {
	if !unitfile.NameIs(u.name, unitfile.Template) || u.DefaultInstance == "" || len(u.WantedBy)+len(u.RequiredBy) == 0 {
		return nil
	}
	name, _ := unitfile.ReplaceInstance(u.name, u.DefaultInstance)
	inst := &unitInfo{name: name}
	if err := o.search(ctx, newInstallCtx(), inst, false); err != nil {
		return err
	}
	if inst.mode == modeMasked {
		return fmt.Errorf("unit %s is masked by %s (unmask it first)", name, inst.path)
	}
	return nil
}

// wantLink is a symlink that installing a unit asks for. force allows
// replacing a symlink with another target (WantedBy=, RequiredBy=); why
// names the setting, for messages.
type wantLink struct {
	Link
	force bool
	why   string
}

// installLinks returns the symlinks that installing u (found at u.path)
// asks for, in the order systemd's install_info_apply makes them: a link
// to a unit file outside the search path, then Alias=, WantedBy= and
// RequiredBy=. A template links its DefaultInstance= into the targets,
// or without one may only be linked into templates and instances.
// Whether the links exist already is not its business.
func installLinks(u *unitInfo) ([]wantLink, error) {
	var links []wantLink
	if !unitfile.InSearchPath(u.path) {
		links = append(links, wantLink{
			Link: Link{Name: path.Join(unitfile.ConfigDir, u.name), Target: u.path},
			why:  "linking " + u.path,
		})
	}
	for _, a := range u.Aliases {
		dst, err := unitfile.ExpandSpecifiers(a, u.name, u.DefaultInstance)
		if err != nil {
			return nil, fmt.Errorf("alias %q: %w", a, err)
		}
		dst, err = unitfile.AliasName(u.name, dst)
		if errors.Is(err, unitfile.ErrSelfAlias) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w (fix Alias= in %s)", err, u.path)
		}
		links = append(links, wantLink{Link: Link{Name: path.Join(unitfile.ConfigDir, dst), Target: u.path}, why: "Alias=" + a})
	}
	name, dstKinds := u.name, unitfile.AnyKind
	if unitfile.NameIs(u.name, unitfile.Template) {
		if u.DefaultInstance != "" {
			name, _ = unitfile.ReplaceInstance(u.name, u.DefaultInstance)
		} else {
			dstKinds = unitfile.Template | unitfile.Instance
		}
	}
	for _, dep := range []struct {
		key, suffix string
		list        []string
	}{{"WantedBy", ".wants", u.WantedBy}, {"RequiredBy", ".requires", u.RequiredBy}} {
		for _, s := range dep.list {
			dst, err := unitfile.ExpandSpecifiers(s, u.name, u.DefaultInstance)
			if err != nil {
				return nil, fmt.Errorf("%s=%s: %w", dep.key, s, err)
			}
			if !unitfile.NameIs(dst, dstKinds) {
				if unitfile.NameIs(dst, unitfile.AnyKind) {
					return nil, fmt.Errorf("%s=%s: %s is not a template, so a template without DefaultInstance= cannot be linked into it (enable an instance such as %q, or set DefaultInstance=)",
						dep.key, s, dst, strings.Replace(u.name, "@.", "@name.", 1))
				}
				return nil, fmt.Errorf("%s=%s: %q is not a valid unit name (fix %s)", dep.key, s, dst, u.path)
			}
			links = append(links, wantLink{
				Link:  Link{Name: unitfile.ConfigDir + "/" + dst + dep.suffix + "/" + name, Target: u.path},
				force: true,
				why:   dep.key + "=" + s,
			})
		}
	}
	return links, nil
}

// plan adds the link name -> target to planned unless an equivalent link
// is there or planned already, as systemd's create_symlink: a symlink
// with another target is replaced with force, else it is an error, as is
// any other file in the way.
func (o *Offline) plan(ctx context.Context, planned map[string]*linkChange, name, target string, force bool) error {
	if c, ok := planned[name]; ok {
		same, err := o.equivalent(ctx, name, c.Target, target)
		if err != nil || same {
			return err
		}
		if !force {
			return fmt.Errorf("%s would be a symlink both to %q and to %q (give the units different names)", name, c.Target, target)
		}
		c.Target = target
		return nil
	}
	c, err := o.planLink(ctx, name, target, force)
	if err != nil || c == nil {
		return err
	}
	planned[name] = c
	return nil
}

// planLink returns the change that makes name a symlink to target, or
// nil if an equivalent one is there.
func (o *Offline) planLink(ctx context.Context, name, target string, force bool) (*linkChange, error) {
	rp, err := o.resolveWrite(ctx, name)
	if err != nil {
		return nil, err
	}
	fi, err := o.fs.Lstat(ctx, rp)
	if errors.Is(err, fs.ErrNotExist) {
		return &linkChange{Link: Link{Name: name, Target: target}}, nil
	}
	if err != nil {
		return nil, err
	}
	if fi.Mode&fs.ModeSymlink == 0 {
		return nil, fmt.Errorf("%s already exists", name)
	}
	dest, err := o.fs.Readlink(ctx, rp)
	if err != nil {
		return nil, err
	}
	same, err := o.equivalent(ctx, name, dest, target)
	if err != nil || same {
		return nil, err
	}
	if !force {
		return nil, fmt.Errorf("%s already exists and is a symlink to %q", name, dest)
	}
	return &linkChange{Link: Link{Name: name, Target: target}, replace: true}, nil
}

// equivalent reports whether the symlink src -> dest does what a symlink
// to want would, as systemd's chroot_unit_symlinks_equivalent: the same
// path, the same file, or the same name in the search path (so a link to
// /etc/systemd/system/foo.service stands for one to
// /usr/lib/systemd/system/foo.service).
func (o *Offline) equivalent(ctx context.Context, src, dest, want string) (bool, error) {
	a := dest
	if !strings.HasPrefix(a, "/") {
		a = path.Join(path.Dir(src), a)
	}
	a = path.Clean(a)
	if a == want {
		return true, nil
	}
	ra, err := o.resolve(ctx, a, false, nil)
	if err != nil {
		return false, err
	}
	rb, err := o.resolve(ctx, want, false, nil)
	if err != nil {
		return false, err
	}
	if ra == rb {
		if _, err := o.fs.Lstat(ctx, ra); err == nil {
			return true, nil
		}
	}
	return path.Base(a) == path.Base(want) && unitfile.UnderSearchPath(a) && unitfile.UnderSearchPath(want), nil
}

// writeLink makes the planned link, replacing the old one if need be.
func (o *Offline) writeLink(ctx context.Context, c linkChange) error {
	rp, err := o.resolveWrite(ctx, c.Name)
	if err != nil {
		return err
	}
	if c.replace {
		if err := o.fs.Remove(ctx, rp); err != nil {
			return err
		}
	}
	return o.fs.Symlink(ctx, c.Target, rp)
}

// planDisable returns the links disable would remove, sorted by name, as
// systemd 252's unit_file_disable: every unit of the context that is not
// masked (even one without a unit file) marks its name, then
// /etc/systemd/system is walked in name order, removing links whose name
// or template is marked or that lead to a file of a marked name. A link
// removed earlier in the walk no longer leads anywhere.
func (o *Offline) planDisable(ctx context.Context, unit string) ([]Link, error) {
	const op = "disable"
	if err := checkUnitName(op, unit); err != nil {
		return nil, err
	}
	o = o.lookup()
	ic := newInstallCtx()
	if _, err := ic.add("", unit, false); err != nil {
		return nil, err
	}
	marked := map[string]bool{}
	for k := 0; k < len(ic.units); k++ {
		u := ic.units[k]
		_, err := o.traverse(ctx, ic, u, true, true)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w", op, unit, ctx.Err())
		}
		if err == nil && u.mode != modeRegular {
			continue // masked, or an alias whose target is in ic
		}
		// systemctl marks the name even when the lookup failed: links
		// named after a unit without a file are removed too.
		marked[u.name] = true
	}
	var links []Link
	gone := map[string]bool{}
	if err := o.walkMarked(ctx, unitfile.ConfigDir, marked, gone, &links); err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, unit, err)
	}
	slices.SortFunc(links, func(a, b Link) int { return strings.Compare(a.Name, b.Name) })
	return links, nil
}

// walkMarked adds to links the symlinks below dir that disable removes,
// as systemd's remove_marked_symlinks_fd, marking each as gone.
func (o *Offline) walkMarked(ctx context.Context, dir string, marked, gone map[string]bool, links *[]Link) error {
	rdir, err := o.resolve(ctx, dir, false, nil)
	if err != nil {
		return err
	}
	names, err := o.fs.ReadDir(ctx, rdir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, n := range names {
		if unitfile.HiddenOrBackup(n) {
			continue
		}
		p := path.Join(dir, n)
		fi, err := o.fs.Lstat(ctx, path.Join(rdir, n))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.IsDir() {
			if err := o.walkMarked(ctx, p, marked, gone, links); err != nil {
				return err
			}
			continue
		}
		if fi.Mode&fs.ModeSymlink == 0 || !unitfile.NameIs(n, unitfile.AnyKind) {
			continue
		}
		found := marked[n]
		if tmpl, ok := unitfile.TemplateOf(n); ok && !found {
			found = marked[tmpl]
		}
		if !found {
			dest, err := o.resolve(ctx, p, false, gone)
			if err != nil {
				continue // systemctl reports it and goes on
			}
			found = marked[path.Base(dest)]
		}
		if !found {
			continue
		}
		target, err := o.fs.Readlink(ctx, path.Join(rdir, n))
		if err != nil {
			return err
		}
		*links = append(*links, Link{Name: p, Target: target})
		gone[p] = true
	}
	return nil
}

// removeLink removes the symlink name and then its parents below
// /etc/systemd/system that are left empty, as systemd's rmdir_parents.
func (o *Offline) removeLink(ctx context.Context, name string) error {
	rp, err := o.resolveWrite(ctx, name)
	if err != nil {
		return err
	}
	if err := o.fs.Remove(ctx, rp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for dir := path.Dir(rp); dir != unitfile.ConfigDir && unitfile.Under(dir, unitfile.ConfigDir); dir = path.Dir(dir) {
		names, err := o.fs.ReadDir(ctx, dir)
		if err != nil || len(names) > 0 {
			return nil
		}
		if err := o.fs.Remove(ctx, dir); err != nil {
			return nil // a directory that stays is no harm; systemctl ignores it too
		}
	}
	return nil
}
