package builtins

import (
	"context"
	"fmt"
	"time"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
)

const waitHTTPDoc = `wait_http(url, expect=[200], timeout="5m", interval="2s", ca=None, cert=None, key_file=None, tags=[], on_change=[])
Waits until url answers a GET with a status in expect, trying every
interval, and fails after timeout with the last status or error. Progress
(elapsed time, last error) goes to stderr. check lists it and does not
wait. A wait is never counted as a change. What waiting cannot mend fails
at once: a certificate that does not verify, or a redirect to another
server (redirects are followed only to the same scheme, host and port).

- url: the URL to poll, such as "http://127.0.0.1:8080/version" or
  "https://10.0.0.10:443/healthz".
- expect: the statuses that mean ready.
- timeout, interval: durations such as "5m" and "2s".
- ca: for https, the CA certificate (PEM) that the server's certificate
  must chain to, such as the cluster's ca.pem; without it, the system's
  roots. Verification cannot be turned off.
- cert, key_file: a client certificate and its key, for servers that ask
  for one. TLS files are on the machine running kplay (relative to the
  playbook's directory).`

// waitHTTP implements the wait_http builtin; see waitHTTPDoc.
func waitHTTP(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	s := &waitHTTPStep{expect: statuses{200}}
	target := absURL{example: "http://127.0.0.1:8080/version"}
	timeout, interval := "5m", "2s"
	var ca, cert, keyFile string
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs,
		"url", &target,
		"expect??", &s.expect,
		"timeout?", &timeout,
		"interval?", &interval,
		"ca?", &ca,
		"cert?", &cert,
		"key_file?", &keyFile,
		"tags?", &s.meta.Tags,
		"on_change?", &s.meta.OnChange,
	); err != nil {
		return nil, err
	}
	s.url = target.url
	var err error
	for _, d := range []struct {
		name string
		text string
		to   *time.Duration
	}{{"timeout", timeout, &s.timeout}, {"interval", interval, &s.interval}} {
		if *d.to, err = time.ParseDuration(d.text); err != nil || *d.to <= 0 {
			return nil, fmt.Errorf("%s: %s %q is not a duration (write one such as \"5m\" or \"2s\")", fn.Name(), d.name, d.text)
		}
	}
	if s.tls, err = tlsFiles(thread, fn, ca, cert, keyFile, s.url); err != nil {
		return nil, err
	}
	s.meta.Kind, s.meta.Target, s.meta.Resource = "wait_http", s.url, s.url
	return engine.Record(thread, s)
}

type waitHTTPStep struct {
	meta              engine.StepMeta
	url               string
	expect            statuses
	timeout, interval time.Duration
	tls               host.TLSFiles
}

func (s *waitHTTPStep) Meta() *engine.StepMeta { return &s.meta }

func (s *waitHTTPStep) Diff(ctx context.Context, h host.Host) (engine.Change, error) {
	return engine.Change{Action: engine.Wait, Summary: fmt.Sprintf("up to %s for %s", s.timeout, joinInts(s.expect))}, nil
}

func (s *waitHTTPStep) Apply(ctx context.Context, h host.Host, c engine.Change) error {
	web, err := h.HTTP().WithTLS(s.tls)
	if err != nil {
		return err
	}
	return withTLSHint(web.Wait(ctx, s.url, s.expect, s.timeout, s.interval, engine.Progress(ctx)))
}
