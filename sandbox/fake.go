package sandbox

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/kplay-dev/kplay/host"
)

// FakeEtcd is an etcd v2 keys API in memory that answers host.Etcd's
// calls as the real client does against a real etcd (sandbox's tests
// hold it to one): a missing key reads as not existing, Set reports
// whether the key was absent, and Set with ifAbsent leaves an existing
// key alone and reports created=false without an error. Its
// ModifiedIndex counts writes from 1, as a new etcd's would.
type FakeEtcd struct {
	mu    sync.Mutex
	keys  map[string]host.EtcdValue
	index uint64
}

// NewFakeEtcd returns a FakeEtcd holding keys (written in key order);
// a key etcd would refuse is an error naming it.
func NewFakeEtcd(keys map[string]string) (*FakeEtcd, error) {
	e := &FakeEtcd{keys: map[string]host.EtcdValue{}}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if _, err := e.Set(context.Background(), k, keys[k], false); err != nil {
			return nil, fmt.Errorf("etcd: %w", err)
		}
	}
	return e, nil
}

// Get implements host.Etcd.
func (e *FakeEtcd) Get(_ context.Context, key string) (host.EtcdValue, error) {
	if err := host.CheckEtcdKey(fmt.Sprintf("get key %q", key), key); err != nil {
		return host.EtcdValue{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.keys[etcdKey(key)], nil
}

// Set implements host.Etcd.
func (e *FakeEtcd) Set(_ context.Context, key, value string, ifAbsent bool) (bool, error) {
	if err := host.CheckEtcdKey(fmt.Sprintf("set key %q", key), key); err != nil {
		return false, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	key = etcdKey(key)
	old := e.keys[key]
	if old.Exists && ifAbsent {
		return false, nil
	}
	e.index++
	e.keys[key] = host.EtcdValue{Exists: true, Value: value, ModifiedIndex: e.index}
	return !old.Exists, nil
}

// Swap implements host.Etcd.
func (e *FakeEtcd) Swap(_ context.Context, key, value string, prev host.EtcdValue) error {
	if err := host.CheckEtcdKey(fmt.Sprintf("set key %q", key), key); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	cur := e.keys[etcdKey(key)]
	if cur.Exists != prev.Exists || (prev.Exists && cur.Value != prev.Value) {
		return fmt.Errorf("set key %q: %w", key, host.ErrEtcdSwap)
	}
	e.index++
	e.keys[etcdKey(key)] = host.EtcdValue{Exists: true, Value: value, ModifiedIndex: e.index}
	return nil
}

// etcdKey is key as etcd v2 stores it: without a trailing slash and
// without repeated ones ("/a//b/" is "/a/b").
func etcdKey(key string) string {
	var parts []string
	for _, p := range strings.Split(key, "/") {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return "/" + strings.Join(parts, "/")
}

// FakeKube is a Kubernetes API server in memory that answers host.Kube's
// calls as the real client does: an object is known by its API group,
// kind, namespace and name (its version does not matter); a namespaced
// object without a namespace is in "default"; Create of an existing
// object reports created=false without an error. Unlike the real server
// it serves every kind, and knows the common cluster-scoped kinds by name
// (clusterScoped).
type FakeKube struct {
	mu      sync.Mutex
	objects map[string]bool
}

// NewFakeKube returns a FakeKube holding no object.
func NewFakeKube() *FakeKube { return &FakeKube{objects: map[string]bool{}} }

// Exists implements host.Kube.
func (k *FakeKube) Exists(_ context.Context, obj map[string]any) (bool, error) {
	id, err := objectID(obj)
	if err != nil {
		return false, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.objects[id], nil
}

// Create implements host.Kube.
func (k *FakeKube) Create(_ context.Context, obj map[string]any) (bool, error) {
	id, err := objectID(obj)
	if err != nil {
		return false, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.objects[id] {
		return false, nil
	}
	k.objects[id] = true
	return true, nil
}

// clusterScoped are the built-in kinds that live in no namespace.
var clusterScoped = map[string]bool{
	"Namespace": true, "Node": true, "PersistentVolume": true, "ClusterRole": true,
	"ClusterRoleBinding": true, "CustomResourceDefinition": true, "StorageClass": true,
	"PriorityClass": true, "APIService": true, "MutatingWebhookConfiguration": true,
	"ValidatingWebhookConfiguration": true, "RuntimeClass": true, "IngressClass": true,
	"CSIDriver": true, "CSINode": true, "VolumeAttachment": true,
}

// objectID names obj as the API server tells objects apart, or says
// what it lacks, as the real client does.
func objectID(obj map[string]any) (string, error) {
	str := func(m map[string]any, key string) string { s, _ := m[key].(string); return s }
	meta, _ := obj["metadata"].(map[string]any)
	apiVersion, kind, name, ns := str(obj, "apiVersion"), str(obj, "kind"), str(meta, "name"), str(meta, "namespace")
	switch {
	case apiVersion == "":
		return "", errors.New("kube object has no apiVersion (add one, such as \"v1\")")
	case kind == "":
		return "", errors.New("kube object has no kind (add one, such as \"Namespace\")")
	case name == "":
		return "", fmt.Errorf("kube %s %s has no metadata.name (add one)", apiVersion, kind)
	}
	group, _, ok := strings.Cut(apiVersion, "/")
	if !ok {
		group = "" // the core group: "v1"
	}
	switch {
	case clusterScoped[kind]:
		ns = ""
	case ns == "":
		ns = "default"
	}
	return group + "/" + kind + "/" + ns + "/" + name, nil
}
