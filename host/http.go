package host

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits of the HTTP client Real.HTTP returns.
const (
	httpRequestTimeout = 30 * time.Second // one Do
	httpTryTimeout     = 5 * time.Second  // one try of Wait
	// httpBodyLimit bounds the body of an answer to Do: a longer one is
	// an error, so that a server that sends a body without end costs
	// 1 MiB, not all the memory. Nothing decides on a body's content
	// (expect= looks at the status; errors show the first KiB), so the
	// bound is generous, and an error rather than a cut body is honest.
	httpBodyLimit = 1 << 20
	// httpWaitDrain is how much of a body Wait reads, to reuse the
	// connection; it needs the status only, and leaves the rest unread.
	httpWaitDrain = 64 << 10
	// maxRedirects is how many redirects of a GET a request follows.
	maxRedirects = 10
)

// realHTTP is the HTTP of a Real: one http.Client per TLS configuration,
// so connections are reused across steps. It is safe for concurrent use.
type realHTTP struct {
	client  *http.Client
	timeout time.Duration // one Do
	try     time.Duration // one try of Wait
	clients *httpClients  // of the same Real, by TLS files
}

// httpClients are the clients of a Real, by the TLS files they use.
type httpClients struct {
	mu    sync.Mutex
	byTLS map[TLSFiles]*realHTTP
	// local, when set, holds the TLS files, shipped from a fleet run's
	// controller (WithLocalSources).
	local *LocalSources
}

func newRealHTTP(timeout, try time.Duration) *realHTTP {
	h := &realHTTP{client: newHTTPClient(nil), timeout: timeout, try: try, clients: &httpClients{}}
	h.clients.byTLS = map[TLSFiles]*realHTTP{{}: h}
	return h
}

// newHTTPClient returns a client with tc (nil for the defaults) and
// kplay's redirect policy: a redirect of a request other than GET or
// HEAD is not followed but returned as the answer; a GET or HEAD
// follows one as CheckRedirect says.
func newHTTPClient(tc *tls.Config) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if m := via[0].Method; m != http.MethodGet && m != http.MethodHead {
				return http.ErrUseLastResponse
			}
			return CheckRedirect(req, via)
		},
	}
}

// HTTP returns the HTTP client of this Real, built once: each request has
// a timeout of 30s (and ends sooner with ctx), and a response body longer
// than 1 MiB is an error. Wait tries every interval, each try with a
// timeout of 5s. Its WithTLS makes one client per set of TLS files.
func (r *Real) HTTP() HTTP { return r.web }

// WithTLS returns the client of this Real that uses files, made at the
// first call for them; the zero TLSFiles gives the default client.
func (h *realHTTP) WithTLS(files TLSFiles) (HTTP, error) {
	h.clients.mu.Lock()
	defer h.clients.mu.Unlock()
	files = h.clients.local.TLS(files) // a fleet host's shipped copies
	c, err := keepOne(&h.clients.byTLS, files, func() (*realHTTP, error) {
		tc, err := files.Config()
		if err != nil {
			return nil, err
		}
		return &realHTTP{client: newHTTPClient(tc), timeout: h.timeout, try: h.try, clients: h.clients}, nil
	})
	if err != nil {
		return nil, err // not a nil *realHTTP in an HTTP
	}
	return c, nil
}

// Do sends a method request to rawURL (http or https) with body and
// headers ("Host" sets the request's host) and returns its status and its
// body, whatever the status. A GET or HEAD follows redirects to the same
// scheme, host and port only; a redirect of another method is returned
// as the answer, with RedirectTo set. Errors name the method and the URL
// (without a password), never the body or a header value: a URL that is
// not http or https, a refused connection, no answer within 30s, a
// redirect to another server (*RedirectError), a body longer than 1 MiB
// (*BodyLimitError), or ctx's error (wrapped).
func (h *realHTTP) Do(ctx context.Context, method, rawURL string, body []byte, headers map[string]string) (HTTPResponse, error) {
	resp, err := h.send(ctx, h.timeout, method, rawURL, body, headers, true)
	if err != nil {
		return HTTPResponse{}, fmt.Errorf("%s %s: %w", method, RedactURLs(rawURL), err)
	}
	return resp, nil
}

