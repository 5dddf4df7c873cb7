package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kplay-dev/kplay/host/hostiletest"
	"github.com/kplay-dev/kplay/host/tlstest"
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

func TestHTTPDoBodyLimit(t *testing.T) {
	t.Parallel()
	whole := bytes.Repeat([]byte("0123456789abcdef"), httpBodyLimit/16)
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		w.Write(whole)
		if r.URL.Path == "/one-more" {
			w.Write([]byte("!"))
		}
	})
	h := openReal(t, t.TempDir()).HTTP()
	resp, err := h.Do(t.Context(), "GET", srv.URL, nil, nil)
	if err != nil || !bytes.Equal(resp.Body, whole) {
		t.Errorf("a body of 1 MiB: got %d bytes, %v; want the whole body", len(resp.Body), err)
	}
	_, err = h.Do(t.Context(), "POST", srv.URL+"/one-more", []byte("x"), nil)
	want := "POST " + srv.URL + "/one-more: answered 201 Created with a response body larger than 1 MiB (kplay reads no more; is this the right URL?)"
	var tooLong *BodyLimitError
	if err == nil || err.Error() != want || !errors.As(err, &tooLong) {
		t.Errorf("a body of 1 MiB and 1 byte:\n got %v\nwant %s (a *BodyLimitError)", err, want)
	}
}

func TestHTTPDoEndlessBody(t *testing.T) {
	t.Parallel()
	srv := hostiletest.NewEndlessServer(t, 256<<20, nil)
	_, err := openReal(t, t.TempDir()).HTTP().Do(t.Context(), "GET", srv.URL+"/stream", nil, nil)
	want := "GET " + srv.URL + "/stream: answered 200 OK with a response body larger than 1 MiB (kplay reads no more; is this the right URL?)"
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	srv.CheckStopped(t, httpBodyLimit)
}

func TestHTTPWaitReadsNoBody(t *testing.T) {
	t.Parallel()
	// Wait looks at the status only: an endless body does not stop it.
	srv := hostiletest.NewEndlessServer(t, 256<<20, nil)
	if err := openReal(t, t.TempDir()).HTTP().Wait(t.Context(), srv.URL, nil, time.Minute, time.Second, nil); err != nil {
		t.Errorf("got %v, want ready", err)
	}
	srv.CheckStopped(t, httpWaitDrain)
}

func TestLimitBody(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		body    string
		limit   int64
		want    string
		wantErr string
	}{
		"shorter":  {body: "abc", limit: 4, want: "abc"},
		"exact":    {body: "abcd", limit: 4, want: "abcd"},
		"one_more": {body: "abcde", limit: 4, want: "abcd", wantErr: "response body larger than 4 bytes"},
		"empty":    {body: "", limit: 0, want: ""},
		"mib":      {body: strings.Repeat("x", 2<<20+1), limit: 2 << 20, want: strings.Repeat("x", 2<<20), wantErr: "response body larger than 2 MiB"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := io.ReadAll(LimitBody(io.NopCloser(strings.NewReader(tt.body)), tt.limit))
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if string(got) != tt.want || gotErr != tt.wantErr {
				t.Errorf("got %d bytes, %v; want %d bytes, %q", len(got), err, len(tt.want), tt.wantErr)
			}
		})
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
	dead := "http://" + hostiletest.DeadAddr(t)
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
		"password":     {method: "GET", url: "http://user:secret-pass@" + strings.TrimPrefix(dead, "http://"), wantErr: "GET http://xxxxx@"},
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
	dead := "http://" + hostiletest.DeadAddr(t)
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

// otherServer records the requests that reach it: a redirect must not
// bring the playbook's body or headers here.
func otherServer(t *testing.T) (*httptest.Server, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var got []string
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, fmt.Sprintf("%s %s token=%q body=%q", r.Method, r.URL.Path, r.Header.Get("X-Vault-Token"), body))
		mu.Unlock()
	})
	return srv, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

