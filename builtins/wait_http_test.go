package builtins

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kplay-dev/kplay/engine"
)

func TestWaitHTTP(t *testing.T) {
	t.Parallel()
	var tries atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Comes up on the fourth try.
		if tries.Add(1) < 4 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `{"major":"1"}`)
	}))
	defer srv.Close()
	plan := mustEvaluate(t, fmt.Sprintf(`wait_http(%q, interval = "10ms", timeout = "1m")`, srv.URL+"/version"))

	results := mustApply(t, plan, t.TempDir(), true)
	if r := results[0]; r.Status != engine.Skipped || r.Reason != "check does not wait" {
		t.Fatalf("check: got %v %q, want skipped (check does not wait)", r.Status, r.Reason)
	}
	if n := tries.Load(); n != 0 {
		t.Fatalf("check polled %d times", n)
	}
	results = mustApply(t, plan, t.TempDir(), false)
	if r := results[0]; r.Status != engine.Unchanged || r.Reason != "waited" || r.Change.Action != engine.Wait {
		t.Errorf("run: got %v %v %q, want a wait listed as unchanged (waited)", r.Status, r.Change.Action, r.Reason)
	}
	if n := tries.Load(); n != 4 {
		t.Errorf("tries: got %d, want 4", n)
	}
}

func TestWaitHTTPTimesOut(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	plan := mustEvaluate(t, fmt.Sprintf(`wait_http(%q, interval = "10ms", timeout = "200ms")`, srv.URL+"/version"))
	_, err := apply(t, plan, t.TempDir(), false)
	if err == nil || !strings.HasPrefix(relErr(err), "play.star:1:10: wait_http "+srv.URL+"/version: ") || !strings.Contains(err.Error(), "503") {
		t.Errorf("got %v, want a timeout error with the last status at play.star:1:10", err)
	}
}
