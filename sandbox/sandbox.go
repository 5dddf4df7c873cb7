// Package sandbox is a machine in memory for kplay test and kplay diff:
// an offline root, read and never written (a directory's tree, or files
// given as text, or nothing), an etcd and a Kubernetes API server faked
// in memory and seeded by the caller, and no network. A plan checked or
// converged on it (through host.Dry, as check does) changes nothing
// outside the process, needs no privilege, and gives the same answer on
// every machine.
package sandbox

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kplay-dev/kplay/host"
)

// Seed is what a sandbox holds before the plan runs.
type Seed struct {
	// Dir is a directory whose tree is the root, read as it is and never
	// written; "" is an empty root.
	Dir string
	// Files are regular files added to the root, in memory: absolute
	// clean path → content, mode 0644, owned by root (uid and gid 0),
	// with missing parents made as directories of mode 0755.
	Files map[string]string
	// Etcd are the keys the fake etcd holds, with their values; every
	// etcd cluster a playbook names is this one.
	Etcd map[string]string
	// Objects are the API objects the fake API server holds; every API
	// server a playbook names is this one.
	Objects []map[string]any
	// LocalDir is the directory relative src= files (host.ReadLocal) are
	// read from, as kplay reads them from its working directory; "" is
	// the working directory.
	LocalDir string
	// LocalTree, if set, is the only tree src= files may be read from,
	// once their symlinks are resolved (kplay test reads the files of the
	// tree it tests, not /etc/shadow).
	LocalTree string
}

// Machine is a seeded sandbox. It is the host a plan is checked
// against: wrap it in host.NewDry to apply a plan in memory.
type Machine struct {
	host.Host
	etcd  *FakeEtcd
	kube  *FakeKube
	empty string // the empty directory standing for an empty root, removed by Close
	real  *host.Real
	// localDir and localTree are Seed's.
	localDir, localTree string
}

// New makes the sandbox seed describes. Errors name the bad path of
// Files or the directory.
func New(ctx context.Context, seed Seed) (*Machine, error) {
	m := &Machine{kube: NewFakeKube(), localDir: seed.LocalDir, localTree: seed.LocalTree}
	var err error
	if m.etcd, err = NewFakeEtcd(seed.Etcd); err != nil {
		return nil, err
	}
	for _, obj := range seed.Objects {
		if _, err := m.kube.Create(ctx, obj); err != nil {
			return nil, err
		}
	}
	dir := seed.Dir
	if dir == "" {
		var err error
		if m.empty, err = os.MkdirTemp("", "kplay-sandbox-"); err != nil {
			return nil, err
		}
		dir = m.empty
	} else if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("root %s: %w", dir, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("root %s: not a directory", dir)
	}
	real, err := host.OpenReal(dir, false)
	if err != nil {
		m.Close()
		return nil, err
	}
	m.real = real
	seeded := host.NewDry(&base{Host: real, m: m})
	for _, name := range slices.Sorted(maps.Keys(seed.Files)) {
		if !path.IsAbs(name) || path.Clean(name) != name {
			m.Close()
			return nil, fmt.Errorf("root file %q: want an absolute, clean path such as /etc/motd", name)
		}
		if err := seeded.WriteFile(ctx, name, []byte(seed.Files[name]), 0o644, 0, 0); err != nil {
			m.Close()
			return nil, fmt.Errorf("root file %s: %w", name, err)
		}
	}
	m.Host = seeded
	return m, nil
}

// Close removes what New made on disk: nothing but an empty directory.
func (m *Machine) Close() error {
	if m.real != nil {
		m.real.Close()
	}
	if m.empty != "" {
		return os.RemoveAll(m.empty)
	}
	return nil
}

// base is the root directory with the sandbox's fakes in place of the
// network: the host under the seeded Dry.
type base struct {
	host.Host
	m *Machine
}

// Root names the root in messages: the directory as given, or "(empty)"
// rather than the temporary directory standing for it.
func (b *base) Root() string {
	if b.m.empty != "" {
		return "(empty)"
	}
	return b.Host.Root()
}

func (b *base) Etcd(host.EtcdConfig) (host.Etcd, error) { return b.m.etcd, nil }
func (b *base) Kube(host.KubeConfig) (host.Kube, error) { return b.m.kube, nil }
func (b *base) HTTP() host.HTTP                         { return noNetwork{} }

// ReadLocal reads a relative name from Seed.LocalDir.
func (b *base) ReadLocal(ctx context.Context, name string) ([]byte, error) {
	if b.m.localDir != "" && !filepath.IsAbs(name) {
		name = filepath.Join(b.m.localDir, name)
	}
	if err := InTree(b.m.localTree, name); err != nil {
		return nil, fmt.Errorf("read %s: %w (keep src= files in it)", name, err)
	}
	return b.Host.ReadLocal(ctx, name)
}

// InTree says why p, once its symlinks are resolved, is not in tree (a
// path that does not exist yet is judged by its text); nil when it is,
// or when tree is "". The error wraps fs.ErrPermission.
func InTree(tree, p string) error {
	if tree == "" {
		return nil
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return err
	}
	if resolved, err := filepath.EvalSymlinks(abs); err == nil {
		abs = resolved
	}
	if rt, err := filepath.EvalSymlinks(tree); err == nil {
		tree = rt
	}
	if rel, err := filepath.Rel(tree, abs); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("outside %s, the tree kplay test reads (run kplay test from a directory that holds it): %w", tree, fs.ErrPermission)
	}
	return nil
}

// ErrNoNetwork is wrapped by every HTTP request from a sandbox.
var ErrNoNetwork = fmt.Errorf("a sandbox has no network (kplay test, kplay diff): %w", fs.ErrPermission)

// noNetwork is the HTTP of a sandbox: it sends nothing.
type noNetwork struct{}

func (noNetwork) Do(_ context.Context, method, url string, _ []byte, _ map[string]string) (host.HTTPResponse, error) {
	return host.HTTPResponse{}, fmt.Errorf("%s %s: %w", method, host.RedactURLs(url), ErrNoNetwork)
}

func (noNetwork) Wait(_ context.Context, url string, _ []int, _, _ time.Duration, _ func(string)) error {
	return fmt.Errorf("wait for %s: %w", host.RedactURLs(url), ErrNoNetwork)
}

func (n noNetwork) WithTLS(host.TLSFiles) (host.HTTP, error) { return n, nil }
