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
	r = openReal(t, t.TempDir(), WithKube(func(cfg KubeConfig) (Kube, error) { got = cfg; return f, nil }))
	k, err := r.Kube(KubeConfig{Kubeconfig: "/etc/kubernetes/admin.conf"})
	if err != nil || k != f || got != (KubeConfig{Kubeconfig: "/etc/kubernetes/admin.conf"}) {
		t.Errorf("with a factory: got %v, %v for %+v, want the factory's client", k, err, got)
	}
}

func TestDryKube(t *testing.T) {
	t.Parallel()
	f := &fake{t: t, objects: map[string]bool{"Namespace/<nil>/kube-system": true}}
	r := openReal(t, t.TempDir(), WithKube(func(KubeConfig) (Kube, error) { return f, nil }))
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
	r := openReal(t, t.TempDir(), WithKube(func(KubeConfig) (Kube, error) { return f, nil }))
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
