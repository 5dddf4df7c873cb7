package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// newTestServer serves h on loopback until the test ends.
func newTestServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPDo(t *testing.T) {
	t.Parallel()
	type seen struct{ method, body, header, host string }
	var mu sync.Mutex
	var got []seen
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, string(body), r.Header.Get("X-Token"), r.Host})
		mu.Unlock()
		status, _ := strconv.Atoi(r.URL.Query().Get("status"))
		w.WriteHeader(status)
		fmt.Fprint(w, "answer ", status)
	})
	h := openReal(t, t.TempDir()).HTTP()
	tests := map[string]struct {
		method string
		status int
		body   string
	}{
		"get_ok":             {method: "GET", status: 200},
		"get_not_found":      {method: "GET", status: 404},
		"post_created":       {method: "POST", status: 201, body: `{"kind":"Namespace"}`},
		"put_unavailable":    {method: "PUT", status: 503, body: "x"},
		"delete_no_content":  {method: "DELETE", status: 204},
		"post_server_errors": {method: "POST", status: 500, body: "y"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var body []byte
			if tt.body != "" {
				body = []byte(tt.body)
			}
			resp, err := h.Do(t.Context(), tt.method, fmt.Sprintf("%s/x?status=%d", srv.URL, tt.status), body,
				map[string]string{"X-Token": name, "Host": "api.example"})
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprint("answer ", tt.status)
			if tt.status == 204 {
				want = "" // a 204 has no body
			}
			if resp.Status != tt.status || string(resp.Body) != want || resp.NotSent {
				t.Errorf("got %+v, want status %d, body %q", resp, tt.status, want)
			}
			mu.Lock()
			defer mu.Unlock()
			wantSeen := seen{tt.method, tt.body, name, "api.example"}
			for _, s := range got {
				if s == wantSeen {
					return
				}
			}
			t.Errorf("the server saw %+v, want %+v among them", got, wantSeen)
		})
	}
}

func TestHTTPDoBodyCap(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("0123456789abcdef"), (1<<20)/16+100)
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write(big) })
	resp, err := openReal(t, t.TempDir()).HTTP().Do(t.Context(), "GET", srv.URL, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Body) != 1<<20 || !bytes.Equal(resp.Body, big[:1<<20]) {
		t.Errorf("got a body of %d bytes, want the first %d of %d", len(resp.Body), 1<<20, len(big))
	}
}

func TestHTTPDoTimeout(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		// The server sees the client leave only once the body is read.
		io.Copy(io.Discard, r.Body)
		<-r.Context().Done() // answers never; ends when the client gives up
	})
	h := newRealHTTP(200*time.Millisecond, time.Second)
	start := time.Now()
	_, err := h.Do(t.Context(), "POST", srv.URL+"/slow", []byte("secret-body"), map[string]string{"Authorization": "Bearer secret-token"})
	took := time.Since(start)
	want := "POST " + srv.URL + "/slow: no answer within 200ms (is the server up and reachable?)"
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	if took < 200*time.Millisecond || took > 5*time.Second {
		t.Errorf("failed after %s, want about 200ms", took)
	}
}

func TestHTTPDoErrors(t *testing.T) {
	t.Parallel()
	dead := deadURL()
	h := openReal(t, t.TempDir()).HTTP()
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := map[string]struct {
		ctx     context.Context
		method  string
		url     string
		wantErr string
	}{
		"refused":      {method: "GET", url: dead + "/x", wantErr: "GET " + dead + "/x: dial tcp " + strings.TrimPrefix(dead, "http://") + ": connect: connection refused"},
		"no_scheme":    {method: "POST", url: "example.com/x", wantErr: "POST example.com/x: not an http or https URL (write one such as http://127.0.0.1:8080/healthz)"},
		"ftp":          {method: "GET", url: "ftp://example.com/x", wantErr: "GET ftp://example.com/x: not an http or https URL"},
		"bad_method":   {method: "PO ST", url: dead, wantErr: `PO ST ` + dead + `: net/http: invalid method "PO ST"`},
		"password":     {method: "GET", url: "http://user:secret-pass@" + strings.TrimPrefix(dead, "http://"), wantErr: "GET http://user:xxxxx@"},
		"ctx_canceled": {ctx: canceled, method: "GET", url: dead, wantErr: "GET " + dead + ": context canceled"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := tt.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			_, err := h.Do(ctx, tt.method, tt.url, nil, nil)
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "secret-pass") {
				t.Errorf("got  %v\nwant %s", err, tt.wantErr)
			}
		})
	}
	_, err := h.Do(canceled, "GET", dead, nil, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: got %v, want an error wrapping context.Canceled", err)
	}
}

