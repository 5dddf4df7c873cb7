package kube

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kplay-dev/kplay/host/tlstest"
)

// Content types kube-apiserver answers with (checked against v1.37.2).
const (
	contentJSON = "application/json"
	// contentAggregated is the answer to client-go's Accept header
	// "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json".
	contentAggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
)

// fakeResource is a kind the fake serves.
type fakeResource struct {
	group, version, kind, resource, singular string
	namespaced                               bool
}

func (r fakeResource) groupVersion() string {
	if r.group == "" {
		return r.version
	}
	return r.group + "/" + r.version
}

// fakeResources are what the fake serves: a core cluster-scoped kind, a
// core namespaced kind, and a kind in a named group.
var fakeResources = []fakeResource{
	{version: "v1", kind: "Namespace", resource: "namespaces", singular: "namespace"},
	{version: "v1", kind: "ConfigMap", resource: "configmaps", singular: "configmap", namespaced: true},
	{group: "apps", version: "v1", kind: "Deployment", resource: "deployments", singular: "deployment", namespaced: true},
}

// fakeAPIServer is an httptest server that answers like kube-apiserver
// v1.37.2 for what this package sends: discovery (/api, /apis, their
// group versions, /version) in the aggregated format when asked for it,
// and GET and POST of the objects of fakeResources, with the real status
// codes and metav1.Status bodies (201 Created, 404 NotFound, 409
// AlreadyExists, 403 Forbidden).
type fakeAPIServer struct {
	*httptest.Server

	// legacy makes the fake answer discovery in the unaggregated
	// format only, as servers before 1.26 do (the guide's era).
	legacy bool
	// forbidCreate makes every POST 403 Forbidden, as RBAC would.
	forbidCreate bool
	// hang makes every request wait until the client gives up.
	hang bool
	// ca, if set, serves https with a certificate ca signed; with
	// clientCert, the fake requires a client certificate ca signed.
	ca         *tlstest.CA
	clientCert bool

	mu       sync.Mutex
	objects  map[string]map[string]any // by path: /api/v1/namespaces/x
	requests map[string]int            // "GET /api" → count
	accept   map[string]string         // path → last Accept header
	auth     string                    // last Authorization header
	seq      int
}

// newFakeAPIServer starts a fake with namespace "default", like a real
// server, and closes it when the test ends. opt sets its options before
// it serves.
func newFakeAPIServer(t *testing.T, opt func(*fakeAPIServer)) *fakeAPIServer {
	t.Helper()
	f := &fakeAPIServer{
		objects:  map[string]map[string]any{},
		requests: map[string]int{},
		accept:   map[string]string{},
	}
	if opt != nil {
		opt(f)
	}
	f.objects["/api/v1/namespaces/default"] = map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "default"},
	}
	if f.ca != nil {
		f.Server = f.ca.NewServer(t, http.HandlerFunc(f.serve), f.clientCert)
		return f
	}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// count returns how many requests "METHOD /path" the fake answered.
func (f *fakeAPIServer) count(methodPath string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[methodPath]
}

// object returns the stored object at path, or nil.
func (f *fakeAPIServer) object(path string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.objects[path]
}

