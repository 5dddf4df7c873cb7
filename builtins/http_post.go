package builtins

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
)

const httpPostDoc = `http_post(url, json=None, body=None, headers={}, expect=[200, 201], unless_get=None, ca=None, cert=None, key_file=None, sensitive=None, tags=[], on_change=[], once=None)
Declares an HTTP POST. check lists it as an action and sends nothing. With
unless_get, the diff first GETs that URL: 200 means the thing exists and
nothing is posted; 404 means it is posted. A response outside expect is an
error that shows the status and the start of the body; a response body
larger than 1 MiB is an error. Every request has a timeout.

A redirect of the POST is not followed (it would send the body and headers
elsewhere): its status is the answer, checked against expect, and the
error names the server it points to. The GET of unless_get follows a
redirect only to the same scheme, host and port; one to another server is
an error.

- url: the URL to POST to.
- json: a value sent as compact JSON (Content-Type: application/json).
- body: a string sent as it is. Give json or body, or neither.
- headers: extra request headers, sent with the POST and the GET of
  unless_get. Their values are never printed.
- expect: the statuses that mean success.
- unless_get: a URL whose 200 means there is nothing to do.
- ca, cert, key_file: for https, the CA certificate that the server's
  certificate must chain to (else the system's roots), and a client
  certificate and its key, as for wait_http. Verification cannot be
  turned off.
- sensitive: the body is a secret: errors leave out the server's answer,
  which may quote it, and JSON output marks the step sensitive. None lets
  the secret rule decide, as for file(): a URL path with "secret" or
  "token" in it, a body holding a private key, credentials, a Kubernetes
  Secret or a sensitive var. The body itself is never printed.
- once: "cluster" makes the step run on one host of a fleet run (kplay
  run --inventory or --hosts): the first host to take it in etcd (see
  docs/fleet.md), or the fleet's first host without etcd; the others list
  it as unchanged, "done by" that host. A single-host run ignores it.`

// httpPost implements the http_post builtin; see httpPostDoc.
func httpPost(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	s := &httpPostStep{expect: statuses{200, 201}}
	target := absURL{example: "http://127.0.0.1:8080/api/v1/namespaces"}
	unlessGet := absURL{example: "http://127.0.0.1:8080/api/v1/namespaces/kube-system"}
	var jsonValue jsonArg
	var body bodyArg
	var headers *starlark.Dict
	var ca, cert, keyFile string
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs,
		"url", &target,
		"json??", &jsonValue,
		"body??", &body,
		"headers?", &headers,
		"expect??", &s.expect,
		"unless_get??", &unlessGet,
		"ca?", &ca,
		"cert?", &cert,
		"key_file?", &keyFile,
		"sensitive?", &s.meta.Sensitive,
		"tags?", &s.meta.Tags,
		"on_change?", &s.meta.OnChange,
		"once?", &s.meta.Once,
	); err != nil {
		return nil, err
	}
	s.url, s.unlessGet = target.url, unlessGet.url
	s.headers = map[string]string{}
	switch {
	case jsonValue.value != nil && body.value != nil:
		return nil, fmt.Errorf("%s: give json or body, not both", fn.Name())
	case jsonValue.value != nil:
		s.body, s.headers["Content-Type"] = []byte(jsonValue.text), "application/json"
	case body.value != nil:
		s.body = []byte(body.text)
	}
	if headers != nil {
		for _, item := range headers.Items() {
			k, ok1 := starlark.AsString(item[0])
			v, ok2 := starlark.AsString(item[1])
			if !ok1 || !ok2 || k == "" || strings.ContainsAny(k+v, "\r\n") {
				return nil, fmt.Errorf("%s: headers: want string names and values on one line, got %s", fn.Name(), item[0])
			}
			s.headers[http.CanonicalHeaderKey(k)] = v
		}
	}
	urls := []string{s.url}
	if s.unlessGet != "" {
		urls = append(urls, s.unlessGet)
	}
	var err error
	if s.tls, err = tlsFiles(thread, fn, ca, cert, keyFile, urls...); err != nil {
		return nil, err
	}
	s.meta.Kind, s.meta.Resource = "http_post", "POST "+s.url
	s.meta.Target = s.meta.Resource
	s.meta.Sensitive = s.meta.Sensitive.Decide([]string{urlPath(s.url)}, s.body, 0, false)
	if holdsSecret(thread, jsonValue.value) || holdsSecret(thread, body.value) {
		s.meta.Sensitive = engine.SensitiveYes // the flow rule, before JSON escapes the value
	}
	return engine.Record(thread, s)
}

// textArg is an argument sent as text: value is the argument as given,
// for the flow rule, nil when none was; text is what is sent.
type textArg struct {
	value starlark.Value
	text  string
}

// jsonArg is http_post's json=: any value ToGo converts, sent as compact
// JSON with sorted keys (compactJSON). Unpack's error: a value JSON
// cannot hold.
type jsonArg textArg

func (j *jsonArg) Unpack(v starlark.Value) error {
	text, err := compactJSON(v)
	if err != nil {
		return err
	}
	j.value, j.text = v, text
	return nil
}

// bodyArg is http_post's body=: a string sent as it is; a nil value
// tells no body from body="". Unpack's error: not a string.
type bodyArg textArg

func (b *bodyArg) Unpack(v starlark.Value) error {
	text, ok := starlark.AsString(v)
	if !ok {
		return fmt.Errorf("got %s, want string", v.Type())
	}
	b.value, b.text = v, text
	return nil
}

type httpPostStep struct {
	meta      engine.StepMeta
	url       string
	body      []byte
	headers   map[string]string
	expect    statuses
	unlessGet string
	tls       host.TLSFiles
}

