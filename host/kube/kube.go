// Package kube is the client-go implementation of host.Kube: it tells
// whether an API object exists and creates it if not. New matches
// host.KubeFactory; the CLI hands it to the host, and host itself does
// not depend on client-go.
//
// Objects are unstructured maps, sent with the dynamic client; a small
// resolver of our own (resolve.go) turns an object's apiVersion and kind
// into its resource and scope from the server's API resource list of
// that group version. We use the dynamic client, not the typed clientset
// (k8s.io/client-go/kubernetes), and not client-go's discovery client
// and REST mapper either, because every `kplay check` pays for what the
// binary links: k8s.io/client-go/discovery imports
// k8s.io/client-go/kubernetes/scheme, every typed API, whose init alone
// cost each start 6 ms and 5,660 allocations (see DESIGN.md). The
// dynamic client also takes any kind the server serves, including custom
// resources, with no code per kind.
package kube

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/kplay-dev/kplay/host"
)

var _ host.KubeFactory = New
var _ host.AnswerError = (*kubeError)(nil)

// Timeout bounds each request to the API server, discovery included.
const Timeout = 10 * time.Second

// BodyLimit bounds the body of each answer the client reads: a longer one
// is an error, so that a server that sends a body without end costs
// 64 MiB, not all the memory. An object is at most 1.5 MiB in etcd, and
// the client reads one object or one group version's resource list at a
// time.
const BodyLimit = 64 << 20

// New returns a client of the API server cfg names: cfg.Kubeconfig, a
// kubeconfig file read now (its current context gives the server, the
// credentials and the namespace for namespaced objects that name none),
// if set; else cfg.Server, such as "http://127.0.0.1:8080", with no
// credentials and namespace "default". An https Server is verified
// against cfg.TLS.CAFile, or the system's roots, and is shown cfg.TLS's
// client certificate if it asks; cfg.TLS with a kubeconfig is an error.
// client-go sends a kubeconfig's credentials over https only.
//
// Only the file named is read: no KUBECONFIG, no ~/.kube/config, and no
// fallback to a pod's service account (KUBERNETES_SERVICE_HOST and its
// token) or any other environment variable, so an empty or unusable
// kubeconfig is an error (see loadKubeconfig), never someone else's
// identity.
//
// Redirects are followed only for a GET, to the same scheme, host and
// port (host.CheckRedirect): client-go adds the credentials to every
// request, redirected or not. An answer whose body is longer than
// BodyLimit is an error.
//
// New does not connect: the first call of a group version (v1, apps/v1)
// asks the server for the kinds that group version serves and keeps them
// for the client's life (a kind it does not find makes it ask again
// once), so keep one client per server rather than one per call. Every
// request is bounded by Timeout and by the caller's ctx. Errors name the
// server:
//
//	kube http://127.0.0.1:8080: no answer (connection refused); is the API server up?
//	kind Foo (v1) is not served by http://127.0.0.1:8080
//	kube http://127.0.0.1:8080: create v1 Namespace "x": 403 Forbidden: <the server's message>
//	kube http://127.0.0.1:8080: get v1 Namespace "x": response body larger than 64 MiB (...)
//
// They wrap their cause, so errors.Is(err, syscall.ECONNREFUSED),
// apierrors.IsForbidden(err) and meta.IsNoMatchError(err) hold. The
// client is safe for concurrent use.
func New(cfg host.KubeConfig) (host.Kube, error) {
	return newClient(cfg, Timeout)
}

// client is the host.Kube of one API server.
type client struct {
	server    string // as configured, for messages
	namespace string // for namespaced objects that name none
	timeout   time.Duration
	// credentials are the secrets the client sends (a bearer token, a
	// password and its basic-auth form): a server may quote them back in
	// an error, which then shows "(credential)" instead.
	credentials []string
	dyn         dynamic.Interface
	kinds       *resolver
}

