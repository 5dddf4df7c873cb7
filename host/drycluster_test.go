package host

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kplay-dev/kplay/host/tlstest"
)

func TestDryEtcdNeverWrites(t *testing.T) {
	t.Parallel()
	url := testEtcd(t)
	real := newTestEtcd(t, url)
	existing, absent := etcdKey(t, "existing"), etcdKey(t, "absent")
	mustSet(t, real, existing, "before", false)
	before := mustGet(t, real, existing)

	d := NewDry(openReal(t, t.TempDir()))
	dry, err := d.Etcd(EtcdConfig{Endpoints: []string{url}})
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
	same, err := d.Etcd(EtcdConfig{Endpoints: []string{url}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := d.Etcd(EtcdConfig{Endpoints: []string{url, url + "/"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		e    Etcd
		key  string
		want EtcdValue
	}{
		"overwritten":     {e: dry, key: existing, want: EtcdValue{Exists: true, Value: "after"}},
		"created":         {e: dry, key: absent, want: EtcdValue{Exists: true, Value: "new"}},
		"new_client":      {e: same, key: absent, want: EtcdValue{Exists: true, Value: "new"}},
		"other_endpoints": {e: other, key: absent, want: EtcdValue{}},
		// etcd has not changed.
		"real_existing": {e: real, key: existing, want: before},
		"real_absent":   {e: real, key: absent, want: EtcdValue{}},
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
	d := NewDry(openReal(t, t.TempDir()))
	if _, err := d.Etcd(EtcdConfig{}); err == nil || !strings.Contains(err.Error(), "no endpoints") {
		t.Errorf("no endpoints: got %v, want the base's error", err)
	}
}

func TestDryHTTP(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		fmt.Fprint(w, "hello")
	})
	h := NewDry(openReal(t, t.TempDir())).HTTP()

	resp, err := h.Do(t.Context(), "GET", srv.URL+"/get", nil, nil)
	if err != nil || resp.Status != 200 || string(resp.Body) != "hello" || resp.NotSent {
		t.Errorf("GET: got %+v, %v, want status 200 and the body", resp, err)
	}
	resp, err = h.Do(t.Context(), "HEAD", srv.URL+"/head", nil, nil)
	if err != nil || resp.Status != 200 || resp.NotSent {
		t.Errorf("HEAD: got %+v, %v, want status 200", resp, err)
	}
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE", "get"} {
		resp, err := h.Do(t.Context(), method, srv.URL+"/change", []byte("x"), nil)
		if err != nil || !resp.NotSent || resp.Status != 0 || resp.Body != nil {
			t.Errorf("%s: got %+v, %v, want HTTPResponse{NotSent: true}", method, resp, err)
		}
	}
	if _, err := h.Do(t.Context(), "POST", "example.com/x", nil, nil); err == nil || !strings.Contains(err.Error(), "not an http or https URL") {
		t.Errorf("POST to a bad URL: got %v, want the error run would give", err)
	}
	if _, err := h.Do(t.Context(), "PO ST", srv.URL, nil, nil); err == nil || !strings.Contains(err.Error(), "invalid method") {
		t.Errorf("bad method: got %v, want the error run would give", err)
	}

	start := time.Now()
	err = h.Wait(t.Context(), srv.URL+"/wait", nil, time.Hour, time.Second, func(string) { t.Error("Wait told progress") })
	if !errors.Is(err, ErrNotInCheck) || err.Error() != "wait "+srv.URL+"/wait: not done in check" {
		t.Errorf("Wait: got %v, want an error wrapping ErrNotInCheck", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Wait took %s, want no wait", took)
	}

	mu.Lock()
	defer mu.Unlock()
	if want := []string{"GET /get", "HEAD /head"}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("the server saw %q, want %q", seen, want)
	}
}

func TestDryHTTPWithTLS(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "cluster-ca")
	var mu sync.Mutex
	var seen []string
	srv := ca.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		fmt.Fprint(w, "hello")
	}), false)
	d := NewDry(openReal(t, t.TempDir())).HTTP()
	h, err := d.WithTLS(TLSFiles{CAFile: ca.CertFile})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := h.Do(t.Context(), "GET", srv.URL+"/get", nil, nil); err != nil || string(resp.Body) != "hello" {
		t.Errorf("GET: got %+v, %v, want the body", resp, err)
	}
	if resp, err := h.Do(t.Context(), "POST", srv.URL+"/change", []byte("x"), nil); err != nil || !resp.NotSent {
		t.Errorf("POST: got %+v, %v, want HTTPResponse{NotSent: true}", resp, err)
	}
	if err := h.Wait(t.Context(), srv.URL, nil, time.Hour, time.Second, nil); !errors.Is(err, ErrNotInCheck) {
		t.Errorf("Wait: got %v, want an error wrapping ErrNotInCheck", err)
	}
	// check reads the TLS files as run does, so it finds a missing one.
	missing := filepath.Join(t.TempDir(), "ca.pem")
	if _, err := d.WithTLS(TLSFiles{CAFile: missing}); err == nil || err.Error() != "read CA file "+missing+": no such file or directory" {
		t.Errorf("missing CA file: got %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"GET /get"}; !slices.Equal(seen, want) {
		t.Errorf("the server saw %q, want %q", seen, want)
	}
}

