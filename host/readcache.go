package host

import (
	"bytes"
	"context"
	"io/fs"
	"slices"
	"sync"
)

// readCache is a Host that answers each read (Lstat, ReadFile, Readlink,
// ReadDir) of a name once and then from memory, errors included, with
// copies that callers may change; a file larger than maxCachedFile is
// read each time. Any write through it
// forgets everything. An Offline looks a unit up through
// one per call, because systemd's lookup reads the same directories and
// symlinks many times: resolving a path checks each of its parents, and
// each of the 13 search directories is listed once per unit and per
// drop-in directory. On the Real host each read is several system calls.
type readCache struct {
	Host
	mu      sync.Mutex
	entries map[readKey]readResult
}

type readKey struct {
	op   byte // 's' Lstat, 'f' ReadFile, 'l' Readlink, 'd' ReadDir
	name string
}

type readResult struct {
	info  FileInfo
	data  []byte
	text  string
	names []string
	err   error
}

func newReadCache(h Host) *readCache {
	return &readCache{Host: h, entries: map[readKey]readResult{}}
}

// read returns the cached result of op on name, or calls fill and keeps
// its result, unless that holds more than maxCachedFile bytes of data.
func (c *readCache) read(op byte, name string, fill func() readResult) readResult {
	k := readKey{op, name}
	c.mu.Lock()
	r, ok := c.entries[k]
	c.mu.Unlock()
	if ok {
		return r
	}
	r = fill()
	if len(r.data) <= maxCachedFile {
		c.mu.Lock()
		c.entries[k] = r
		c.mu.Unlock()
	}
	return r
}

func (c *readCache) forget() {
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}

func (c *readCache) Lstat(ctx context.Context, name string) (FileInfo, error) {
	r := c.read('s', name, func() (r readResult) { r.info, r.err = c.Host.Lstat(ctx, name); return })
	return r.info, r.err
}

// maxCachedFile is the largest content a readCache keeps. What is read
// again and again is small (passwd, group, unit files); a check of a
// playbook that places large files must not hold them all in memory.
const maxCachedFile = 64 << 10

func (c *readCache) ReadFile(ctx context.Context, name string) ([]byte, error) {
	r := c.read('f', name, func() (r readResult) { r.data, r.err = c.Host.ReadFile(ctx, name); return })
	if len(r.data) > maxCachedFile {
		return r.data, r.err // not kept: the caller's own
	}
	return bytes.Clone(r.data), r.err
}

func (c *readCache) Readlink(ctx context.Context, name string) (string, error) {
	r := c.read('l', name, func() (r readResult) { r.text, r.err = c.Host.Readlink(ctx, name); return })
	return r.text, r.err
}

func (c *readCache) ReadDir(ctx context.Context, name string) ([]string, error) {
	r := c.read('d', name, func() (r readResult) { r.names, r.err = c.Host.ReadDir(ctx, name); return })
	return slices.Clone(r.names), r.err
}

func (c *readCache) WriteFile(ctx context.Context, name string, data []byte, perm fs.FileMode, uid, gid int) error {
	defer c.forget()
	return c.Host.WriteFile(ctx, name, data, perm, uid, gid)
}

func (c *readCache) Mkdir(ctx context.Context, name string, perm fs.FileMode, uid, gid int) error {
	defer c.forget()
	return c.Host.Mkdir(ctx, name, perm, uid, gid)
}

func (c *readCache) Chmod(ctx context.Context, name string, perm fs.FileMode) error {
	defer c.forget()
	return c.Host.Chmod(ctx, name, perm)
}

func (c *readCache) Chown(ctx context.Context, name string, uid, gid int) error {
	defer c.forget()
	return c.Host.Chown(ctx, name, uid, gid)
}

func (c *readCache) Symlink(ctx context.Context, target, name string) error {
	defer c.forget()
	return c.Host.Symlink(ctx, target, name)
}

func (c *readCache) Remove(ctx context.Context, name string) error {
	defer c.forget()
	return c.Host.Remove(ctx, name)
}