func newClient(cfg host.KubeConfig, timeout time.Duration) (*client, error) {
	rc, namespace, err := restConfig(cfg)
	if err != nil {
		return nil, err
	}
	rc.Timeout = timeout
	rc.UserAgent = "kplay"
	rc.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &limitTransport{base: rt, limit: BodyLimit} })
	// No client-side throttling: a playbook sends a handful of requests,
	// and client-go's limiter would log its waits to stderr.
	rc.QPS = -1
	// Deprecation warnings would go to stderr, past the ui.
	rc.WarningHandlerWithContext = rest.NoWarnings{}

	// One REST client (one connection pool) for the kinds and the
	// objects, set up as dynamic.NewForConfig sets up its own.
	dc := dynamic.ConfigFor(rc)
	dc.GroupVersion = nil
	dc.APIPath = "/if-you-see-this-search-for-the-break" // every request sets its path
	server := host.RedactURLs(rc.Host)
	hc, err := rest.HTTPClientFor(dc)
	if err != nil {
		return nil, fmt.Errorf("kube %s: %w", server, err)
	}
	// A copy: HTTPClientFor may return http.DefaultClient.
	redirects := *hc
	redirects.CheckRedirect = host.CheckRedirect
	restClient, err := rest.UnversionedRESTClientForConfigAndClient(dc, &redirects)
	if err != nil {
		return nil, fmt.Errorf("kube %s: %w", server, err)
	}
	return &client{
		server:      server,
		namespace:   namespace,
		timeout:     timeout,
		credentials: credentialsOf(rc),
		dyn:         dynamic.New(restClient),
		kinds:       newResolver(restClient),
	}, nil
}

// restConfig returns the REST configuration of cfg and the namespace for
// namespaced objects that name none.
func restConfig(cfg host.KubeConfig) (*rest.Config, string, error) {
	if cfg.Kubeconfig != "" {
		if cfg.TLS != (host.TLSFiles{}) {
			return nil, "", fmt.Errorf("kubeconfig %q: TLS files are given too (a kubeconfig names its own CA and client certificate: give one or the other)", cfg.Kubeconfig)
		}
		return loadKubeconfig(cfg.Kubeconfig)
	}
	if cfg.Server == "" {
		return nil, "", errors.New("kube: no server given (set a server such as \"http://127.0.0.1:8080\", or a kubeconfig)")
	}
	u, err := url.Parse(cfg.Server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, "", fmt.Errorf("kube server %q: not an http or https URL (write a URL such as \"http://127.0.0.1:8080\")", host.RedactURLs(cfg.Server))
	}
	// Read and checked by host's rules, with its messages; client-go
	// reads the files again when it builds its transport, in New too.
	if _, err := cfg.TLS.Config(); err != nil {
		return nil, "", fmt.Errorf("kube %s: %w", host.RedactURLs(cfg.Server), err)
	}
	rc := &rest.Config{Host: cfg.Server, TLSClientConfig: rest.TLSClientConfig{
		CAFile:   cfg.TLS.CAFile,
		CertFile: cfg.TLS.CertFile,
		KeyFile:  cfg.TLS.KeyFile,
	}}
	return rc, metav1.NamespaceDefault, nil
}

// limitTransport bounds the body of every answer at limit bytes:
// reading more fails with a *host.BodyLimitError.
type limitTransport struct {
	base  http.RoundTripper
	limit int64
}

// RoundTrip sends req through the base transport.
func (t *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = host.LimitBody(resp.Body, t.limit)
	return resp, nil
}

// WrappedRoundTripper lets client-go see through the wrapper.
func (t *limitTransport) WrappedRoundTripper() http.RoundTripper { return t.base }

// Exists implements host.Kube: GET the object; 404 is false.
func (c *client) Exists(ctx context.Context, obj map[string]any) (bool, error) {
	ctx = quiet(ctx)
	r, ref, err := c.resource(ctx, obj)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	_, err = r.Get(ctx, ref.name, metav1.GetOptions{})
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsNotFound(err):
		return false, nil
	}
	return false, c.fail(ctx, "get "+ref.String(), err)
}

// Create implements host.Kube: POST the object; 409 AlreadyExists is
// created=false.
func (c *client) Create(ctx context.Context, obj map[string]any) (bool, error) {
	ctx = quiet(ctx)
	r, ref, err := c.resource(ctx, obj)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	_, err = r.Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{})
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsAlreadyExists(err):
		return false, nil
	}
	return false, c.fail(ctx, "create "+ref.String(), err)
}

