package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/etcdtest"
	"github.com/kplay-dev/kplay/host/etcdv2"
)

// TestFakeEtcdAnswersAlike makes the same calls of host.Etcd on a
// FakeEtcd and on the real client against a real etcd, and wants the
// same answers: values, existence, created, and the key forms etcd v2
// makes one (a missing leading slash, a trailing one, doubled ones).
func TestFakeEtcdAnswersAlike(t *testing.T) {
	if etcdtest.Binary() == "" {
		t.Skip("etcd not installed (Debian's etcd-server)")
	}
	srv := etcdtest.Start(t)
	real, err := host.OpenReal(t.TempDir(), false, host.WithEtcd(etcdv2.New))
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close()
	live, err := real.Etcd(host.EtcdConfig{Endpoints: []string{srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	fake, err := NewFakeEtcd(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	calls := []struct {
		set, swap bool
		key       string
		value     string
		ifAbsent  bool
		prev      host.EtcdValue
	}{
		{key: "/kplay/a"},
		{set: true, key: "/kplay/a", value: "1"},
		{key: "/kplay/a"},
		{key: "kplay/a"},
		{key: "/kplay//a/"},
		{set: true, key: "/kplay/a", value: "2", ifAbsent: true},
		{key: "/kplay/a"},
		{set: true, key: "kplay/a", value: "3"},
		{key: "/kplay/a"},
		{set: true, key: "/kplay/b", value: "", ifAbsent: true},
		{key: "/kplay/b"},
		// Compare-and-swap: against the value, against absence.
		{swap: true, key: "/kplay/a", value: "4", prev: host.EtcdValue{Exists: true, Value: "1"}},
		{key: "/kplay/a"},
		{swap: true, key: "/kplay/a", value: "4", prev: host.EtcdValue{Exists: true, Value: "3"}},
		{key: "/kplay/a"},
		{swap: true, key: "/kplay/a", value: "5", prev: host.EtcdValue{}},
		{swap: true, key: "/kplay/c", value: "c", prev: host.EtcdValue{Exists: true, Value: "x"}},
		{key: "/kplay/c"},
		{swap: true, key: "/kplay/c", value: "c", prev: host.EtcdValue{}},
		{key: "/kplay/c"},
	}
	for i, c := range calls {
		if c.swap {
			ferr := fake.Swap(ctx, c.key, c.value, c.prev)
			rerr := live.Swap(ctx, c.key, c.value, c.prev)
			if errText(ferr) != errText(rerr) || errors.Is(ferr, host.ErrEtcdSwap) != errors.Is(rerr, host.ErrEtcdSwap) {
				t.Errorf("call %d Swap(%q, %q, %+v): fake %v; real %v", i, c.key, c.value, c.prev, ferr, rerr)
			}
			continue
		}
		if c.set {
			fc, ferr := fake.Set(ctx, c.key, c.value, c.ifAbsent)
			rc, rerr := live.Set(ctx, c.key, c.value, c.ifAbsent)
			if fc != rc || errText(ferr) != errText(rerr) {
				t.Errorf("call %d Set(%q, %q, %v): fake %v, %v; real %v, %v", i, c.key, c.value, c.ifAbsent, fc, ferr, rc, rerr)
			}
			continue
		}
		fv, ferr := fake.Get(ctx, c.key)
		rv, rerr := live.Get(ctx, c.key)
		if fv.Exists != rv.Exists || fv.Value != rv.Value || errText(ferr) != errText(rerr) {
			t.Errorf("call %d Get(%q): fake %+v, %v; real %+v, %v", i, c.key, fv, ferr, rv, rerr)
		}
	}
}

// TestSandboxChangesNothing checks a sandbox over a directory: files
// added in memory are read as root's, the directory is never written,
// and HTTP sends nothing.
func TestSandboxChangesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "motd"), []byte("on disk\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := New(ctx, Seed{Dir: dir, Files: map[string]string{"/etc/hosts": "127.0.0.1 localhost\n"}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if b, err := m.ReadFile(ctx, "/motd"); err != nil || string(b) != "on disk\n" {
		t.Errorf("ReadFile(/motd) = %q, %v", b, err)
	}
	fi, err := m.Lstat(ctx, "/etc/hosts")
	if err != nil || fi.UID != 0 || fi.GID != 0 || fi.Mode.Perm() != 0o644 {
		t.Errorf("Lstat(/etc/hosts) = %+v, %v; want 0644 root:root", fi, err)
	}
	dry := host.NewDry(m)
	if err := dry.WriteFile(ctx, "/motd", []byte("new\n"), 0o644, 0, 0); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "motd")); string(b) != "on disk\n" {
		t.Errorf("the directory was written: %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "etc")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the seeded files reached the directory: %v", err)
	}
	if _, err := m.HTTP().Do(ctx, "GET", "http://127.0.0.1:1/", nil, nil); !errors.Is(err, ErrNoNetwork) {
		t.Errorf("HTTP: got %v, want ErrNoNetwork", err)
	}
	if _, err := New(ctx, Seed{Files: map[string]string{"etc/x": ""}}); err == nil {
		t.Error("a relative path in Files: want an error")
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
