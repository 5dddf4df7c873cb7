package builtins

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// recorder is an httptest handler that records the requests it gets and
// answers each path with a fixed status.
type recorder struct {
	mu       sync.Mutex
	requests []string
	status   map[string]int
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.requests = append(rec.requests, fmt.Sprintf("%s %s %s %s", r.Method, r.URL.Path, r.Header.Get("Content-Type"), body))
	status, ok := rec.status[r.Method+" "+r.URL.Path]
	rec.mu.Unlock()
	if !ok {
		status = http.StatusNotFound
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, "answer to %s %s", r.Method, r.URL.Path)
}

func (rec *recorder) got() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.requests)
}

func TestHTTPPost(t *testing.T) {
	t.Parallel()
	rec := &recorder{status: map[string]int{"POST /api/v1/namespaces": 201}}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	plan := mustEvaluate(t, fmt.Sprintf(`http_post(%q, json = {"metadata": {"name": "kube-system"}, "kind": "Namespace"}, headers = {"Authorization": "Bearer SECRET"})`, srv.URL+"/api/v1/namespaces"))

	results := mustApply(t, plan, t.TempDir(), true)
	if got := actions(results); !slices.Equal(got, []string{"run"}) {
		t.Fatalf("check: got %v, want [run]", got)
	}
	if got := rec.got(); len(got) != 0 {
		t.Fatalf("check sent %q", got)
	}
	mustApply(t, plan, t.TempDir(), false)
	want := []string{`POST /api/v1/namespaces application/json {"kind":"Namespace","metadata":{"name":"kube-system"}}`}
	if got := rec.got(); !slices.Equal(got, want) {
		t.Errorf("run sent %q, want %q", got, want)
	}
}

func TestHTTPPostUnlessGet(t *testing.T) {
	t.Parallel()
	rec := &recorder{status: map[string]int{"GET /exists": 200, "POST /create": 201}}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	exists := mustEvaluate(t, fmt.Sprintf(`http_post(%q, body = "x", unless_get = %q)`, srv.URL+"/create", srv.URL+"/exists"))
	if got := actions(mustApply(t, exists, t.TempDir(), false)); !slices.Equal(got, []string{"-"}) {
		t.Errorf("unless_get 200: got %v, want unchanged", got)
	}
	absent := mustEvaluate(t, fmt.Sprintf(`http_post(%q, body = "x", unless_get = %q)`, srv.URL+"/create", srv.URL+"/absent"))
	if got := actions(mustApply(t, absent, t.TempDir(), false)); !slices.Equal(got, []string{"run"}) {
		t.Errorf("unless_get 404: got %v, want run", got)
	}
	want := []string{"GET /exists  ", "GET /exists  ", "GET /absent  ", "GET /absent  ", "POST /create  x"}
	if got := rec.got(); !slices.Equal(got, want) {
		t.Errorf("requests (a dry pass, then the run):\n got %q\nwant %q", got, want)
	}
}

func TestHTTPPostUnexpectedStatus(t *testing.T) {
	t.Parallel()
	rec := &recorder{status: map[string]int{"POST /x": 500, "GET /broken": 503}}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	plan := mustEvaluate(t, fmt.Sprintf(`http_post(%q, body = "x")`, srv.URL+"/x"))
	_, err := apply(t, plan, t.TempDir(), false)
	if err == nil || !strings.Contains(err.Error(), `answered 500 Internal Server Error (want 200 or 201): "answer to POST /x"`) {
		t.Errorf("got %v, want the status and body in the error", err)
	}
	plan = mustEvaluate(t, fmt.Sprintf(`http_post(%q, body = "x", unless_get = %q)`, srv.URL+"/x", srv.URL+"/broken"))
	_, err = apply(t, plan, t.TempDir(), true)
	if err == nil || !strings.Contains(err.Error(), "answered 503 Service Unavailable (want 200 or 404)") {
		t.Errorf("unless_get 503: got %v", err)
	}
}

func TestHTTPBadArguments(t *testing.T) {
	t.Parallel()
	tests := map[string]struct{ src, wantErr string }{
		"relative_url":     {`http_post("/api", body = "x")`, `url "/api" is not an absolute URL`},
		"json_and_body":    {`http_post("http://h/x", json = {}, body = "x")`, `give json or body, not both`},
		"bad_expect":       {`http_post("http://h/x", expect = [99])`, `99 is not an HTTP status`},
		"bad_header":       {`http_post("http://h/x", headers = {"A": 1})`, `headers: want string names and values`},
		"bad_unless_get":   {`http_post("http://h/x", unless_get = "x")`, `unless_get "x" is not an absolute URL`},
		"wait_bad_url":     {`wait_http("localhost:8080")`, `url "localhost:8080" is not an absolute URL`},
		"wait_bad_timeout": {`wait_http("http://h/version", timeout = "forever")`, `timeout "forever" is not a duration`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := evaluate(t, playbook(t, tc.src, nil), nil)
			if err == nil || !strings.HasPrefix(relErr(err), "play.star:1:") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want play.star:1:...%s", err, tc.wantErr)
			}
		})
	}
}