// quiet returns ctx with a logger that drops client-go's logs: it would
// log to stderr, past the ui, what it also returns.
func quiet(ctx context.Context) context.Context {
	return klog.NewContext(ctx, logr.Discard())
}

// objRef names an object in messages: v1 Namespace "x", or v1 ConfigMap
// "c" in namespace "n".
type objRef struct {
	gvk       schema.GroupVersionKind
	name      string
	namespace string // "" for cluster-scoped kinds
}

func (o objRef) String() string {
	s := fmt.Sprintf("%s %s %q", o.gvk.GroupVersion(), o.gvk.Kind, o.name)
	if o.namespace != "" {
		s += fmt.Sprintf(" in namespace %q", o.namespace)
	}
	return s
}

// resource maps obj's apiVersion and kind to its resource, in its
// namespace if the kind is namespaced.
func (c *client) resource(ctx context.Context, obj map[string]any) (dynamic.ResourceInterface, objRef, error) {
	u := unstructured.Unstructured{Object: obj}
	apiVersion, kind, name := u.GetAPIVersion(), u.GetKind(), u.GetName()
	switch {
	case apiVersion == "":
		return nil, objRef{}, errors.New("kube object has no apiVersion (add one, such as \"v1\")")
	case kind == "":
		return nil, objRef{}, errors.New("kube object has no kind (add one, such as \"Namespace\")")
	case name == "":
		return nil, objRef{}, fmt.Errorf("kube %s %s has no metadata.name (add one)", apiVersion, kind)
	}
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return nil, objRef{}, fmt.Errorf("kube %s: apiVersion %q is not valid (write \"v1\" or \"group/version\", such as \"apps/v1\")", kind, apiVersion)
	}
	ref := objRef{gvk: gv.WithKind(kind), name: name}
	m, err := c.mapping(ctx, ref.gvk)
	if err != nil {
		return nil, ref, err
	}
	if !m.namespaced {
		return c.dyn.Resource(m.resource), ref, nil
	}
	ref.namespace = u.GetNamespace()
	if ref.namespace == "" {
		ref.namespace = c.namespace
	}
	return c.dyn.Resource(m.resource).Namespace(ref.namespace), ref, nil
}

// mapping finds the resource that serves gvk. A kind that the resolver
// did not find may be new (a custom resource defined by an earlier
// step), so it asks the server again once before it says the kind is not
// served. A kind in the wrong case ("namespace") is not served: the
// server refuses to decode it, a resource answers to its kind only.
func (c *client) mapping(ctx context.Context, gvk schema.GroupVersionKind) (mapping, error) {
	dctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	m, similar, ok, err := c.kinds.find(dctx, gvk)
	if err != nil {
		return mapping{}, c.fail(dctx, fmt.Sprintf("discover %s %s", gvk.GroupVersion(), gvk.Kind), err)
	}
	if !ok {
		noMatch := &meta.NoKindMatchError{GroupKind: gvk.GroupKind(), SearchedVersions: []string{gvk.Version}}
		return mapping{}, &kubeError{msg: fmt.Sprintf("kind %s (%s) is not served by %s%s", gvk.Kind, gvk.GroupVersion(), c.server, c.kindHint(dctx, gvk, similar)), err: noMatch}
	}
	return m, nil
}

// kindHint suggests the apiVersion and kind the server serves under
// gvk's kind name, whatever its case: ` (try apiVersion "apps/v1")`.
// similar is the resource of gvk's own group version that answers to
// that name, if any; else it searches the server's groups.
func (c *client) kindHint(ctx context.Context, gvk schema.GroupVersionKind, similar *metav1.APIResource) string {
	want := gvk.GroupVersion().WithKind("")
	if similar != nil {
		want.Kind = similar.Kind
	} else {
		var ok bool
		if want, ok = c.kinds.search(ctx, gvk.Kind); !ok {
			return ""
		}
	}
	var try []string
	if want.GroupVersion() != gvk.GroupVersion() {
		try = append(try, fmt.Sprintf("apiVersion %q", want.GroupVersion()))
	}
	if want.Kind != gvk.Kind {
		try = append(try, fmt.Sprintf("kind %q", want.Kind))
	}
	if len(try) == 0 {
		return ""
	}
	return " (try " + strings.Join(try, ", ") + ")"
}

