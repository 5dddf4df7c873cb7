package host

import (
	"context"
	"errors"
	"io/fs"
	"path"
	"strings"
	"syscall"
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
	if tmpl, ok := unitTemplate(name); ok && tmpl != name {
		names = append(names, tmpl)
	}
	fragment := ""
	for _, n := range names {
		for _, dir := range unitSearchPath {
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
	var dirs []string
	for _, dir := range unitSearchPath {
		for _, d := range dropinDirNames(name) {
			dirs = append(dirs, path.Join(dir, d))
		}
	}
	dropins, err := o.listDropins(ctx, dirs)
	if err != nil {
		return nil, err
	}
	return append([]string{fragment}, dropins...), nil
}

// dropinDirNames are the names of the drop-in directories of the unit
// name, most specific first: "foo-bar@x.service" has
// "foo-bar@x.service.d", "foo-bar@.service.d", "foo-.service.d" and
// "service.d".
func dropinDirNames(name string) []string {
	prefix, _, typ, _, ok := splitUnitName(name)
	if !ok {
		return []string{name + ".d"}
	}
	dirs := []string{name + ".d"}
	if tmpl, ok := unitTemplate(name); ok && tmpl != name {
		dirs = append(dirs, tmpl+".d")
	}
	for i := len(prefix) - 1; i > 0; i-- {
		if prefix[i] == '-' && !strings.HasSuffix(prefix[:i], "-") {
			dirs = append(dirs, prefix[:i+1]+"."+typ+".d")
		}
	}
	return append(dirs, typ+".d")
}
