// Package etcdv2 is kplay's client of the etcd v2 keys API, over
// go.etcd.io/etcd/client/v2. New makes the host.Etcd that a host.Real
// hands the steps (host.WithEtcd(etcdv2.New)): timeouts on every call,
// retries while no endpoint answers, no redirects followed, bounded
// answers, and errors that name the key and the endpoints, never a value
// or a password.
package etcdv2

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	client "go.etcd.io/etcd/client/v2"

	"github.com/kplay-dev/kplay/host"
)

// Timeouts of the clients New returns.
const (
	// requestTimeout bounds one request to one endpoint (connect,
	// TLS handshake and the answer's header).
	requestTimeout = 5 * time.Second
	// callTimeout bounds one Get or Set, retries included.
	callTimeout = 10 * time.Second
	// bodyLimit bounds the body of an answer the client reads: a
	// longer one is an error, so that a server that sends a body without
	// end costs 16 MiB, not all the memory. etcd refuses values above
	// 1.5 MiB by default, and a v2 answer holds a node and its previous
	// value.
	bodyLimit = 16 << 20
)

// timeouts bound the calls of an etcd client; tests shorten them.
type timeouts struct {
	request time.Duration // one request to one endpoint
	call    time.Duration // one Get or Set, all endpoints and retries
}

// New returns a client of the etcd v2 keys API at cfg.Endpoints. It
// reads the TLS files now, but does not connect: each Get or Set does,
// with a timeout of 5s per request and 10s per call. A call tries the
// endpoints in turn (in an order the client shuffles once) and, while
// none answers (refused, timed out, no leader), tries again with a short
// backoff; after 10s it fails with an error that names the endpoints. An
// etcd without the v2 API (404 on /v2/keys), a certificate that does not
// verify, an answer longer than 16 MiB, a redirect, or an etcd error
// answer fails at once. Errors name the key, never the value, and the
// endpoints without their passwords. Config errors (no endpoints, an
// endpoint that is not an http or https URL, an unreadable TLS file, a
// certificate without its key) are returned now.
//
// The v2 client would follow a redirect itself, to any host and scheme,
// sending the request again with its body (the value of a Set) and
// presenting the client certificate to whoever asks; the client's
// transport turns every redirect into an error instead, since etcd
// itself never redirects.
//
// The client is a *Client, safe for concurrent use; Close closes its idle
// connections. It has the type of host.EtcdFactory.
func New(cfg host.EtcdConfig) (host.Etcd, error) {
	c, err := newClient(cfg, timeouts{request: requestTimeout, call: callTimeout})
	if err != nil {
		return nil, err // not a nil *Client in a host.Etcd
	}
	return c, nil
}

// Client is the host.Etcd that New returns. It is safe for concurrent use.
type Client struct {
	tr    *http.Transport
	keys  client.KeysAPI
	names string // the endpoints, comma-separated and without passwords, for messages
	n     int    // number of endpoints
	timeouts
}

func newClient(cfg host.EtcdConfig, t timeouts) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints (give at least one client URL such as http://127.0.0.1:2379)")
	}
	for _, ep := range cfg.Endpoints {
		if err := checkEtcdEndpoint(ep); err != nil {
			return nil, err
		}
	}
	tc, err := cfg.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	// The v2 client never sends a URL's user:password (it uses the
	// transport, which does not), but puts endpoints in its messages.
	names := make([]string, len(cfg.Endpoints))
	endpoints := make([]string, len(cfg.Endpoints))
	for i, ep := range cfg.Endpoints {
		names[i] = host.RedactURLs(ep)
		u, _ := url.Parse(ep) // checked above
		u.User = nil
		endpoints[i] = u.String()
	}
	// No ForceAttemptHTTP2: the v2 client cancels a request through
	// Request.Cancel, which only HTTP/1 honours.
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: t.request, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   t.request,
		ResponseHeaderTimeout: t.request,
		IdleConnTimeout:       30 * time.Second,
	}
	c, err := client.New(client.Config{
		Endpoints:               endpoints,
		Transport:               Transport(tr),
		HeaderTimeoutPerRequest: t.request,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(names, ","), err)
	}
	return &Client{
		tr:       tr,
		keys:     client.NewKeysAPI(c),
		names:    strings.Join(names, ","),
		n:        len(cfg.Endpoints),
		timeouts: t,
	}, nil
}