// kubeError is an error with a message of its own that wraps its cause.
type kubeError struct {
	msg   string
	err   error
	brief string // msg without the server's words, if it quotes them
}

func (e *kubeError) Error() string { return e.msg }
func (e *kubeError) Unwrap() error { return e.err }

// Brief implements host.AnswerError.
func (e *kubeError) Brief() string {
	if e.brief != "" {
		return e.brief
	}
	return e.msg
}

// fail describes err from op, a request to the server bounded by ctx
// (the caller's ctx with the client's timeout).
func (c *client) fail(ctx context.Context, op string, err error) error {
	e := c.describe(ctx, op, err)
	for _, cred := range c.credentials {
		e.msg = strings.ReplaceAll(e.msg, cred, "(credential)")
		e.brief = strings.ReplaceAll(e.brief, cred, "(credential)")
	}
	return e
}

// credentialsOf lists the secrets rc sends: its bearer token, and its
// password with the basic-auth form of user and password.
func credentialsOf(rc *rest.Config) []string {
	var creds []string
	if rc.BearerToken != "" {
		creds = append(creds, rc.BearerToken)
	}
	if rc.Password != "" {
		creds = append(creds, base64.StdEncoding.EncodeToString([]byte(rc.Username+":"+rc.Password)), rc.Password)
	}
	return creds
}

// describe is fail without the redaction of credentials.
func (c *client) describe(ctx context.Context, op string, err error) *kubeError {
	prefix := "kube " + c.server
	var status apierrors.APIStatus
	var netErr net.Error
	var tooLong *host.BodyLimitError
	var alert *net.OpError
	switch {
	case errors.As(err, &tooLong):
		// client-go wraps it in "unexpected error ... Please retry", but
		// trying again gets the same answer.
		return &kubeError{msg: fmt.Sprintf("%s: %s: %v (kplay reads no more; is this an API server?)", prefix, op, tooLong), err: err}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &kubeError{msg: prefix + ": no answer (connection refused); is the API server up?", err: err}
	case errors.As(err, &status) && status.Status().Code != 0:
		code := status.Status().Code
		return &kubeError{msg: fmt.Sprintf("%s: %s: %s", prefix, op, statusText(status.Status())), err: err,
			brief: fmt.Sprintf("%s: %s: %d %s", prefix, op, code, http.StatusText(int(code)))}
	case errors.As(err, &alert) && alert.Op == "remote error":
		// A TLS alert from the server (crypto/tls's Op), which net/http
		// may have wrapped in words of its own, depending on when it
		// came.
		return &kubeError{msg: fmt.Sprintf("%s: %s: %v", prefix, op, alert), err: err}
	case errors.Is(ctx.Err(), context.Canceled):
		return &kubeError{msg: fmt.Sprintf("%s: %s: %v", prefix, op, ctx.Err()), err: err}
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		return &kubeError{msg: fmt.Sprintf("%s: no answer in %s (%s); is the API server up?", prefix, c.timeout, op), err: err}
	}
	// Drop url.Error's method and URL (with its ?timeout=): op says it.
	brief := fmt.Sprintf("%s: %s: failed", prefix, op)
	var ue *url.Error
	if errors.As(err, &ue) {
		return &kubeError{msg: fmt.Sprintf("%s: %s: %v", prefix, op, ue.Err), err: err, brief: brief}
	}
	return &kubeError{msg: fmt.Sprintf("%s: %s: %v", prefix, op, err), err: err, brief: brief}
}

// statusText gives a failed request's code and the server's message:
// "403 Forbidden: namespaces is forbidden: ...".
func statusText(s metav1.Status) string {
	code := fmt.Sprintf("%d %s", s.Code, http.StatusText(int(s.Code)))
	text := code
	if msg := s.Message; msg != "" && msg != string(s.Reason) && msg != http.StatusText(int(s.Code)) {
		text += ": " + msg
	}
	if s.Code == http.StatusUnauthorized {
		text += " (check the credentials in the kubeconfig)"
	}
	return text
}
