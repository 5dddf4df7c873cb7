package etcdv2

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/kplay-dev/kplay/host"
)

// The etcd of a host.Dry over a host.Real, and the Real's keeping of
// clients, against a real etcd through this package's client.

// openReal opens a Real over an empty root whose etcd client is this
// package's.
func openReal(t *testing.T) *host.Real {
	t.Helper()
	r, err := host.OpenReal(t.TempDir(), false, host.WithEtcd(New))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestDryEtcdNeverWrites(t *testing.T) {
	t.Parallel()
	url := testEtcd(t)
	real := newTestEtcd(t, url)
	existing, absent := etcdKey(t, "existing"), etcdKey(t, "absent")
	mustSet(t, real, existing, "before", false)
	before := mustGet(t, real, existing)

	d := host.NewDry(openReal(t))
	dry, err := d.Etcd(host.EtcdConfig{Endpoints: []string{url}})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, dry, existing); got != before {
		t.Errorf("dry get reads through: got %+v, want %+v", got, before)
	}
	if mustSet(t, dry, existing, "after", true) {
		t.Error("dry ifAbsent set of an existing key: got created=true, want false")
	}
	if mustSet(t, dry, existing, "after", false) {
		t.Error("dry set of an existing key: got created=true, want false")
	}
	if !mustSet(t, dry, absent, "new", true) {
		t.Error("dry ifAbsent set of an absent key: got created=false, want true")
	}
	if mustSet(t, dry, absent, "newer", true) {
		t.Error("second dry ifAbsent set: got created=true, want false")
	}

	// A new client of the dry host sees its sets; one with other
	// endpoints does not.
	same, err := d.Etcd(host.EtcdConfig{Endpoints: []string{url}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := d.Etcd(host.EtcdConfig{Endpoints: []string{url, url + "/"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		e    host.Etcd
		key  string
		want host.EtcdValue
	}{
		"overwritten":     {e: dry, key: existing, want: host.EtcdValue{Exists: true, Value: "after"}},
		"created":         {e: dry, key: absent, want: host.EtcdValue{Exists: true, Value: "new"}},
		"new_client":      {e: same, key: absent, want: host.EtcdValue{Exists: true, Value: "new"}},
		"other_endpoints": {e: other, key: absent, want: host.EtcdValue{}},
		// etcd has not changed.
		"real_existing": {e: real, key: existing, want: before},
		"real_absent":   {e: real, key: absent, want: host.EtcdValue{}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := mustGet(t, tt.e, tt.key); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDryEtcdPassesErrors(t *testing.T) {
	t.Parallel()
	d := host.NewDry(openReal(t))
	if _, err := d.Etcd(host.EtcdConfig{}); err == nil || !strings.Contains(err.Error(), "no endpoints") {
		t.Errorf("no endpoints: got %v, want the base's error", err)
	}
}

// etcdCountingHost counts the Gets of the etcd clients it returns.
type etcdCountingHost struct {
	host.Host
	mu   sync.Mutex
	gets map[string]int // by key
}

func (h *etcdCountingHost) Etcd(cfg host.EtcdConfig) (host.Etcd, error) {
	e, err := h.Host.Etcd(cfg)
	if err != nil {
		return nil, err
	}
	return &etcdCountingClient{Etcd: e, h: h}, nil
}

type etcdCountingClient struct {
	host.Etcd
	h *etcdCountingHost
}

func (e *etcdCountingClient) Get(ctx context.Context, key string) (host.EtcdValue, error) {
	e.h.mu.Lock()
	e.h.gets[key]++
	e.h.mu.Unlock()
	return e.Etcd.Get(ctx, key)
}

// A step's Diff and its dry Apply, and steps that read a key at the same
// time, read it from etcd once; the dry host keeps the first answer.
func TestDryEtcdReadsBaseOnce(t *testing.T) {
	t.Parallel()
	url := testEtcd(t)
	real := newTestEtcd(t, url)
	key, other := etcdKey(t, "once"), etcdKey(t, "shared")
	base := &etcdCountingHost{Host: openReal(t), gets: map[string]int{}}
	d := host.NewDry(base)
	dry, err := d.Etcd(host.EtcdConfig{Endpoints: []string{url}})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, dry, key); got.Exists {
		t.Fatalf("got %+v, want an absent key", got)
	}
	mustSet(t, real, key, "set by another client", false)
	if !mustSet(t, dry, key, "v", true) {
		t.Error("dry ifAbsent set after a get of the absent key: got created=false, want true (the first answer)")
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := dry.Get(t.Context(), other); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	base.mu.Lock()
	defer base.mu.Unlock()
	if base.gets[key] != 1 || base.gets[other] != 1 {
		t.Errorf("etcd reads: %d of the key read then set, %d of the key read 8 times at once; want 1 and 1", base.gets[key], base.gets[other])
	}
}

// A read that its caller's context ended is not kept.
func TestDryEtcdForgetsCancelledRead(t *testing.T) {
	t.Parallel()
	url := testEtcd(t)
	key := etcdKey(t, "cancelled")
	base := &etcdCountingHost{Host: openReal(t), gets: map[string]int{}}
	dry, err := host.NewDry(base).Etcd(host.EtcdConfig{Endpoints: []string{url}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := dry.Get(ctx, key); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled get: got %v, want context.Canceled", err)
	}
	if got := mustGet(t, dry, key); got.Exists {
		t.Errorf("got %+v, want an absent key", got)
	}
	if base.gets[key] != 2 {
		t.Errorf("etcd reads: %d, want 2 (the cancelled one was not kept)", base.gets[key])
	}
}

// A Real keeps one etcd client per configuration.
func TestRealEtcdClientPerConfig(t *testing.T) {
	t.Parallel()
	r := openReal(t)
	get := func(cfg host.EtcdConfig) host.Etcd {
		t.Helper()
		e, err := r.Etcd(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	a, b := "http://127.0.0.1:1", "http://127.0.0.1:2"
	first := get(host.EtcdConfig{Endpoints: []string{a, b}})
	if get(host.EtcdConfig{Endpoints: []string{a, b}}) != first {
		t.Error("the same configuration got a new client")
	}
	for name, cfg := range map[string]host.EtcdConfig{
		"order":  {Endpoints: []string{b, a}},
		"subset": {Endpoints: []string{a}},
		"joined": {Endpoints: []string{a + "," + b}},
	} {
		if e, err := r.Etcd(cfg); err == nil && e == first {
			t.Errorf("%s: another configuration got the same client", name)
		}
	}
}