// checkEtcdEndpoint accepts a client URL: http or https, a host, no path.
func checkEtcdEndpoint(ep string) error {
	u, err := url.Parse(ep)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("etcd endpoint %q: not a client URL (write one such as http://127.0.0.1:2379)", host.RedactURLs(ep))
	}
	return nil
}

// Get reads key with a quorum read, so that every master sees the latest
// value. A missing key is host.EtcdValue{Exists: false}; a directory is an
// error.
func (c *Client) Get(ctx context.Context, key string) (host.EtcdValue, error) {
	what := fmt.Sprintf("get key %q", key)
	if err := host.CheckEtcdKey(what, key); err != nil {
		return host.EtcdValue{}, err
	}
	var resp *client.Response
	err := c.do(ctx, what, func(ctx context.Context) (err error) {
		resp, err = c.keys.Get(ctx, key, &client.GetOptions{Quorum: true})
		return err
	})
	switch {
	case client.IsKeyNotFound(err):
		return host.EtcdValue{}, nil
	case err != nil:
		return host.EtcdValue{}, c.callError(what, err)
	case resp.Node == nil:
		return host.EtcdValue{}, fmt.Errorf("%s: etcd %s: the answer has no node (is this an etcd v2 keys API?)", what, c.names)
	case resp.Node.Dir:
		return host.EtcdValue{}, fmt.Errorf("%s: etcd %s: the key is a directory (name a key inside it)", what, c.names)
	}
	return host.EtcdValue{Exists: true, Value: resp.Node.Value, ModifiedIndex: resp.Node.ModifiedIndex}, nil
}

// Set writes value at key; created reports whether the key was absent
// before. With ifAbsent it writes only if the key is absent
// (PrevExist=false) and returns created=false, no error, when it exists.
// A Set is retried while no endpoint answers: should an answer be lost
// after etcd applied it, the retry of an ifAbsent Set reports
// created=false for the key it wrote itself.
func (c *Client) Set(ctx context.Context, key, value string, ifAbsent bool) (bool, error) {
	what := fmt.Sprintf("set key %q", key)
	if err := host.CheckEtcdKey(what, key); err != nil {
		return false, err
	}
	opts := &client.SetOptions{}
	if ifAbsent {
		opts.PrevExist = client.PrevNoExist
	}
	var resp *client.Response
	err := c.do(ctx, what, func(ctx context.Context) (err error) {
		resp, err = c.keys.Set(ctx, key, value, opts)
		return err
	})
	var ee client.Error
	switch {
	case ifAbsent && errors.As(err, &ee) && ee.Code == client.ErrorCodeNodeExist:
		return false, nil
	case err != nil:
		return false, c.callError(what, err)
	}
	return resp.PrevNode == nil, nil
}

// Swap implements Etcd.Swap with etcd's compare-and-swap: PrevExist=false
// for an absent prev, PrevValue otherwise. It is not retried once an
// endpoint answered: a lost answer to a Swap that etcd applied reads as
// a failed compare on the retry, which is reported as the error it is.
func (c *Client) Swap(ctx context.Context, key, value string, prev host.EtcdValue) error {
	what := fmt.Sprintf("set key %q", key)
	if err := host.CheckEtcdKey(what, key); err != nil {
		return err
	}
	opts := &client.SetOptions{PrevExist: client.PrevNoExist}
	if prev.Exists {
		opts = &client.SetOptions{PrevExist: client.PrevExist, PrevValue: prev.Value}
	}
	err := c.do(ctx, what, func(ctx context.Context) error {
		_, err := c.keys.Set(ctx, key, value, opts)
		return err
	})
	var ee client.Error
	switch {
	case errors.As(err, &ee) && (ee.Code == client.ErrorCodeNodeExist || ee.Code == client.ErrorCodeTestFailed || ee.Code == client.ErrorCodeKeyNotFound):
		return fmt.Errorf("%s: %w", what, host.ErrEtcdSwap)
	case err != nil:
		return c.callError(what, err)
	}
	return nil
}