// send is Do with its own timeout; its error does not name the request.
// Without keepBody it reads no more of the body than it takes to reuse
// the connection, and returns none.
func (h *realHTTP) send(ctx context.Context, timeout time.Duration, method, rawURL string, body []byte, headers map[string]string, keepBody bool) (HTTPResponse, error) {
	if err := checkHTTPURL(rawURL); err != nil {
		return HTTPResponse{}, err
	}
	reqCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(reqCtx, method, rawURL, rd)
	if err != nil {
		return HTTPResponse{}, unwrapURLError(err)
	}
	for k, v := range headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return HTTPResponse{}, requestError(ctx, reqCtx, timeout, err)
	}
	defer resp.Body.Close()
	answer := HTTPResponse{Status: resp.StatusCode}
	if loc, err := resp.Location(); err == nil && resp.StatusCode/100 == 3 {
		answer.RedirectTo = ServerName(loc)
	}
	if !keepBody {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, httpWaitDrain))
		return answer, nil
	}
	answer.Body, err = io.ReadAll(LimitBody(resp.Body, httpBodyLimit))
	var tooLong *BodyLimitError
	switch {
	case errors.As(err, &tooLong):
		return HTTPResponse{}, fmt.Errorf("answered %s with a %w (kplay reads no more; is this the right URL?)", StatusLine(resp.StatusCode), err)
	case err != nil:
		return HTTPResponse{}, fmt.Errorf("read the body: %w", requestError(ctx, reqCtx, timeout, err))
	}
	return answer, nil
}

// BodyLimitError is the error of reading an answer whose body is longer
// than Limit bytes: kplay stops reading there, so that a server that
// sends a body without end costs Limit bytes, not all the memory.
type BodyLimitError struct{ Limit int64 }

func (e *BodyLimitError) Error() string {
	return "response body larger than " + byteSize(e.Limit)
}