func (s *httpPostStep) Meta() *engine.StepMeta { return &s.meta }

func (s *httpPostStep) Diff(ctx context.Context, h host.Host) (engine.Change, error) {
	summary := fmt.Sprintf("POST %d bytes", len(s.body))
	if s.unlessGet == "" {
		// After is the body, for the engine's secret rule; an action's
		// content is never printed.
		return engine.Change{Action: engine.Run, Summary: summary, After: s.body}, nil
	}
	web, err := h.HTTP().WithTLS(s.tls)
	if err != nil {
		return engine.Change{}, err
	}
	resp, err := web.Do(ctx, http.MethodGet, s.unlessGet, nil, s.headers)
	if err != nil {
		return engine.Change{}, withTLSHint(err)
	}
	switch resp.Status {
	case http.StatusOK:
		return engine.Change{Summary: "unless_get answered 200"}, nil
	case http.StatusNotFound:
		return engine.Change{Action: engine.Run, Summary: summary + "; unless_get answered 404", After: s.body}, nil
	}
	sensitive := s.meta.Sensitive == engine.SensitiveYes || (s.meta.Sensitive == engine.SensitiveAuto && engine.SensitiveContent(s.body))
	return engine.Change{}, fmt.Errorf("unless_get %s answered %d %s (want 200 or 404): %s", host.RedactURLs(s.unlessGet), resp.Status, http.StatusText(resp.Status), s.answer(resp.Body, sensitive))
}

func (s *httpPostStep) Apply(ctx context.Context, h host.Host, c engine.Change) error {
	web, err := h.HTTP().WithTLS(s.tls)
	if err != nil {
		return err
	}
	resp, err := web.Do(ctx, http.MethodPost, s.url, s.body, s.headers)
	if err != nil || resp.NotSent {
		return withTLSHint(err)
	}
	switch {
	case slices.Contains(s.expect, resp.Status):
		return nil
	case resp.RedirectTo != "":
		return fmt.Errorf("answered %d %s, a redirect to %s (want %s; kplay does not follow the redirect of a POST, which would send its body and headers there: give the URL it redirects to)",
			resp.Status, http.StatusText(resp.Status), resp.RedirectTo, joinInts(s.expect))
	}
	return fmt.Errorf("answered %d %s (want %s): %s", resp.Status, http.StatusText(resp.Status), joinInts(s.expect), s.answer(resp.Body, c.Sensitive))
}

// answer is what an error shows of a server's answer: its start, with the
// values of the request's headers (a token, an API key) that the server
// may quote replaced by "(header NAME)"; nothing when the request is
// sensitive.
func (s *httpPostStep) answer(body []byte, sensitive bool) string {
	if sensitive {
		return hiddenAnswer
	}
	for _, k := range slices.Sorted(maps.Keys(s.headers)) {
		v := s.headers[k]
		if k == "Content-Type" || v == "" {
			continue
		}
		body = bytes.ReplaceAll(body, []byte(v), []byte("(header "+k+")"))
		// The credential of "Bearer TOKEN" or "Basic B64", quoted alone.
		if _, cred, ok := strings.Cut(v, " "); ok && len(cred) >= 8 {
			body = bytes.ReplaceAll(body, []byte(cred), []byte("(header "+k+")"))
		}
	}
	for _, raw := range []string{s.url, s.unlessGet} {
		for _, cred := range urlCredentials(raw) {
			body = bytes.ReplaceAll(body, []byte(cred), []byte("(credential)"))
		}
	}
	return bodyStart(body)
}

// urlCredentials lists the secrets a request to rawURL carries: the
// password of its user:password@ (and the basic-auth header Go makes of
// it), and the values of query parameters named like credentials
// (access_token=, api_key=), longest first.
func urlCredentials(rawURL string) []string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil
	}
	var creds []string
	if pw, ok := u.User.Password(); ok && pw != "" {
		creds = append(creds, base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw)), pw)
	}
	for name, values := range u.Query() {
		if host.CredentialParam(name) {
			creds = append(creds, values...)
		}
	}
	creds = slices.DeleteFunc(creds, func(c string) bool { return len(c) < 4 })
	slices.SortFunc(creds, func(a, b string) int { return len(b) - len(a) })
	return creds
}

// hiddenAnswer stands for a server's answer to a sensitive request, which
// may quote the secret it was sent.
const hiddenAnswer = "(answer not shown: the request is sensitive)"

// urlPath is the path of rawURL, for the name rule: the host is not the
// request's business.
func urlPath(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil {
		return u.Path
	}
	return rawURL
}

// withTLSHint adds to err, when a server's certificate did not verify or
// the server ended the handshake, the arguments that may mend it.
func withTLSHint(err error) error {
	var unknown x509.UnknownAuthorityError
	var op *net.OpError
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("%w (give ca= the CA certificate that signed the server's certificate)", err)
	case errors.As(err, &op) && op.Op == "remote error": // an alert from the peer, in crypto/tls
		return fmt.Errorf("%w (the server refused the TLS handshake: does it want a client certificate, cert= and key_file=?)", err)
	}
	return err
}

// bodyStart is the first KiB of a response body, for error messages.
func bodyStart(b []byte) string {
	const max = 1024
	if len(b) > max {
		return fmt.Sprintf("%q… (%d bytes)", b[:max], len(b))
	}
	if len(b) == 0 {
		return "(empty body)"
	}
	return fmt.Sprintf("%q", b)
}

func joinInts(ns []int) string {
	var parts []string
	for _, n := range ns {
		parts = append(parts, fmt.Sprint(n))
	}
	return strings.Join(parts, " or ")
}