func TestHTTPRedirects(t *testing.T) {
	t.Parallel()
	other, otherGot := otherServer(t)
	// Each case asks below a path of its own, /CASE/..., and the server
	// records what it saw by case.
	var mu sync.Mutex
	seen := map[string][]string{}
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, c, _ := strings.Cut(r.URL.Path, "/")
		c, path, _ := strings.Cut(c, "/")
		mu.Lock()
		seen[c] = append(seen[c], fmt.Sprintf("%s /%s token=%q", r.Method, path, r.Header.Get("X-Vault-Token")))
		mu.Unlock()
		switch path {
		case "away":
			http.Redirect(w, r, other.URL+"/stolen", http.StatusTemporaryRedirect)
		case "away-with-password":
			http.Redirect(w, r, "http://user:secret-pass@"+strings.TrimPrefix(other.URL, "http://")+"/stolen", http.StatusFound)
		case "here":
			http.Redirect(w, r, "/"+c+"/target", http.StatusTemporaryRedirect)
		case "loop":
			http.Redirect(w, r, "/"+c+"/loop", http.StatusFound)
		case "target":
			fmt.Fprint(w, "target")
		}
	})
	h := openReal(t, t.TempDir()).HTTP()
	headers := map[string]string{"X-Vault-Token": "s3cr3t"}
	tests := map[string]struct {
		method, path   string
		wantStatus     int
		wantRedirectTo string
		wantBody       string
		wantErr        string // %s is the URL asked for
		wantSeen       []string
	}{
		// The issue's example: a 307 of a POST to another host would
		// send the body and the X-Vault-Token there.
		"post_to_other_host": {method: "POST", path: "away", wantStatus: 307, wantRedirectTo: other.URL, wantSeen: []string{`POST /away token="s3cr3t"`}},
		"post_to_same_host":  {method: "POST", path: "here", wantStatus: 307, wantRedirectTo: srv.URL, wantSeen: []string{`POST /here token="s3cr3t"`}},
		"put_to_other_host":  {method: "PUT", path: "away", wantStatus: 307, wantRedirectTo: other.URL, wantSeen: []string{`PUT /away token="s3cr3t"`}},
		"get_to_same_host":   {method: "GET", path: "here", wantStatus: 200, wantBody: "target", wantSeen: []string{`GET /here token="s3cr3t"`, `GET /target token="s3cr3t"`}},
		"get_to_other_host": {method: "GET", path: "away",
			wantErr:  "GET %s: the server redirects to " + other.URL + ", another server than " + srv.URL + " (kplay follows a redirect only to the same scheme, host and port: give the URL it redirects to)",
			wantSeen: []string{`GET /away token="s3cr3t"`}},
		"get_to_other_host_with_password": {method: "GET", path: "away-with-password",
			wantErr:  "GET %s: the server redirects to " + other.URL + ", another server",
			wantSeen: []string{`GET /away-with-password token="s3cr3t"`}},
		"get_loop": {method: "GET", path: "loop", wantErr: "GET %s: stopped after 10 redirects (give the URL they lead to)"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := srv.URL + "/" + name + "/" + tt.path
			resp, err := h.Do(t.Context(), tt.method, url, []byte("secret-body"), headers)
			switch want := strings.ReplaceAll(tt.wantErr, "%s", url); {
			case tt.wantErr != "":
				if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "secret-pass") {
					t.Errorf("got  %v\nwant %s", err, want)
				}
			case err != nil:
				t.Fatal(err)
			case resp.Status != tt.wantStatus || resp.RedirectTo != tt.wantRedirectTo || string(resp.Body) != tt.wantBody:
				t.Errorf("got %d, RedirectTo %q, body %q; want %d, %q, %q", resp.Status, resp.RedirectTo, resp.Body, tt.wantStatus, tt.wantRedirectTo, tt.wantBody)
			}
			mu.Lock()
			got := slices.Clone(seen[name])
			mu.Unlock()
			if tt.wantSeen != nil && !slices.Equal(got, tt.wantSeen) {
				t.Errorf("the server saw %q, want %q", got, tt.wantSeen)
			}
		})
	}
	t.Cleanup(func() {
		// After the parallel subtests.
		if got := otherGot(); len(got) > 0 {
			t.Errorf("the other server got %q, want nothing", got)
		}
	})
}

func TestHTTPWaitRedirectToOtherHostFailsAtOnce(t *testing.T) {
	t.Parallel()
	other, otherGot := otherServer(t)
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/healthz", http.StatusMovedPermanently)
	})
	// An hour: only failing at once ends the test.
	err := openReal(t, t.TempDir()).HTTP().Wait(t.Context(), srv.URL+"/healthz", nil, time.Hour, time.Millisecond, nil)
	var re *RedirectError
	want := "wait " + srv.URL + "/healthz: the server redirects to " + other.URL + ", another server than " + srv.URL + " ("
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.As(err, &re) {
		t.Errorf("got %v\nwant %s… (a *RedirectError)", err, want)
	}
	if got := otherGot(); len(got) > 0 {
		t.Errorf("the other server got %q, want nothing", got)
	}
}