// byteSize is "16 MiB" for a whole number of MiB, else "N bytes".
func byteSize(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// LimitBody returns body, reading which fails with a *BodyLimitError as
// soon as more than limit bytes come; it never reads more than limit+1
// bytes of body. Closing it closes body.
func LimitBody(body io.ReadCloser, limit int64) io.ReadCloser {
	return &limitedBody{body: body, left: limit, limit: limit}
}

type limitedBody struct {
	body  io.ReadCloser
	left  int64 // bytes that may still come
	limit int64
	err   error // sticky *BodyLimitError
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.left == 0 {
		// The body may end here; one byte more is one too many.
		var one [1]byte
		n, err := b.body.Read(one[:])
		if n > 0 {
			b.err = &BodyLimitError{Limit: b.limit}
			return 0, b.err
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.body.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.body.Close() }

// RedirectError is the error of a redirect kplay does not follow:
// of a request other than GET or HEAD (which would send its body
// elsewhere), or to another scheme, host or port (which would send the
// playbook's headers, or credentials, to a server it did not name).
type RedirectError struct {
	Method string   // of the first request
	From   *url.URL // the first request's URL
	To     *url.URL // where the redirect leads
}

func (e *RedirectError) Error() string {
	to := ServerName(e.To)
	if e.Method != http.MethodGet && e.Method != http.MethodHead {
		return fmt.Sprintf("the server redirects the %s to %s (kplay does not follow the redirect of a %s: give the URL it redirects to)", e.Method, to, e.Method)
	}
	return fmt.Sprintf("the server redirects to %s, another server than %s (kplay follows a redirect only to the same scheme, host and port: give the URL it redirects to)", to, ServerName(e.From))
}

// CheckRedirect is kplay's redirect policy, for http.Client: it follows a
// redirect of a GET or HEAD to the same scheme, host and port as the
// first request (so headers and credentials never reach another server),
// at most 10 of them. Any other redirect is a *RedirectError.
func CheckRedirect(req *http.Request, via []*http.Request) error {
	first := via[0]
	if (first.Method != http.MethodGet && first.Method != http.MethodHead) || ServerName(req.URL) != ServerName(first.URL) {
		return &RedirectError{Method: first.Method, From: first.URL, To: req.URL}
	}
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects (give the URL they lead to)", maxRedirects)
	}
	return nil
}

// ServerName is u's scheme, host and port, the port always given:
// "https://example.com:443". It holds no credentials, path or query.
func ServerName(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return u.Scheme + "://" + host + ":" + port
}

// checkHTTPURL accepts an absolute http or https URL with a host.
func checkHTTPURL(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return unwrapURLError(err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("not an http or https URL (write one such as http://127.0.0.1:8080/healthz)")
	}
	return nil
}

// requestError says why a request got no answer: ctx ended (wrapped), the
// request's own timeout passed, or what net/http said, without its
// repetition of the URL.
func requestError(ctx, reqCtx context.Context, timeout time.Duration, err error) error {
	var alert *net.OpError
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case reqCtx.Err() != nil:
		return fmt.Errorf("no answer within %s (is the server up and reachable?)", roundElapsed(timeout))
	case errors.As(err, &alert) && alert.Op == "remote error":
		// A TLS alert from the server, which net/http may have wrapped
		// in words of its own ("readLoopPeekFailLocked: "), depending
		// on when it came.
		return alert
	}
	return unwrapURLError(err)
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Wait sends GET to rawURL every interval (1s if interval <= 0), each try
// with a timeout of its own, until the status is in expect (200 if expect
// is empty); it reads no body. After each try that fails it calls
// progress, if not nil, with the time spent and the status or error of
// the try, at most once per interval. It fails after timeout with the
// last status or error ("wait http://...: no answer with status 200
// within 5m0s (last: 503 Service Unavailable)"), or when ctx ends, with
// ctx's error wrapped. It fails at once, with the error wrapped, on what
// trying again cannot mend: a redirect to another server
// (*RedirectError), or a TLS handshake that fails (a certificate that
// does not verify, an alert from the server). A timeout <= 0 makes one
// try.
func (h *realHTTP) Wait(ctx context.Context, rawURL string, expect []int, timeout, interval time.Duration, progress func(msg string)) error {
	name := RedactURLs(rawURL)
	if err := checkHTTPURL(rawURL); err != nil {
		return fmt.Errorf("wait %s: %w", name, err)
	}
	if len(expect) == 0 {
		expect = []int{http.StatusOK}
	}
	if interval <= 0 {
		interval = time.Second
	}
	start := time.Now()
	deadline := start.Add(timeout)
	var last string
	var told time.Time // last call of progress
	for {
		tryStart := time.Now()
		try := h.try
		if left := deadline.Sub(tryStart); left > 0 && left < try {
			try = left
		}
		resp, err := h.send(ctx, try, http.MethodGet, rawURL, nil, nil, false)
		var redirect *RedirectError
		switch {
		case err == nil && slices.Contains(expect, resp.Status):
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("wait %s: %w%s", name, ctx.Err(), lastPart(last))
		case errors.As(err, &redirect) || IsTLSError(err):
			return fmt.Errorf("wait %s: %w", name, err)
		case err != nil && try < h.try && last != "" && !time.Now().Before(deadline):
			// A try the deadline cut short tells nothing new.
		case err != nil:
			last = err.Error()
		default:
			last = StatusLine(resp.Status)
		}
		now := time.Now()
		if !now.Before(deadline) {
			return fmt.Errorf("wait %s: no answer with status %s within %s%s", name, statusList(expect), timeout, lastPart(last))
		}
		if progress != nil && (told.IsZero() || now.Sub(told) >= interval) {
			progress(fmt.Sprintf("wait %s: %s (%s of %s)", name, last, roundElapsed(now.Sub(start)), timeout))
			told = now
		}
		next := tryStart.Add(interval)
		if next.After(deadline) {
			next = deadline
		}
		t := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait %s: %w%s", name, ctx.Err(), lastPart(last))
		case <-t.C:
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("wait %s: no answer with status %s within %s%s", name, statusList(expect), timeout, lastPart(last))
		}
	}
}

func lastPart(last string) string {
	if last == "" {
		return ""
	}
	return " (last: " + last + ")"
}

// StatusLine is "503 Service Unavailable", or "599" for a code without
// a text.
func StatusLine(code int) string {
	if text := http.StatusText(code); text != "" {
		return strconv.Itoa(code) + " " + text
	}
	return strconv.Itoa(code)
}

// orList is "a", "a or b", "a, b or c".
func orList(s []string) string {
	if len(s) <= 1 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// statusList is "200", "200 or 204", "200, 201 or 204".
func statusList(codes []int) string {
	s := make([]string, len(codes))
	for i, c := range codes {
		s[i] = strconv.Itoa(c)
	}
	return orList(s)
}

// roundElapsed keeps durations in messages short: whole seconds from 1s
// on, else milliseconds.
func roundElapsed(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}
