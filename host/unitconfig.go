package host

import (
	"context"
	"errors"
	"io/fs"
	"path"
	"slices"
	"syscall"

	"github.com/kplay-dev/kplay/host/unitfile"
)

// UnitConfigFiles returns the files systemd's manager reads to load the
// unit name from h's root, in the order it reads them: the unit file (the
// first found in the search path; for an instance, its own file else its
// template's), then its drop-ins, sorted by file name, a name in an
// earlier directory of the search path hiding the same name in a later
// one (systemd.unit(5), "Description"). The drop-in directories of a
// unit are, in every search path directory, <name>.d, its template's
// <prefix>@.<type>.d, one for each dash prefix of its name
// ("foo-.service.d" for "foo-bar.service"), and <type>.d.
//
// It returns nil when there is no unit file, or it is masked (a link to
// /dev/null, or empty): systemd then has nothing to check.
func UnitConfigFiles(ctx context.Context, h Host, name string) ([]string, error) {
	o := NewOffline(h).lookup()
	names := []string{name}
	if tmpl, ok := unitfile.TemplateOf(name); ok && tmpl != name {
		names = append(names, tmpl)
	}
	fragment := ""
	for _, n := range names {
		for _, dir := range unitfile.SearchPath() {
			p := path.Join(dir, n)
			_, err := o.fs.Lstat(ctx, p)
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				continue
			}
			if err != nil {
				return nil, err
			}
			fragment = p
			break
		}
		if fragment != "" {
			break
		}
	}
	if fragment == "" {
		return nil, nil
	}
	if masked, err := o.isMask(ctx, fragment); err != nil || masked {
		return nil, err
	}
	// A unit file that is a symlink to another name (an alias) gives
	// the unit that name too, and its drop-ins.
	names = []string{name}
	real, err := o.resolve(ctx, fragment, false, nil)
	if err != nil {
		return nil, err
	}
	if alias := path.Base(real); alias != name && unitfile.NameError(alias) == nil {
		names = append(names, alias)
	}
	// So do the other names that link to the same file in the search
	// path (systemd's unit name map): their drop-ins apply too.
	for _, dir := range unitfile.SearchPath() {
		entries, err := o.fs.ReadDir(ctx, dir)
		if err != nil {
			continue
		}
		for _, n := range entries {
			if slices.Contains(names, n) || unitfile.TypeOf(n) != unitfile.TypeOf(name) || unitfile.NameError(n) != nil {
				continue
			}
			p := path.Join(dir, n)
			if fi, err := o.fs.Lstat(ctx, p); err != nil || fi.Mode&fs.ModeSymlink == 0 {
				continue
			}
			if dest, err := o.resolve(ctx, p, false, nil); err == nil && dest == real {
				names = append(names, n)
			}
		}
	}
	// Every search directory for one drop-in directory name before the
	// next name, and the type's directory (service.d) last, as systemd's
	// unit_file_find_dirs: a drop-in in foo.service.d hides one of the
	// same name in service.d wherever they are.
	var dirs []string
	for _, n := range names {
		for _, d := range unitfile.DropinDirs(n) {
			for _, dir := range unitfile.SearchPath() {
				dirs = append(dirs, path.Join(dir, d))
			}
		}
	}
	dropins, err := o.listDropins(ctx, dirs)
	if err != nil {
		return nil, err
	}
	return append([]string{fragment}, dropins...), nil
}

// VendorUnit returns the path of a unit file of name in a search
// directory below /etc/systemd/system (/run, /usr/local/lib, /usr/lib,
// /lib), or "": the one that takes over when /etc's is removed.
func VendorUnit(ctx context.Context, h Host, name string) string {
	past := false
	for _, dir := range unitfile.SearchPath() {
		if dir == "/etc/systemd/system" {
			past = true
			continue
		}
		if !past {
			continue
		}
		p := path.Join(dir, name)
		if _, err := h.Lstat(ctx, p); err == nil {
			return p
		}
	}
	return ""
}