// fake is a Kube whose objects are named "kind/namespace/name"; Create
// fails the test, since a dry host must never call it.
type fake struct {
	t       *testing.T
	objects map[string]bool
	err     error // returned by Exists if set

	mu    sync.Mutex
	asked map[string]int // Exists calls, by name
}

// askedOf returns how many times Exists was asked about obj.
func (f *fake) askedOf(obj map[string]any) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked[fakeName(obj)]
}

func fakeName(obj map[string]any) string {
	meta, _ := obj["metadata"].(map[string]any)
	return fmt.Sprintf("%v/%v/%v", obj["kind"], meta["namespace"], meta["name"])
}

func (f *fake) Exists(ctx context.Context, obj map[string]any) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.asked == nil {
		f.asked = map[string]int{}
	}
	f.asked[fakeName(obj)]++
	return f.objects[fakeName(obj)], f.err
}

func (f *fake) Create(ctx context.Context, obj map[string]any) (bool, error) {
	f.t.Errorf("the dry host created %s", fakeName(obj))
	return true, nil
}

func kubeObj(apiVersion, kind, namespace, name string) map[string]any {
	meta := map[string]any{"name": name}
	if namespace != "" {
		meta["namespace"] = namespace
	}
	return map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": meta}
}

func TestRealKube(t *testing.T) {
	t.Parallel()
	r := openReal(t, t.TempDir())
	_, err := r.Kube(KubeConfig{Server: "http://127.0.0.1:8080"})
	want := "kubernetes http://127.0.0.1:8080: no Kubernetes client (this build of kplay cannot talk to API servers)"
	if err == nil || err.Error() != want {
		t.Errorf("without a factory: got  %v\nwant %s", err, want)
	}
	f := &fake{t: t}
	var got KubeConfig
	r.UseKube(func(cfg KubeConfig) (Kube, error) { got = cfg; return f, nil })
	k, err := r.Kube(KubeConfig{Kubeconfig: "/etc/kubernetes/admin.conf"})
	if err != nil || k != f || got != (KubeConfig{Kubeconfig: "/etc/kubernetes/admin.conf"}) {
		t.Errorf("with a factory: got %v, %v for %+v, want the factory's client", k, err, got)
	}
}

func TestDryKube(t *testing.T) {
	t.Parallel()
	f := &fake{t: t, objects: map[string]bool{"Namespace/<nil>/kube-system": true}}
	r := openReal(t, t.TempDir())
	r.UseKube(func(KubeConfig) (Kube, error) { return f, nil })
	d := NewDry(r)
	cfg := KubeConfig{Server: "http://127.0.0.1:8080"}
	k, err := d.Kube(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	calico := kubeObj("v1", "Namespace", "", "calico-system")
	system := kubeObj("v1", "Namespace", "", "kube-system")

	if ok, err := k.Exists(ctx, calico); ok || err != nil {
		t.Errorf("Exists before Create: got %v, %v, want false", ok, err)
	}
	if created, err := k.Create(ctx, calico); !created || err != nil {
		t.Errorf("Create: got %v, %v, want created", created, err)
	}
	if ok, err := k.Exists(ctx, calico); !ok || err != nil {
		t.Errorf("Exists after Create: got %v, %v, want true", ok, err)
	}
	if created, err := k.Create(ctx, calico); created || err != nil {
		t.Errorf("second Create: got %v, %v, want not created", created, err)
	}
	if created, err := k.Create(ctx, system); created || err != nil {
		t.Errorf("Create of an object the server has: got %v, %v, want not created", created, err)
	}
	// The server was asked about each object once: a step's Diff and
	// its dry Apply share the answer.
	if n := f.askedOf(calico); n != 1 {
		t.Errorf("the server was asked %d times whether calico-system exists, want 1", n)
	}

	// Another client of the same Dry sees the create; one of another
	// server, or an object that differs in any part of its name, does not.
	again, err := d.Kube(cfg)
	if err != nil {
		t.Fatal(err)
	}
	other, err := d.Kube(KubeConfig{Server: "http://10.0.0.1:8080"})
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		k    Kube
		obj  map[string]any
		want bool
	}{
		"same_dry":      {k: again, obj: kubeObj("v1", "Namespace", "", "calico-system"), want: true},
		"other_server":  {k: other, obj: calico, want: false},
		"other_version": {k: k, obj: kubeObj("v2", "Namespace", "", "calico-system"), want: false},
		"other_kind":    {k: k, obj: kubeObj("v1", "ConfigMap", "", "calico-system"), want: false},
		"other_ns":      {k: k, obj: kubeObj("v1", "Namespace", "default", "calico-system"), want: false},
		"other_name":    {k: k, obj: kubeObj("v1", "Namespace", "", "calico"), want: false},
		"on_the_server": {k: k, obj: system, want: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if ok, err := tt.k.Exists(ctx, tt.obj); ok != tt.want || err != nil {
				t.Errorf("got %v, %v, want %v", ok, err, tt.want)
			}
		})
	}
}

