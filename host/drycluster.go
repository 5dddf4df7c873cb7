package host

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Etcd returns a client of the base's etcd cluster that never writes:
// Get reads through to the base's client (once per key) unless this Dry recorded a Set
// of the key on the same endpoints (in any order); then it returns that
// value, with ModifiedIndex 0 since etcd never stored it. Set records the
// value in memory and reports created as the base's would, reading the
// base to know whether the key exists. Errors of the base's Etcd and Get
// pass as they are.
func (d *Dry) Etcd(cfg EtcdConfig) (Etcd, error) {
	base, err := d.base.Etcd(cfg)
	if err != nil {
		return nil, err
	}
	eps := slices.Clone(cfg.Endpoints)
	slices.Sort(eps)
	return &dryEtcd{d: d, base: base, cluster: strings.Join(eps, ",")}, nil
}

// dryEtcdKey names a key of one etcd cluster: its sorted endpoints.
type dryEtcdKey struct{ cluster, key string }

// dryEtcd is the Etcd of a Dry; its Sets live in d.etcdSets.
type dryEtcd struct {
	d       *Dry
	base    Etcd
	cluster string
}

// Get returns the value a Set of this Dry recorded, else the base's.
func (e *dryEtcd) Get(ctx context.Context, key string) (EtcdValue, error) {
	e.d.clusterMu.Lock()
	v, ok := e.d.etcdSets[dryEtcdKey{e.cluster, key}]
	e.d.clusterMu.Unlock()
	if ok {
		return EtcdValue{Exists: true, Value: v}, nil
	}
	return e.baseGet(ctx, key)
}

// sharedRead is one read of the base's etcd or API server, shared by
// every caller that needs it: a step's Diff and its dry Apply, and the
// engine's prefetch (engine.Prefetcher).
type sharedRead struct {
	done  chan struct{} // closed when value and err are set
	value any
	err   error
}

// readBaseOnce returns the answer of read for key, reading the base once
// per Dry, as the dry host reads each base file once; callers that come
// while the read is under way wait for it. A read that its caller's
// context ended is not kept: the next caller reads again.
func readBaseOnce[T any](ctx context.Context, d *Dry, key any, read func(context.Context) (T, error)) (T, error) {
	d.clusterMu.Lock()
	r, ok := d.baseReads[key]
	if !ok {
		r = &sharedRead{done: make(chan struct{})}
		d.baseReads[key] = r
	}
	d.clusterMu.Unlock()
	if !ok {
		v, err := readRecovered(ctx, read)
		r.value, r.err = v, err
		if ctx.Err() != nil {
			d.clusterMu.Lock()
			delete(d.baseReads, key)
			d.clusterMu.Unlock()
		}
		close(r.done)
		return v, err
	}
	select {
	case <-r.done:
		return r.value.(T), r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// readRecovered is read, with a panic in it turned into an error: the
// callers waiting for the shared answer get that error rather than wait
// for ever (a panic of a prefetch goroutine would take the process down
// with exit 2, which check uses for "changes found").
func readRecovered[T any](ctx context.Context, read func(context.Context) (T, error)) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			var zero T
			v, err = zero, fmt.Errorf("internal error in kplay: %v (a bug: please report it)", p)
		}
	}()
	return read(ctx)
}

// baseGet reads key from the base's etcd once per Dry.
func (e *dryEtcd) baseGet(ctx context.Context, key string) (EtcdValue, error) {
	return readBaseOnce(ctx, e.d, dryEtcdKey{e.cluster, key}, func(ctx context.Context) (EtcdValue, error) {
		return e.base.Get(ctx, key)
	})
}

// Set records value at key in memory. created is true when neither the
// base nor this Dry has the key; with ifAbsent, an existing key is left
// as it is.
func (e *dryEtcd) Set(ctx context.Context, key, value string, ifAbsent bool) (bool, error) {
	k := dryEtcdKey{e.cluster, key}
	e.d.clusterMu.Lock()
	_, known := e.d.etcdSets[k]
	e.d.clusterMu.Unlock()
	exists := known
	if !known {
		// Not under the lock: this reads the network.
		cur, err := e.baseGet(ctx, key)
		if err != nil {
			return false, err
		}
		exists = cur.Exists
	}
	e.d.clusterMu.Lock()
	defer e.d.clusterMu.Unlock()
	if _, ok := e.d.etcdSets[k]; ok { // recorded meanwhile
		exists = true
	}
	if ifAbsent && exists {
		return false, nil
	}
	e.d.etcdSets[k] = value
	return !exists, nil
}

// Swap records value at key in memory if the key is as prev says, in
// this Dry or else in the base.
func (e *dryEtcd) Swap(ctx context.Context, key, value string, prev EtcdValue) error {
	cur, err := e.Get(ctx, key)
	if err != nil {
		return err
	}
	if cur.Exists != prev.Exists || (prev.Exists && cur.Value != prev.Value) {
		return fmt.Errorf("set key %q: %w", key, ErrEtcdSwap)
	}
	e.d.clusterMu.Lock()
	defer e.d.clusterMu.Unlock()
	e.d.etcdSets[dryEtcdKey{e.cluster, key}] = value
	return nil
}