// do runs op until an endpoint answers. While none does, it tries again,
// after every endpoint was tried with a backoff, until c.call has passed.
// It returns nil, an etcd error answer as the client gives it (a
// client.Error, for client.IsKeyNotFound and the like), or an error that
// names the call and says why it failed.
func (c *Client) do(ctx context.Context, what string, op func(context.Context) error) error {
	callCtx, cancel := context.WithTimeout(ctx, c.call)
	defer cancel()
	var round []error // why each endpoint failed since the last backoff
	backoff := 100 * time.Millisecond
	for {
		err := op(callCtx)
		var ee client.Error
		switch {
		case err == nil, errors.As(err, &ee):
			return err
		case ctx.Err() != nil:
			return fmt.Errorf("%s: etcd %s: %w", what, c.names, ctx.Err())
		case !etcdRetryable(err):
			return c.answerError(what, err)
		case callCtx.Err() != nil:
			return c.silentError(what, round)
		}
		if isClusterError(err) {
			round = etcdErrors(err)
		} else {
			// An ifAbsent Set is one-shot: the client tries one
			// endpoint and moves on to the next for the next call.
			// Back off only once each endpoint had its turn.
			if len(round) == c.n {
				round = nil
			}
			round = append(round, err)
			if len(round) < c.n {
				continue
			}
		}
		t := time.NewTimer(backoff)
		select {
		case <-callCtx.Done():
			t.Stop()
			if ctx.Err() != nil {
				return fmt.Errorf("%s: etcd %s: %w", what, c.names, ctx.Err())
			}
			return c.silentError(what, round)
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}

// callError is err, from do, named for the call: an etcd error answer is
// described; do named its other errors.
func (c *Client) callError(what string, err error) error {
	var ee client.Error
	if errors.As(err, &ee) {
		return c.answerError(what, err)
	}
	return err
}

// silentError is the error for a call that no endpoint answered within
// c.call; round holds the latest reasons, if any.
func (c *Client) silentError(what string, round []error) error {
	msg := fmt.Sprintf("%s: etcd %s: no endpoint answered within %s (is etcd running with --enable-v2?)", what, c.names, c.call)
	if len(round) > 0 {
		msg += ": " + etcdCauses(&client.ClusterError{Errors: round})
	}
	return errors.New(msg)
}

// answerError describes an error that trying again does not mend: an
// etcd error answer, an answer that is not etcd's, an etcd without the
// v2 API, a TLS failure.
func (c *Client) answerError(what string, err error) error {
	var ee client.Error
	switch {
	case errors.As(err, &ee):
		// Message only: Cause can hold a compared value.
		msg := fmt.Sprintf("%s: etcd %s: %s (etcd error %d)", what, c.names, ee.Message, ee.Code)
		if ee.Code == client.ErrorCodeUnauthorized {
			msg += " (kplay does not log in to etcd; allow guest access to the key)"
		}
		return errors.New(msg)
	case errors.Is(err, client.ErrInvalidJSON), errors.Is(err, client.ErrEmptyBody):
		return fmt.Errorf("%s: etcd %s: the answer is not from an etcd v2 keys API (check the endpoints)", what, c.names)
	case hasError[*host.BodyLimitError](err):
		return fmt.Errorf("%s: etcd %s: %s (kplay reads no more; is this an etcd v2 keys API? check the endpoints)", what, c.names, etcdCauses(err))
	case hasError[*redirectError](err):
		return fmt.Errorf("%s: etcd %s: %s", what, c.names, etcdCauses(err))
	case hasTLSError(err):
		return fmt.Errorf("%s: etcd %s: %s (check the CA file, client certificate and key)", what, c.names, etcdCauses(err))
	}
	return fmt.Errorf("%s: etcd %s: %s", what, c.names, etcdCauses(err))
}

// etcdErrors lists the errors in err: each endpoint's, for a
// client.ClusterError.
func etcdErrors(err error) []error {
	var ce *client.ClusterError
	if errors.As(err, &ce) && len(ce.Errors) > 0 {
		return ce.Errors
	}
	return []error{err}
}

func isClusterError(err error) bool {
	var ce *client.ClusterError
	return errors.As(err, &ce)
}

// etcdCauses joins the distinct messages of the errors in err, without
// the client's "client: " prefix.
func etcdCauses(err error) string {
	var msgs []string
	for _, e := range etcdErrors(err) {
		m := strings.TrimPrefix(e.Error(), "client: ")
		if !slices.Contains(msgs, m) {
			msgs = append(msgs, m)
		}
	}
	return strings.Join(msgs, "; ")
}

// etcdRetryable reports whether err means that no endpoint answered
// (refused, timed out, no leader), so that trying again may help. An
// answer (an etcd error, something that is not etcd), an etcd without the
// v2 API, or a TLS failure is not retried.
func etcdRetryable(err error) bool {
	var ee client.Error
	for _, e := range etcdErrors(err) {
		var nv *noV2Error
		switch {
		case errors.As(e, &ee), errors.As(e, &nv), hasTLSError(e),
			hasError[*host.BodyLimitError](e), hasError[*redirectError](e),
			errors.Is(e, client.ErrInvalidJSON), errors.Is(e, client.ErrEmptyBody):
			return false
		}
	}
	return true
}

// hasError reports whether err, or an endpoint's error in it, is an E.
func hasError[E error](err error) bool {
	for _, e := range etcdErrors(err) {
		var target E
		if errors.As(e, &target) {
			return true
		}
	}
	return false
}

// hasTLSError reports whether err, or an endpoint's error in it, is a
// certificate or TLS alert failure, which trying again cannot mend.
func hasTLSError(err error) bool {
	for _, e := range etcdErrors(err) {
		if host.IsTLSError(e) {
			return true
		}
	}
	return false
}

// noV2Error is what v2Transport makes of a 404 that is not an etcd error
// answer: the endpoint serves no v2 keys API.
type noV2Error struct{ endpoint string }

func (e *noV2Error) Error() string {
	return e.endpoint + " has no v2 keys API (404 on /v2/keys; start etcd 3.4 or 3.5 with --enable-v2=true, 3.6 has none)"
}

// redirectError is what v2Transport makes of a redirect: etcd
// never redirects, and the v2 client would follow one anywhere with the
// request's body.
type redirectError struct {
	endpoint string // scheme://host[:port]
	status   int
	to       string // scheme://host:port, or "" when there is no Location
}

func (e *redirectError) Error() string {
	to := e.to
	if to == "" {
		to = "nowhere (no Location)"
	}
	return fmt.Sprintf("%s answered %s, a redirect to %s (etcd does not redirect, and kplay follows no redirect from an etcd endpoint: give etcd's own client URL)", e.endpoint, host.StatusLine(e.status), to)
}

// v2Transport stands between the v2 client and the HTTP transport. It
// turns the plain-text 404 of an etcd without the v2 API into a
// noV2Error (found keys and etcd's own 404, key not found, are JSON and
// pass as they are), and any redirect into an redirectError; the
// client tries the next endpoint after such an error, as after a refused
// connection. It bounds each body at limit bytes: reading more fails
// with a *host.BodyLimitError.
type v2Transport struct {
	base  *http.Transport
	limit int64
}

// Transport returns base with the rules every client of the v2 API in
// kplay follows, this package's and the fleet coordinator's: a redirect
// is an error (etcd never redirects, and the v2 client would follow one
// anywhere with the request's body and the client certificate), a
// plain-text 404 says the endpoint has no v2 API, and an answer's body
// longer than 16 MiB is an error (a *host.BodyLimitError). Give it to
// client.Config as its Transport.
func Transport(base *http.Transport) client.CancelableTransport {
	return &v2Transport{base: base, limit: bodyLimit}
}

// RoundTrip sends req through the base transport.
func (t *v2Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	endpoint := req.URL.Scheme + "://" + req.URL.Host
	switch {
	case resp.StatusCode/100 == 3:
		resp.Body.Close()
		e := &redirectError{endpoint: endpoint, status: resp.StatusCode}
		if loc, err := resp.Location(); err == nil {
			e.to = host.ServerName(loc)
		}
		return nil, e
	case resp.StatusCode == http.StatusNotFound && !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json"):
		resp.Body.Close()
		return nil, &noV2Error{endpoint: endpoint}
	}
	resp.Body = host.LimitBody(resp.Body, t.limit)
	return resp, nil
}

// CancelRequest does nothing: the v2 client cancels through
// Request.Cancel and never calls it, but its Config asks for the method.
func (t *v2Transport) CancelRequest(*http.Request) {}

// Close closes the client's idle connections. The client may still be
// used after; it connects again.
func (c *Client) Close() error {
	c.tr.CloseIdleConnections()
	return nil
}
