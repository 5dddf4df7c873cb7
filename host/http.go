package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits of the HTTP client Real.HTTP returns.
const (
	httpRequestTimeout = 30 * time.Second // one Do
	httpTryTimeout     = 5 * time.Second  // one try of Wait
	httpBodyLimit      = 1 << 20          // bytes of a body kept
)

// realHTTP is the HTTP of a Real: one http.Client, so connections are
// reused across steps. It is safe for concurrent use.
type realHTTP struct {
	client  *http.Client
	timeout time.Duration // one Do
	try     time.Duration // one try of Wait
}

func newRealHTTP(timeout, try time.Duration) *realHTTP {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &realHTTP{client: &http.Client{Transport: tr}, timeout: timeout, try: try}
}

// HTTP returns the HTTP client of this Real, built once: each request has
// a timeout of 30s (and ends sooner with ctx), and a response keeps at
// most the first 1 MiB of its body. Wait tries every interval, each try
// with a timeout of 5s.
func (r *Real) HTTP() HTTP { return r.web }

// Do sends a method request to rawURL (http or https) with body and
// headers ("Host" sets the request's host) and returns its status and the
// first 1 MiB of its body, whatever the status. Redirects are followed.
// Errors name the method and the URL (without a password), never the body
// or a header value: a URL that is not http or https, a refused
// connection, no answer within 30s, or ctx's error (wrapped).
func (h *realHTTP) Do(ctx context.Context, method, rawURL string, body []byte, headers map[string]string) (HTTPResponse, error) {
	resp, err := h.send(ctx, h.timeout, method, rawURL, body, headers)
	if err != nil {
		return HTTPResponse{}, fmt.Errorf("%s %s: %w", method, redactURL(rawURL), err)
	}
	return resp, nil
}

// send is Do with its own timeout; its error does not name the request.
func (h *realHTTP) send(ctx context.Context, timeout time.Duration, method, rawURL string, body []byte, headers map[string]string) (HTTPResponse, error) {
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
	data, err := io.ReadAll(io.LimitReader(resp.Body, httpBodyLimit))
	if err != nil {
		return HTTPResponse{}, fmt.Errorf("read the body: %w", requestError(ctx, reqCtx, timeout, err))
	}
	return HTTPResponse{Status: resp.StatusCode, Body: data}, nil
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
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case reqCtx.Err() != nil:
		return fmt.Errorf("no answer within %s (is the server up and reachable?)", roundElapsed(timeout))
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

// redactURL is rawURL with any password replaced by "xxxxx".
func redactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return u.Redacted()
}

// Wait sends GET to rawURL every interval (1s if interval <= 0), each try
// with a timeout of its own, until the status is in expect (200 if expect
// is empty). After each try that fails it calls progress, if not nil,
// with the time spent and the status or error of the try, at most once
// per interval. It fails after timeout with the last status or error
// ("wait http://...: no answer with status 200 within 5m0s (last: 503
// Service Unavailable)"), or when ctx ends, with ctx's error wrapped.
// A timeout <= 0 makes one try.
func (h *realHTTP) Wait(ctx context.Context, rawURL string, expect []int, timeout, interval time.Duration, progress func(msg string)) error {
	name := redactURL(rawURL)
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
		resp, err := h.send(ctx, try, http.MethodGet, rawURL, nil, nil)
		switch {
		case err == nil && slices.Contains(expect, resp.Status):
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("wait %s: %w%s", name, ctx.Err(), lastPart(last))
		case err != nil && try < h.try && last != "" && !time.Now().Before(deadline):
			// A try the deadline cut short tells nothing new.
		case err != nil:
			last = err.Error()
		default:
			last = statusLine(resp.Status)
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

// statusLine is "503 Service Unavailable", or "599" for a code without
// a text.
func statusLine(code int) string {
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
