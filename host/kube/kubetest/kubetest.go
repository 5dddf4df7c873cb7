// Package kubetest has a fake Kubernetes API server for tests, the way
// net/http/httptest has HTTP servers: it serves what kplay's playbooks use
// (/version, the discovery of v1, namespaces) with kube-apiserver's status
// codes and Status bodies. host/kube compares its answers with a real
// kube-apiserver's (TestAPIServer/live/fake_answers_alike uses its own fake).
package kubetest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// FakeAPIServer stands in for the Kubernetes API the guide curls: /version,
// the discovery of v1 with namespaces, and namespaces that GET finds (200)
// once created and not before (404), that POST creates (201) once and
// then refuses (409 AlreadyExists), as kube-apiserver does. It records
// every request.
type FakeAPIServer struct {
	mu         sync.Mutex
	requests   []string
	created    []string // namespaces, in the order POSTed
	namespaces map[string]bool
}

// NewFakeAPIServer returns a fake with no namespaces; serve it with
// httptest.NewServer.
func NewFakeAPIServer() *FakeAPIServer { return &FakeAPIServer{namespaces: map[string]bool{}} }

// ServeHTTP answers one request.
func (f *FakeAPIServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	w.Header().Set("Content-Type", "application/json")
	const nsPath = "/api/v1/namespaces"
	switch {
	case r.URL.Path == "/version":
		fmt.Fprint(w, `{"major":"1","minor":"4","gitVersion":"v1.4.0+coreos.0"}`)
	case r.URL.Path == "/api":
		fmt.Fprint(w, `{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1"}]}`)
	case r.URL.Path == "/apis":
		fmt.Fprint(w, `{"kind":"APIGroupList","apiVersion":"v1","groups":[]}`)
	case r.URL.Path == "/api/v1":
		fmt.Fprint(w, `{"kind":"APIResourceList","groupVersion":"v1","resources":[{"name":"namespaces","singularName":"namespace","namespaced":false,"kind":"Namespace","verbs":["create","get","list"]}]}`)
	case strings.HasPrefix(r.URL.Path, nsPath+"/") && r.Method == http.MethodGet:
		name := strings.TrimPrefix(r.URL.Path, nsPath+"/")
		if !f.namespaces[name] {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"namespaces %q not found","reason":"NotFound","details":{"name":%q,"kind":"namespaces"},"code":404}`, name, name)
			return
		}
		fmt.Fprint(w, namespaceJSON(name))
	case r.URL.Path == nsPath && r.Method == http.MethodPost:
		var obj struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &obj); err != nil || obj.Kind != "Namespace" || obj.APIVersion != "v1" || obj.Metadata.Name == "" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":%q,"reason":"BadRequest","code":400}`, "not a v1 Namespace: "+string(body))
			return
		}
		name := obj.Metadata.Name
		if f.namespaces[name] {
			w.WriteHeader(http.StatusConflict)
			fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"namespaces %q already exists","reason":"AlreadyExists","details":{"name":%q,"kind":"namespaces"},"code":409}`, name, name)
			return
		}
		f.namespaces[name] = true
		f.created = append(f.created, name)
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, namespaceJSON(name))
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`)
	}
}

func namespaceJSON(name string) string {
	return fmt.Sprintf(`{"kind":"Namespace","apiVersion":"v1","metadata":{"name":%q,"uid":"00000000-0000-0000-0000-000000000000","resourceVersion":"1"},"spec":{"finalizers":["kubernetes"]},"status":{"phase":"Active"}}`, name)
}

// Requests returns every request so far, as "METHOD /path".
func (f *FakeAPIServer) Requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// PostsSent counts the POST requests so far, refused ones included.
func (f *FakeAPIServer) PostsSent() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if strings.HasPrefix(r, "POST ") {
			n++
		}
	}
	return n
}

// Created returns the namespaces created so far, in order.
func (f *FakeAPIServer) Created() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.created)
}
