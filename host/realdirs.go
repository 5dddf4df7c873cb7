package host

import (
	"os"
	"path"
	"strings"
	"sync"
)

// maxDirRoots bounds the directory handles a Real keeps open.
const maxDirRoots = 256

// dirRoots are open handles of the directories Lstat and ReadFile looked
// into. Through os.Root, an operation on "srv/app/conf/f" opens srv, app
// and conf in turn before it reaches f: on a tree of many files a check
// spent most of its time in those system calls. With the handle of
// srv/app/conf it is one. A handle is an os.Root of its own, opened
// through the Real's root (so it is inside it); a read that would leave
// it, through a symlink to "../x", is done again through the Real's root.
//
// Handles are kept until a Remove, which may take a directory away (or
// one that a handle reached through a symlink), drops them all.
//
// They also remember which paths were found or made to be directories, so
// that writing many files into one directory does not look up its path
// again for each (mkdirParents); a Remove forgets them too.
type dirRoots struct {
	use   sync.RWMutex // held for reading while a handle is in use
	mu    sync.Mutex   // guards open and isDir
	open  map[string]*os.Root
	isDir map[string]bool
}

// withDir calls fn with the handle of rel's directory and rel's base
// name, and returns true; or returns false when there is no handle to use
// (rel is at the top, or the directory cannot be opened). When too many
// handles are kept, the handle is opened for this call only: os.Root
// counts the symlinks it follows per call, so a read through a handle may
// follow more in all than one from the top, and it must not depend on how
// many directories were read before (the dry host counts as a handle
// does).
func (r *Real) withDir(rel string, fn func(d *os.Root, base string)) bool {
	dir, base := path.Split(rel)
	if dir == "" {
		return false
	}
	dir = dir[:len(dir)-1]
	r.dirs.use.RLock()
	defer r.dirs.use.RUnlock()
	r.dirs.mu.Lock()
	d, ok := r.dirs.open[dir]
	keep := true
	if !ok {
		var err error
		if d, err = r.root.Load().OpenRoot(dir); err == nil {
			ok = true
			if keep = len(r.dirs.open) < maxDirRoots; keep {
				if r.dirs.open == nil {
					r.dirs.open = map[string]*os.Root{}
				}
				r.dirs.open[dir] = d
			}
		}
	}
	r.dirs.mu.Unlock()
	if !ok {
		return false
	}
	if !keep {
		defer d.Close()
	}
	fn(d, base)
	return true
}

// forgetDirs closes every directory handle.
func (r *Real) forgetDirs() {
	r.dirs.use.Lock()
	defer r.dirs.use.Unlock()
	r.dirs.mu.Lock()
	defer r.dirs.mu.Unlock()
	for _, d := range r.dirs.open {
		_ = d.Close()
	}
	clear(r.dirs.open)
	clear(r.dirs.isDir)
}

// forgetDirsUnder closes the handles of rel and of the directories below
// it, and forgets that they are directories.
func (r *Real) forgetDirsUnder(rel string) {
	r.dirs.use.Lock()
	defer r.dirs.use.Unlock()
	r.dirs.mu.Lock()
	defer r.dirs.mu.Unlock()
	for dir, d := range r.dirs.open {
		if dir == rel || strings.HasPrefix(dir, rel+"/") {
			_ = d.Close()
			delete(r.dirs.open, dir)
		}
	}
	for dir := range r.dirs.isDir {
		if dir == rel || strings.HasPrefix(dir, rel+"/") {
			delete(r.dirs.isDir, dir)
		}
	}
}

// knownDir reports whether rel was found or made a directory since the
// last forgetDirs.
func (r *Real) knownDir(rel string) bool {
	r.dirs.mu.Lock()
	defer r.dirs.mu.Unlock()
	return r.dirs.isDir[rel]
}

// markDir remembers that rel is a directory.
func (r *Real) markDir(rel string) {
	r.dirs.mu.Lock()
	defer r.dirs.mu.Unlock()
	if r.dirs.isDir == nil {
		r.dirs.isDir = map[string]bool{}
	}
	r.dirs.isDir[rel] = true
}

// isEscape reports whether err is os.Root's "path escapes" error.
func (r *Real) isEscape(err error) bool {
	return r.escape != nil && cause(err) == r.escape
}

// inDir calls fn with the handle of rel's directory and rel's base name
// (withDir), or with the root and rel when rel is at the top: fn's name
// is one element, which os.Root resolves with no walk. When the
// directory cannot be opened, fn is not called and inDir returns
// os.Root's error for it (ENOENT, ENOTDIR, an escape).
func (r *Real) inDir(rel string, fn func(d *os.Root, base string) error) error {
	dir := path.Dir(rel)
	if dir == "." {
		return fn(r.root.Load(), rel)
	}
	var err error
	if r.withDir(rel, func(d *os.Root, base string) { err = fn(d, base) }) {
		return err
	}
	d, err := r.root.Load().OpenRoot(dir)
	if err != nil {
		return err
	}
	// Opened now, though withDir could not: the directory was made
	// meanwhile.
	defer d.Close()
	return fn(d, path.Base(rel))
}