func TestDryKubeErrors(t *testing.T) {
	t.Parallel()
	d := NewDry(openReal(t, t.TempDir()))
	if _, err := d.Kube(KubeConfig{Server: "http://127.0.0.1:8080"}); err == nil || !strings.Contains(err.Error(), "no Kubernetes client") {
		t.Errorf("without a factory: got %v, want the base's error", err)
	}

	f := &fake{t: t, err: errors.New("kubernetes http://127.0.0.1:8080: connection refused")}
	r := openReal(t, t.TempDir())
	r.UseKube(func(KubeConfig) (Kube, error) { return f, nil })
	k, err := NewDry(r).Kube(KubeConfig{Server: "http://127.0.0.1:8080"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Create(t.Context(), kubeObj("v1", "Namespace", "", "x")); err != f.err {
		t.Errorf("Create when Exists fails: got %v, want the base's error", err)
	}
	_, err = k.Create(t.Context(), map[string]any{"kind": "Namespace", "metadata": map[string]any{}})
	want := `kubernetes http://127.0.0.1:8080: create Namespace "": the object has no apiVersion or metadata.name (give apiVersion, kind and metadata.name)`
	if err == nil || err.Error() != want {
		t.Errorf("unnamed object: got  %v\nwant %s", err, want)
	}
}

// etcdCountingHost counts the Gets of the etcd clients it returns.
type etcdCountingHost struct {
	Host
	mu   sync.Mutex
	gets map[string]int // by key
}

func (h *etcdCountingHost) Etcd(cfg EtcdConfig) (Etcd, error) {
	e, err := h.Host.Etcd(cfg)
	if err != nil {
		return nil, err
	}
	return &etcdCountingClient{Etcd: e, h: h}, nil
}

type etcdCountingClient struct {
	Etcd
	h *etcdCountingHost
}

func (e *etcdCountingClient) Get(ctx context.Context, key string) (EtcdValue, error) {
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
	base := &etcdCountingHost{Host: openReal(t, t.TempDir()), gets: map[string]int{}}
	d := NewDry(base)
	dry, err := d.Etcd(EtcdConfig{Endpoints: []string{url}})
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
	base := &etcdCountingHost{Host: openReal(t, t.TempDir()), gets: map[string]int{}}
	dry, err := NewDry(base).Etcd(EtcdConfig{Endpoints: []string{url}})
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
	r := openReal(t, t.TempDir())
	get := func(cfg EtcdConfig) Etcd {
		t.Helper()
		e, err := r.Etcd(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	a, b := "http://127.0.0.1:1", "http://127.0.0.1:2"
	first := get(EtcdConfig{Endpoints: []string{a, b}})
	if get(EtcdConfig{Endpoints: []string{a, b}}) != first {
		t.Error("the same configuration got a new client")
	}
	for name, cfg := range map[string]EtcdConfig{
		"order":  {Endpoints: []string{b, a}},
		"subset": {Endpoints: []string{a}},
		"joined": {Endpoints: []string{a + "," + b}},
	} {
		if e, err := r.Etcd(cfg); err == nil && e == first {
			t.Errorf("%s: another configuration got the same client", name)
		}
	}
}

// TestReadBaseOncePanic: a panic in a shared read (a prefetch's, in its
// own goroutine) becomes an error for every caller, who would otherwise
// wait for ever, and the process is not taken down with exit 2.
func TestReadBaseOncePanic(t *testing.T) {
	t.Parallel()
	d := NewDry(openReal(t, t.TempDir()))
	read := func(context.Context) (int, error) { panic("boom") }
	for range 2 {
		_, err := readBaseOnce(t.Context(), d, "key", read)
		if want := "internal error in kplay: boom (a bug: please report it)"; err == nil || err.Error() != want {
			t.Errorf("got %v, want %s", err, want)
		}
	}
}