// HTTP returns a client that sends only what cannot change anything: GET
// and HEAD (methods are case-sensitive) go through the base's client; any
// other method is checked as Real would (URL and method) but not sent,
// and returns HTTPResponse{NotSent: true}. Wait does not wait: it returns
// an error wrapping ErrNotInCheck. WithTLS reads the TLS files as Real's
// does.
func (d *Dry) HTTP() HTTP { return &dryHTTP{base: d.base.HTTP()} }

// dryHTTP is the HTTP of a Dry.
type dryHTTP struct{ base HTTP }

// Do sends GET and HEAD through the base; it does not send other methods.
func (h *dryHTTP) Do(ctx context.Context, method, rawURL string, body []byte, headers map[string]string) (HTTPResponse, error) {
	if method == http.MethodGet || method == http.MethodHead {
		return h.base.Do(ctx, method, rawURL, body, headers)
	}
	if err := checkHTTPURL(rawURL); err != nil {
		return HTTPResponse{}, fmt.Errorf("%s %s: %w", method, RedactURLs(rawURL), err)
	}
	if _, err := http.NewRequestWithContext(ctx, method, rawURL, nil); err != nil {
		return HTTPResponse{}, fmt.Errorf("%s %s: %w", method, RedactURLs(rawURL), unwrapURLError(err))
	}
	return HTTPResponse{NotSent: true}, nil
}

// WithTLS returns a dry client over the base's client for files.
func (h *dryHTTP) WithTLS(files TLSFiles) (HTTP, error) {
	base, err := h.base.WithTLS(files)
	if err != nil {
		return nil, err
	}
	return &dryHTTP{base: base}, nil
}

// Wait returns an error wrapping ErrNotInCheck at once.
func (h *dryHTTP) Wait(ctx context.Context, rawURL string, expect []int, timeout, interval time.Duration, progress func(msg string)) error {
	return fmt.Errorf("wait %s: %w", RedactURLs(rawURL), ErrNotInCheck)
}

// Kube returns a client of the base's API server that never creates:
// Exists reads through to the base's client (once per object) unless this Dry recorded a
// Create of the same object (apiVersion, kind, namespace, name) on the
// same server; Create asks the base whether the object exists and, if
// not, records it and returns created=true. The base's Create is never
// called. Errors of the base's Kube and Exists pass as they are.
func (d *Dry) Kube(cfg KubeConfig) (Kube, error) {
	base, err := d.base.Kube(cfg)
	if err != nil {
		return nil, err
	}
	return &dryKube{d: d, base: base, cluster: cfg}, nil
}

// kubeObject names an API object of one API server.
type kubeObject struct {
	cluster                           KubeConfig
	apiVersion, kind, namespace, name string
}

// dryKube is the Kube of a Dry; its Creates live in d.kubeMade.
type dryKube struct {
	d       *Dry
	base    Kube
	cluster KubeConfig
}

// object names obj; missing lists the fields it lacks for a name.
func (k *dryKube) object(obj map[string]any) (o kubeObject, missing []string) {
	o.cluster = k.cluster
	o.apiVersion, _ = obj["apiVersion"].(string)
	o.kind, _ = obj["kind"].(string)
	meta, _ := obj["metadata"].(map[string]any)
	o.name, _ = meta["name"].(string)
	o.namespace, _ = meta["namespace"].(string)
	for _, f := range []struct{ name, value string }{{"apiVersion", o.apiVersion}, {"kind", o.kind}, {"metadata.name", o.name}} {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	return o, missing
}

// Exists reports true for an object this Dry created, else asks the base,
// once per object.
func (k *dryKube) Exists(ctx context.Context, obj map[string]any) (bool, error) {
	o, missing := k.object(obj)
	if len(missing) == 0 {
		k.d.clusterMu.Lock()
		made := k.d.kubeMade[o]
		k.d.clusterMu.Unlock()
		if made {
			return true, nil
		}
	}
	if len(missing) > 0 {
		return k.base.Exists(ctx, obj) // its error names what is missing
	}
	return readBaseOnce(ctx, k.d, o, func(ctx context.Context) (bool, error) {
		return k.base.Exists(ctx, obj)
	})
}

// Create records obj unless it exists (in the base or in memory).
func (k *dryKube) Create(ctx context.Context, obj map[string]any) (bool, error) {
	o, missing := k.object(obj)
	if len(missing) > 0 {
		return false, fmt.Errorf("kubernetes %s: create %s %q: the object has no %s (give apiVersion, kind and metadata.name)",
			kubeTarget(k.cluster), o.kind, o.name, orList(missing))
	}
	exists, err := k.Exists(ctx, obj)
	if err != nil {
		return false, err
	}
	k.d.clusterMu.Lock()
	defer k.d.clusterMu.Unlock()
	if exists || k.d.kubeMade[o] {
		return false, nil
	}
	k.d.kubeMade[o] = true
	return true, nil
}
