package host

import (
	"context"
	"errors"
	"time"
)

// AnswerError is an error whose message may quote what a server answered,
// which may quote what it was sent: a step that sent a secret shows Brief,
// the message without the answer, instead.
type AnswerError interface {
	error
	Brief() string
}

// ErrNotInCheck is wrapped by an operation that check does not do because
// it would only wait (wait_http): the engine lists such a step as skipped.
var ErrNotInCheck = errors.New("not done in check")

// EtcdConfig says how to reach an etcd cluster. TLS files are read from
// the machine running kplay, like file(src=).
type EtcdConfig struct {
	Endpoints []string // client URLs; each is tried in turn
	TLS       TLSFiles
}

// EtcdValue is what a key holds.
type EtcdValue struct {
	Exists        bool
	Value         string
	ModifiedIndex uint64
}

// Etcd is a client of the etcd v2 keys API. Every call has a timeout and
// tries each endpoint; when none answers, the error names the endpoints
// and how long it tried.
type Etcd interface {
	// Get reads key; a missing key is EtcdValue{Exists: false}, not an error.
	Get(ctx context.Context, key string) (EtcdValue, error)
	// Set writes value at key; created reports whether the key was
	// absent before. With ifAbsent it writes only if the key does not
	// exist (PrevExist=false) and returns created=false, no error, when
	// another writer set it first. Errors name the key, never the value.
	Set(ctx context.Context, key, value string, ifAbsent bool) (created bool, err error)
	// Swap writes value at key only if the key is still as prev says:
	// absent when !prev.Exists (PrevExist=false), else holding prev.Value
	// (PrevValue); etcd compares and writes in one step. When the key is
	// no longer so, it writes nothing and returns an error wrapping
	// ErrEtcdSwap.
	Swap(ctx context.Context, key, value string, prev EtcdValue) error
}

// ErrEtcdSwap is wrapped by Etcd.Swap's error when the key changed.
var ErrEtcdSwap = errors.New("the key changed since it was read (compare-and-swap failed)")

// HTTPResponse is the answer to an HTTP request. NotSent is set by the
// dry host for a request it did not send because it would change
// something (any method but GET and HEAD).
type HTTPResponse struct {
	Status int
	Body   []byte // whole: a body longer than 1 MiB is an error
	// RedirectTo is, for a redirect (3xx) that was not followed, the
	// server its Location names, as scheme://host:port: no credentials,
	// path or query, so that it can go in a message.
	RedirectTo string
	NotSent    bool
}

// HTTP sends HTTP requests with a timeout on each. It follows a redirect
// of a GET or HEAD only to the same scheme, host and port, and never a
// redirect of another method: headers and bodies never go to a server
// the playbook did not name.
type HTTP interface {
	// Do sends one request and returns the status and the body; any
	// status is an answer, not an error, and so is a redirect of a
	// request other than GET or HEAD (RedirectTo says where to). Errors
	// (no answer, refused, timed out, a bad URL, a GET redirected to
	// another server, a body longer than 1 MiB) name the method and URL
	// (without a password), never the body or a header value.
	Do(ctx context.Context, method, url string, body []byte, headers map[string]string) (HTTPResponse, error)
	// Wait polls url with GET every interval until it answers with a
	// status in expect, or fails after timeout with the last status or
	// error; it fails at once on what trying again cannot mend (a
	// certificate that does not verify, a redirect to another server).
	// progress, if not nil, is told about each failed try. The dry host
	// does not wait: it returns an error wrapping ErrNotInCheck.
	Wait(ctx context.Context, url string, expect []int, timeout, interval time.Duration, progress func(msg string)) error
	// WithTLS returns a client that verifies https servers against
	// files.CAFile (the system's roots if empty) and presents the client
	// certificate files names, if any. It reads the files now; their
	// errors name the file (see TLSFiles.Config).
	WithTLS(files TLSFiles) (HTTP, error)
}

// KubeConfig says how to reach a Kubernetes API server: Kubeconfig, a
// kubeconfig file on the machine running kplay, if set; else Server, such
// as "http://127.0.0.1:8080" (the guide's local insecure port), with TLS
// for an https Server (a kubeconfig names its own).
type KubeConfig struct {
	Server     string
	Kubeconfig string
	TLS        TLSFiles
}

// Kube creates API objects if they are absent. Objects are unstructured:
// a map decoded from JSON or YAML with apiVersion, kind and metadata.name.
type Kube interface {
	// Exists reports whether the object exists (GET: 200 → true, 404 →
	// false). A server that does not answer is an error naming it.
	Exists(ctx context.Context, obj map[string]any) (bool, error)
	// Create creates the object; created=false, no error, when it
	// already exists (409 AlreadyExists: another master won the race).
	Create(ctx context.Context, obj map[string]any) (created bool, err error)
}

// KubeFactory makes a Kube client for a configuration. The CLI gives the
// real one (host/kube.New, over client-go) to OpenReal with WithKube;
// host itself does not depend on client-go.
type KubeFactory func(cfg KubeConfig) (Kube, error)

// keepOne returns the value *m holds for key, else makes it with make and
// keeps it: a Real makes one etcd or Kubernetes client per configuration,
// so that the steps of a run share its connections and caches. The caller
// holds the lock that guards *m.
func keepOne[K comparable, V any](m *map[K]V, key K, make func() (V, error)) (V, error) {
	if v, ok := (*m)[key]; ok {
		return v, nil
	}
	v, err := make()
	if err != nil {
		return v, err
	}
	if *m == nil {
		*m = map[K]V{}
	}
	(*m)[key] = v
	return v, nil
}