func TestCheckRedirect(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		method, from, to string
		wantErr          string
	}{
		"same_server":          {method: "GET", from: "http://a.example/x", to: "http://a.example/y"},
		"same_with_port":       {method: "HEAD", from: "https://a.example/x", to: "https://A.example:443/y"},
		"default_port":         {method: "GET", from: "http://a.example:80/x", to: "http://a.example/y"},
		"other_host":           {method: "GET", from: "http://a.example/x", to: "http://b.example/x", wantErr: "the server redirects to http://b.example:80, another server than http://a.example:80 ("},
		"other_port":           {method: "GET", from: "http://a.example/x", to: "http://a.example:8080/x", wantErr: "the server redirects to http://a.example:8080, another server"},
		"https_to_http":        {method: "GET", from: "https://a.example/x", to: "http://a.example/x", wantErr: "the server redirects to http://a.example:80, another server than https://a.example:443"},
		"post_same_server":     {method: "POST", from: "http://a.example/x", to: "http://a.example/y", wantErr: "the server redirects the POST to http://a.example:80 (kplay does not follow the redirect of a POST: give the URL it redirects to)"},
		"password_not_shown":   {method: "GET", from: "http://a.example/x", to: "http://u:secret-pass@b.example/x?token=secret-query", wantErr: "the server redirects to http://b.example:80, another"},
		"ipv6":                 {method: "GET", from: "http://[::1]:8080/x", to: "http://[::1]:8080/y"},
		"ipv6_other_port":      {method: "GET", from: "http://[::1]:8080/x", to: "http://[::1]:8081/y", wantErr: "the server redirects to http://[::1]:8081, another server than http://[::1]:8080"},
		"delete_other_servers": {method: "DELETE", from: "http://a.example/x", to: "http://b.example/y", wantErr: "the server redirects the DELETE to http://b.example:80"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			first, err := http.NewRequest(tt.method, tt.from, nil)
			if err != nil {
				t.Fatal(err)
			}
			next, err := http.NewRequest(http.MethodGet, tt.to, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = CheckRedirect(next, []*http.Request{first})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("got %v, want the redirect followed", err)
			case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)):
				t.Errorf("got  %v\nwant %s…", err, tt.wantErr)
			case err != nil && strings.Contains(err.Error(), "secret"):
				t.Errorf("got %v, which holds a secret of the URL", err)
			}
		})
	}
}

func TestHTTPTLS(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "cluster-ca")
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	srv := ca.NewServer(t, ok, false)
	mutual := ca.NewServer(t, ok, true)
	certFile, keyFile, _ := ca.Issue(t, "kplay", false)
	// A client certificate of another CA: the server does not trust it.
	strangerCert, strangerKey, _ := tlstest.NewCA(t, "stranger-ca").Issue(t, "stranger", false)
	base := openReal(t, t.TempDir()).HTTP()
	client := func(t *testing.T, files TLSFiles) HTTP {
		t.Helper()
		h, err := base.WithTLS(files)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	tests := map[string]struct {
		url     string
		files   TLSFiles
		wantErr string // for Do; %s is the URL
	}{
		"private_ca":          {url: srv.URL, files: TLSFiles{CAFile: ca.CertFile}},
		"no_ca":               {url: srv.URL, wantErr: "GET %s: tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		"client_cert":         {url: mutual.URL, files: TLSFiles{CAFile: ca.CertFile, CertFile: certFile, KeyFile: keyFile}},
		"no_client_cert":      {url: mutual.URL, files: TLSFiles{CAFile: ca.CertFile}, wantErr: "GET %s: remote error: tls: certificate required"},
		"stranger_client_crt": {url: mutual.URL, files: TLSFiles{CAFile: ca.CertFile, CertFile: strangerCert, KeyFile: strangerKey}, wantErr: "GET %s: remote error: tls: "},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := client(t, tt.files)
			resp, err := h.Do(t.Context(), "GET", tt.url, nil, nil)
			want := strings.ReplaceAll(tt.wantErr, "%s", tt.url)
			switch {
			case tt.wantErr == "" && (err != nil || string(resp.Body) != "ok"):
				t.Fatalf("Do: got %q, %v; want ok", resp.Body, err)
			case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), want)):
				t.Fatalf("Do: got  %v\nwant %s…", err, want)
			}
			// Wait fails at once on what trying again cannot mend: an
			// hour would end the test by its timeout.
			err = h.Wait(t.Context(), tt.url, nil, time.Hour, time.Millisecond, nil)
			if want := strings.Replace(want, "GET ", "wait ", 1); (tt.wantErr == "") != (err == nil) || err != nil && !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Wait: got  %v\nwant %s…", err, want)
			}
		})
	}
	t.Run("one_client_per_files", func(t *testing.T) {
		t.Parallel()
		files := TLSFiles{CAFile: ca.CertFile}
		if a, b := client(t, files), client(t, files); a != b {
			t.Error("WithTLS made two clients for the same files")
		}
		if a := client(t, TLSFiles{}); a != base {
			t.Error("WithTLS(TLSFiles{}) is not the default client")
		}
	})
	t.Run("file_errors", func(t *testing.T) {
		t.Parallel()
		missing := filepath.Join(t.TempDir(), "nope.pem")
		for files, want := range map[TLSFiles]string{
			{CAFile: missing}:                          "read CA file " + missing + ": no such file or directory",
			{CAFile: keyFile}:                          "CA file " + keyFile + " holds no PEM certificate",
			{CertFile: certFile}:                       "client certificate " + certFile + " has no key file (give both)",
			{CertFile: certFile, KeyFile: strangerKey}: "client certificate " + certFile + " and key " + strangerKey + ": tls: private key does not match public key",
		} {
			if _, err := base.WithTLS(files); err == nil || err.Error() != want {
				t.Errorf("WithTLS(%+v): got %v, want %s", files, err, want)
			}
		}
	})
}