func (f *fakeAPIServer) serve(w http.ResponseWriter, r *http.Request) {
	if f.hang {
		<-r.Context().Done()
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests[r.Method+" "+r.URL.Path]++
	f.accept[r.URL.Path] = r.Header.Get("Accept")
	f.auth = r.Header.Get("Authorization")

	aggregated := !f.legacy && strings.Contains(r.Header.Get("Accept"), contentAggregated)
	switch p := r.URL.Path; {
	case r.Method != http.MethodGet && r.Method != http.MethodPost:
		writeStatus(w, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed, "the server does not allow this method on the requested resource", nil)
	case p == "/version" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, contentJSON, map[string]string{
			"major": "1", "minor": "37", "gitVersion": "v1.37.2", "goVersion": "go1.26.8", "platform": "linux/amd64",
		})
	case p == "/api" && aggregated:
		writeJSON(w, http.StatusOK, contentAggregated, discoveryList(""))
	case p == "/api":
		writeJSON(w, http.StatusOK, contentJSON, metav1.APIVersions{
			TypeMeta: metav1.TypeMeta{Kind: "APIVersions"},
			Versions: []string{"v1"},
			ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{
				{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host},
			},
		})
	case p == "/apis" && aggregated:
		writeJSON(w, http.StatusOK, contentAggregated, discoveryList("apps"))
	case p == "/apis":
		writeJSON(w, http.StatusOK, contentJSON, metav1.APIGroupList{
			TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"},
			Groups: []metav1.APIGroup{{
				Name:             "apps",
				Versions:         []metav1.GroupVersionForDiscovery{{GroupVersion: "apps/v1", Version: "v1"}},
				PreferredVersion: metav1.GroupVersionForDiscovery{GroupVersion: "apps/v1", Version: "v1"},
			}},
		})
	case p == "/api/v1":
		writeJSON(w, http.StatusOK, contentJSON, resourceList("", "v1"))
	case p == "/apis/apps/v1":
		writeJSON(w, http.StatusOK, contentJSON, resourceList("apps", "v1"))
	default:
		f.serveObject(w, r)
	}
}

// serveObject answers GET and POST of an object path:
// /api/v1/namespaces[/NAME], /api/v1/namespaces/NS/configmaps[/NAME],
// /apis/apps/v1/namespaces/NS/deployments[/NAME].
func (f *fakeAPIServer) serveObject(w http.ResponseWriter, r *http.Request) {
	res, ns, name, ok := parseObjectPath(r.URL.Path)
	if !ok {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, "the server could not find the requested resource", nil)
		return
	}
	if r.Method == http.MethodGet {
		obj, found := f.objects[r.URL.Path]
		if name == "" || !found {
			writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound,
				fmt.Sprintf("%s %q not found", res.resource, name),
				&metav1.StatusDetails{Name: name, Kind: res.resource})
			return
		}
		writeJSON(w, http.StatusOK, contentJSON, obj)
		return
	}
	if name != "" {
		writeStatus(w, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed, "the server does not allow this method on the requested resource", nil)
		return
	}
	if f.forbidCreate {
		writeStatus(w, http.StatusForbidden, metav1.StatusReasonForbidden,
			fmt.Sprintf("%s is forbidden: User \"system:anonymous\" cannot create resource %q in API group %q at the cluster scope", res.resource, res.resource, res.group),
			&metav1.StatusDetails{Kind: res.resource})
		return
	}
	var obj map[string]any
	if err := json.NewDecoder(r.Body).Decode(&obj); err != nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error(), nil)
		return
	}
	meta, _ := obj["metadata"].(map[string]any)
	name, _ = meta["name"].(string)
	if obj["apiVersion"] != res.groupVersion() || obj["kind"] != res.kind || name == "" {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, "the object's apiVersion, kind or metadata.name does not fit the request", nil)
		return
	}
	if objNS, _ := meta["namespace"].(string); objNS != "" && ns != "" && objNS != ns {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, "the namespace of the provided object does not match the namespace sent on the request", nil)
		return
	}
	if ns != "" && f.objects["/api/v1/namespaces/"+ns] == nil {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound,
			fmt.Sprintf("namespaces %q not found", ns), &metav1.StatusDetails{Name: ns, Kind: "namespaces"})
		return
	}
	path := r.URL.Path + "/" + name
	if f.objects[path] != nil {
		writeStatus(w, http.StatusConflict, metav1.StatusReasonAlreadyExists,
			fmt.Sprintf("%s %q already exists", res.resource, name),
			&metav1.StatusDetails{Name: name, Group: res.group, Kind: res.resource})
		return
	}
	f.seq++
	meta["uid"] = fmt.Sprintf("00000000-0000-0000-0000-%012d", f.seq)
	meta["resourceVersion"] = fmt.Sprint(100 + f.seq)
	meta["creationTimestamp"] = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Format(time.RFC3339)
	if ns != "" {
		meta["namespace"] = ns
	} else {
		delete(meta, "namespace") // as the real server does for cluster-scoped kinds
	}
	f.objects[path] = obj
	writeJSON(w, http.StatusCreated, contentJSON, obj)
}