// flakyServer answers 503 to the first n requests, then 200.
func flakyServer(t *testing.T, n int64) (*httptest.Server, *atomic.Int64) {
	var requests atomic.Int64
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "GET" {
			t.Errorf("the server got %s, want GET", r.Method)
		}
		if requests.Add(1) <= n {
			http.Error(w, "starting", http.StatusServiceUnavailable)
		}
	})
	return srv, &requests
}

func TestHTTPWaitSucceeds(t *testing.T) {
	t.Parallel()
	srv, requests := flakyServer(t, 3)
	var msgs []string
	err := openReal(t, t.TempDir()).HTTP().Wait(t.Context(), srv.URL+"/healthz", []int{200}, time.Minute, 10*time.Millisecond,
		func(msg string) { msgs = append(msgs, msg) })
	if err != nil {
		t.Fatal(err)
	}
	if got := requests.Load(); got != 4 {
		t.Errorf("got %d requests, want 4 (3 answered 503, then 200)", got)
	}
	if len(msgs) < 1 || len(msgs) > 3 {
		t.Errorf("got %d progress messages, want 1 to 3: %q", len(msgs), msgs)
	}
	for _, m := range msgs {
		if !strings.HasPrefix(m, "wait "+srv.URL+"/healthz: 503 Service Unavailable (") || !strings.HasSuffix(m, " of 1m0s)") {
			t.Errorf("progress: got %q, want the URL, the status and the time spent", m)
		}
	}
}

func TestHTTPWaitOtherStatus(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	h := openReal(t, t.TempDir()).HTTP()
	if err := h.Wait(t.Context(), srv.URL, []int{200, 204}, time.Minute, time.Second, nil); err != nil {
		t.Errorf("204 expected: %v", err)
	}
	err := h.Wait(t.Context(), srv.URL, nil, 50*time.Millisecond, 10*time.Millisecond, nil)
	want := "wait " + srv.URL + ": no answer with status 200 within 50ms (last: 204 No Content)"
	if err == nil || err.Error() != want {
		t.Errorf("default expect: got  %v\nwant %s", err, want)
	}
}

func TestHTTPWaitTimesOut(t *testing.T) {
	t.Parallel()
	srv, requests := flakyServer(t, 1<<40)
	var progress atomic.Int64
	start := time.Now()
	err := openReal(t, t.TempDir()).HTTP().Wait(t.Context(), srv.URL+"/healthz", []int{200, 204}, 300*time.Millisecond, 20*time.Millisecond,
		func(string) { progress.Add(1) })
	took := time.Since(start)
	want := "wait " + srv.URL + "/healthz: no answer with status 200 or 204 within 300ms (last: 503 Service Unavailable)"
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	if took < 300*time.Millisecond || took > 5*time.Second {
		t.Errorf("failed after %s, want about 300ms", took)
	}
	// About one try per interval, and at most one progress message per try.
	if n := requests.Load(); n < 2 || n > 16 {
		t.Errorf("got %d requests in 300ms at an interval of 20ms, want 2 to 16", n)
	}
	if p, n := progress.Load(), requests.Load(); p < 1 || p > n {
		t.Errorf("got %d progress messages for %d failed tries, want 1 to %d", p, n, n)
	}
}

func TestHTTPWaitConnectionRefused(t *testing.T) {
	t.Parallel()
	dead := deadURL()
	err := openReal(t, t.TempDir()).HTTP().Wait(t.Context(), dead, nil, 100*time.Millisecond, 20*time.Millisecond, nil)
	want := "wait " + dead + ": no answer with status 200 within 100ms (last: dial tcp " + strings.TrimPrefix(dead, "http://") + ": connect: connection refused)"
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

func TestHTTPWaitSlowTries(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	h := newRealHTTP(time.Minute, 50*time.Millisecond)
	err := h.Wait(t.Context(), srv.URL, nil, 200*time.Millisecond, 10*time.Millisecond, nil)
	want := "wait " + srv.URL + ": no answer with status 200 within 200ms (last: no answer within 50ms (is the server up and reachable?))"
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

func TestHTTPWaitStopsWithContext(t *testing.T) {
	t.Parallel()
	srv, _ := flakyServer(t, 1<<40)
	ctx, cancel := context.WithCancel(t.Context())
	err := openReal(t, t.TempDir()).HTTP().Wait(ctx, srv.URL, nil, time.Hour, 10*time.Millisecond, func(string) { cancel() })
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "(last: 503 Service Unavailable)") {
		t.Errorf("got %v, want an error wrapping context.Canceled with the last status", err)
	}
}
