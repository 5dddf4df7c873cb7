package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
)

// resolver maps an apiVersion and kind to the resource that serves it
// and its scope, from the API resource list of that group version
// (GET /api/v1, or /apis/GROUP/VERSION), which it keeps for the
// client's life. It stands in for client-go's discovery client and REST
// mapper: those link k8s.io/client-go/kubernetes/scheme, every typed
// API, whose init alone costs each kplay start 6 ms.
//
// It asks for plain JSON only; it never asks for the aggregated
// discovery document (/api, /apis in the apidiscovery.k8s.io format),
// and it asks for the group list (/apis) only to suggest a fix for a
// kind it does not find.
type resolver struct {
	rc rest.Interface // the dynamic client's: same transport, auth and timeouts

	mu    sync.Mutex
	lists map[schema.GroupVersion]*metav1.APIResourceList // nil: not served (404)
}

func newResolver(rc rest.Interface) *resolver {
	return &resolver{rc: rc, lists: map[schema.GroupVersion]*metav1.APIResourceList{}}
}

// mapping is where a kind is served.
type mapping struct {
	resource   schema.GroupVersionResource
	namespaced bool
}

// find returns the mapping of gvk. ok is false if gvk's group version
// does not serve gvk.Kind (or is not served at all); similar is then
// the resource of that group version that answers to gvk.Kind in
// another case or by its resource name ("namespace", "namespaces" for
// Namespace), if any. A kind it does not find may be new (a custom
// resource defined by an earlier step), so it asks the server for the
// group version again once before it says so, unless a similar
// resource holds the name.
func (r *resolver) find(ctx context.Context, gvk schema.GroupVersionKind) (m mapping, similar *metav1.APIResource, ok bool, err error) {
	gv := gvk.GroupVersion()
	for _, refresh := range []bool{false, true} {
		list, err := r.list(ctx, gv, refresh)
		if err != nil {
			return mapping{}, nil, false, err
		}
		if res := exactKind(list, gvk.Kind); res != nil {
			return mapping{resource: gv.WithResource(res.Name), namespaced: res.Namespaced}, nil, true, nil
		}
		if similar = similarKind(list, gvk.Kind); similar != nil {
			break
		}
	}
	return mapping{}, similar, false, nil
}

// list returns the resources gv serves, nil if the server does not
// serve gv, from the cache unless refresh is set or gv is not in it.
func (r *resolver) list(ctx context.Context, gv schema.GroupVersion, refresh bool) (*metav1.APIResourceList, error) {
	if !refresh {
		r.mu.Lock()
		list, ok := r.lists[gv]
		r.mu.Unlock()
		if ok {
			return list, nil
		}
	}
	path := "/apis/" + gv.Group + "/" + gv.Version
	if gv.Group == "" {
		path = "/api/" + gv.Version
	}
	var list *metav1.APIResourceList
	body, err := r.get(ctx, path)
	switch {
	case apierrors.IsNotFound(err):
		// Not served; list stays nil.
	case err != nil:
		return nil, err
	default:
		list = new(metav1.APIResourceList)
		if err := json.Unmarshal(body, list); err != nil {
			return nil, fmt.Errorf("GET %s: %w", path, err)
		}
	}
	r.mu.Lock()
	r.lists[gv] = list
	r.mu.Unlock()
	return list, nil
}

// get GETs path as plain JSON.
func (r *resolver) get(ctx context.Context, path string) ([]byte, error) {
	return r.rc.Get().AbsPath(path).SetHeader("Accept", "application/json").Do(ctx).Raw()
}

// search returns the kind the server serves under the name kind,
// whatever its case, or as a resource name: the first of the core v1
// and each group's preferred version, in the server's order, then of
// the other versions, as client-go's REST mapper ranks them. It reads
// the group list (/apis) for it and asks for the group versions it has
// not read yet, a few at once. A group version that fails is skipped.
func (r *resolver) search(ctx context.Context, kind string) (schema.GroupVersionKind, bool) {
	passes := [2][]schema.GroupVersion{{{Version: "v1"}}}
	var groups metav1.APIGroupList
	if body, err := r.get(ctx, "/apis"); err == nil && json.Unmarshal(body, &groups) == nil {
		for _, g := range groups.Groups {
			for _, v := range g.Versions {
				gv := schema.GroupVersion{Group: g.Name, Version: v.Version}
				if v.Version == g.PreferredVersion.Version {
					passes[0] = append(passes[0], gv)
				} else {
					passes[1] = append(passes[1], gv)
				}
			}
		}
	}
	for _, gvs := range passes {
		lists := r.listAll(ctx, gvs)
		for i, list := range lists {
			if res := similarKind(list, kind); res != nil {
				return gvs[i].WithKind(res.Kind), true
			}
		}
	}
	return schema.GroupVersionKind{}, false
}

// listAll returns the resource lists of gvs, in order; nil for a group
// version that is not served or that fails.
func (r *resolver) listAll(ctx context.Context, gvs []schema.GroupVersion) []*metav1.APIResourceList {
	lists := make([]*metav1.APIResourceList, len(gvs))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, gv := range gvs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			lists[i], _ = r.list(ctx, gv, false)
		})
	}
	wg.Wait()
	return lists
}

// exactKind returns the resource of list whose kind is kind, or nil.
// Subresources (pods/status) do not count.
func exactKind(list *metav1.APIResourceList, kind string) *metav1.APIResource {
	if list == nil {
		return nil
	}
	for i, res := range list.APIResources {
		if res.Kind == kind && !strings.Contains(res.Name, "/") {
			return &list.APIResources[i]
		}
	}
	return nil
}

// similarKind returns the resource of list that answers to kind in any
// case, or whose resource name (plural or singular) is kind in lower
// case, or nil.
func similarKind(list *metav1.APIResourceList, kind string) *metav1.APIResource {
	if list == nil {
		return nil
	}
	lower := strings.ToLower(kind)
	for i, res := range list.APIResources {
		if strings.Contains(res.Name, "/") {
			continue
		}
		if strings.EqualFold(res.Kind, kind) || res.Name == lower || res.SingularName == lower {
			return &list.APIResources[i]
		}
	}
	return nil
}