// parseObjectPath splits an object path into the resource it names, the
// namespace (for namespaced kinds) and the name ("" for the collection).
func parseObjectPath(p string) (res fakeResource, ns, name string, ok bool) {
	var gv string
	switch {
	case strings.HasPrefix(p, "/api/v1/"):
		gv, p = "v1", strings.TrimPrefix(p, "/api/v1/")
	case strings.HasPrefix(p, "/apis/apps/v1/"):
		gv, p = "apps/v1", strings.TrimPrefix(p, "/apis/apps/v1/")
	default:
		return res, "", "", false
	}
	parts := strings.Split(p, "/")
	if len(parts) >= 3 && parts[0] == "namespaces" {
		ns, parts = parts[1], parts[2:]
	}
	if len(parts) > 2 || len(parts) == 2 && parts[1] == "" {
		return res, "", "", false
	}
	for _, r := range fakeResources {
		if r.groupVersion() == gv && r.resource == parts[0] && r.namespaced == (ns != "") {
			res = r
			if len(parts) == 2 {
				name = parts[1]
			}
			return res, ns, name, true
		}
	}
	return res, "", "", false
}

// discoveryList is the aggregated discovery document of /api (group "")
// or of /apis (the named groups).
func discoveryList(group string) apidiscoveryv2.APIGroupDiscoveryList {
	list := apidiscoveryv2.APIGroupDiscoveryList{
		TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: "apidiscovery.k8s.io/v2"},
	}
	byGroup := map[string]*apidiscoveryv2.APIGroupDiscovery{}
	for _, r := range fakeResources {
		if (group == "") != (r.group == "") {
			continue
		}
		g := byGroup[r.group]
		if g == nil {
			list.Items = append(list.Items, apidiscoveryv2.APIGroupDiscovery{
				ObjectMeta: metav1.ObjectMeta{Name: r.group},
				Versions:   []apidiscoveryv2.APIVersionDiscovery{{Version: r.version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}},
			})
			g = &list.Items[len(list.Items)-1]
			byGroup[r.group] = g
		}
		scope := apidiscoveryv2.ScopeCluster
		if r.namespaced {
			scope = apidiscoveryv2.ScopeNamespace
		}
		g.Versions[0].Resources = append(g.Versions[0].Resources, apidiscoveryv2.APIResourceDiscovery{
			Resource:         r.resource,
			ResponseKind:     &metav1.GroupVersionKind{Group: r.group, Version: r.version, Kind: r.kind},
			Scope:            scope,
			SingularResource: r.singular,
			Verbs:            []string{"create", "delete", "get", "list", "patch", "update", "watch"},
		})
	}
	return list
}

// resourceList is the unaggregated discovery document of a group version.
func resourceList(group, version string) metav1.APIResourceList {
	list := metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: version,
	}
	if group != "" {
		list.GroupVersion = group + "/" + version
	}
	for _, r := range fakeResources {
		if r.group == group && r.version == version {
			list.APIResources = append(list.APIResources, metav1.APIResource{
				Name: r.resource, SingularName: r.singular, Namespaced: r.namespaced, Kind: r.kind,
				Verbs: metav1.Verbs{"create", "delete", "get", "list", "patch", "update", "watch"},
			})
		}
	}
	return list
}

func writeJSON(w http.ResponseWriter, code int, contentType string, v any) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeStatus answers as kube-apiserver does when a request fails: a
// metav1.Status in JSON with the status code.
func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string, details *metav1.StatusDetails) {
	writeJSON(w, code, contentJSON, metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  msg,
		Reason:   reason,
		Details:  details,
		Code:     int32(code),
	})
}
