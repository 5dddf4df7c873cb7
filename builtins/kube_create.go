package builtins

import (
	"context"
	"errors"
	"fmt"

	"go.starlark.net/starlark"
	"sigs.k8s.io/yaml"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
)

const kubeCreateDoc = `kube_create(obj, server="http://127.0.0.1:8080", kubeconfig=None, ca=None, cert=None, key_file=None, sensitive=None, tags=[], on_change=[], once=None)
Declares that an API object exists, creating it if absent: the guide's
namespaces, created once per cluster. The diff GETs the object: present is
unchanged, absent (404) is a create. If another master creates it first
(409 AlreadyExists), the step is unchanged, not an error. An API server
that does not answer, redirects to another server, or answers with a body
larger than 64 MiB is an error naming it.

- obj: the object as a dict or YAML text, with apiVersion, kind and
  metadata.name (and metadata.namespace for namespaced kinds).
- server: the API server URL; the guide's local insecure port by default,
  or an https URL such as "https://10.0.0.10:443" with ca.
- kubeconfig: a kubeconfig file on the machine running kplay, used instead
  of server. Only that file is read: an empty kubeconfig, or one without
  a current context whose cluster has a server, is an error (never the
  service account of a pod kplay runs in).
- ca, cert, key_file: for an https server, the CA certificate that the
  server's certificate must chain to (else the system's roots), and a
  client certificate and its key, as for wait_http. A kubeconfig names
  its own, so these go with server only. Verification cannot be turned
  off.
- sensitive: never print the object, only its size and fingerprint. None
  lets the secret rule decide, as for file(): a Secret, an object holding
  a private key, credentials or a sensitive var, or a name with "secret"
  or "token" in it.
- once: "cluster" makes the step run on one host of a fleet run (kplay
  run --inventory or --hosts): the first host to take it in etcd (see
  docs/fleet.md), or the fleet's first host without etcd; the others list
  it as unchanged, "done by" that host. A single-host run ignores it.`

// kubeCreate implements the kube_create builtin; see kubeCreateDoc.
func kubeCreate(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	s := &kubeCreateStep{}
	var obj kubeObject
	server := absURL{example: "http://127.0.0.1:8080", url: "http://127.0.0.1:8080"}
	var kubeconfig, ca, cert, keyFile string
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs,
		"obj", &obj,
		"server?", &server,
		"kubeconfig?", &kubeconfig,
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
	s.obj, s.cfg.Server = obj.obj, server.url
	var err error
	if kubeconfig != "" {
		if ca != "" || cert != "" || keyFile != "" {
			return nil, fmt.Errorf("%s: give ca, cert and key_file with server, not with kubeconfig (a kubeconfig names its own CA and client certificate)", fn.Name())
		}
		if s.cfg.Kubeconfig, err = localPath(thread, kubeconfig); err != nil {
			return nil, err
		}
	}
	if s.cfg.TLS, err = tlsFiles(thread, fn, ca, cert, keyFile, s.cfg.Server); err != nil {
		return nil, err
	}
	s.meta.Kind, s.meta.Resource = "kube_create", objectName(s.obj)
	s.meta.Target = s.meta.Resource
	// The content rule sees the object's YAML when the step is diffed.
	s.meta.Sensitive = s.meta.Sensitive.Decide([]string{s.meta.Target}, nil, 0, false)
	if holdsSecret(thread, obj.value) {
		s.meta.Sensitive = engine.SensitiveYes // the flow rule, before YAML folds the value
	}
	return engine.Record(thread, s)
}

// kubeObject is kube_create's obj=: an API object (apiObject). value is
// the argument as given, for the flow rule. Unpack's errors: those of
// apiObject.
type kubeObject struct {
	value starlark.Value
	obj   map[string]any
}

func (o *kubeObject) Unpack(v starlark.Value) error {
	obj, err := apiObject(v)
	if err != nil {
		return err
	}
	o.value, o.obj = v, obj
	return nil
}

// apiObject turns a dict or YAML text into an unstructured object with
// apiVersion, kind and metadata.name.
func apiObject(v starlark.Value) (map[string]any, error) {
	var obj map[string]any
	if text, ok := starlark.AsString(v); ok {
		if err := yaml.UnmarshalStrict([]byte(text), &obj); err != nil {
			return nil, fmt.Errorf("not a YAML object: %v", err)
		}
	} else {
		g, err := ToGo(v)
		if err != nil {
			return nil, err
		}
		m, ok := g.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("got %s, want a dict or YAML text", v.Type())
		}
		// Through JSON, so numbers and nesting are what the API expects.
		data, err := yaml.Marshal(m)
		if err != nil {
			return nil, err
		}
		if err := yaml.Unmarshal(data, &obj); err != nil {
			return nil, err
		}
	}
	for _, field := range []string{"apiVersion", "kind"} {
		if s, _ := obj[field].(string); s == "" {
			return nil, fmt.Errorf("%s is missing (such as %s)", field, map[string]string{"apiVersion": `"v1"`, "kind": `"Namespace"`}[field])
		}
	}
	meta, _ := obj["metadata"].(map[string]any)
	if name, _ := meta["name"].(string); name == "" {
		return nil, fmt.Errorf("metadata.name is missing")
	}
	return obj, nil
}

// objectName names an object for a person: Namespace/kube-system, or
// ConfigMap/kube-system/x for a namespaced one.
func objectName(obj map[string]any) string {
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	if ns, _ := meta["namespace"].(string); ns != "" {
		name = ns + "/" + name
	}
	return fmt.Sprintf("%s/%s", obj["kind"], name)
}

type kubeCreateStep struct {
	meta engine.StepMeta
	obj  map[string]any
	cfg  host.KubeConfig
}

func (s *kubeCreateStep) Meta() *engine.StepMeta { return &s.meta }

func (s *kubeCreateStep) Diff(ctx context.Context, h host.Host) (engine.Change, error) {
	kube, err := h.Kube(s.cfg)
	if err != nil {
		return engine.Change{}, err
	}
	exists, err := kube.Exists(ctx, s.obj)
	if err != nil || exists {
		return engine.Change{}, s.hint(err)
	}
	data, err := yaml.Marshal(s.obj)
	if err != nil {
		return engine.Change{}, err
	}
	return engine.Change{Action: engine.Create, Summary: "create on " + s.server(), After: data}, nil
}

// hint adds to err the TLS arguments that may mend it, unless a
// kubeconfig names the server: those are the kubeconfig's to mend.
func (s *kubeCreateStep) hint(err error) error {
	if s.cfg.Kubeconfig != "" {
		return err
	}
	return withTLSHint(err)
}

func (s *kubeCreateStep) server() string {
	if s.cfg.Kubeconfig != "" {
		return "the server of " + s.cfg.Kubeconfig
	}
	return host.RedactURLs(s.cfg.Server)
}

// Prefetch asks whether the object exists; the dry host keeps the answer
// for Diff.
func (s *kubeCreateStep) Prefetch(ctx context.Context, h host.Host) {
	if kube, err := h.Kube(s.cfg); err == nil {
		_, _ = kube.Exists(ctx, s.obj)
	}
}

func (s *kubeCreateStep) Apply(ctx context.Context, h host.Host, c engine.Change) error {
	kube, err := h.Kube(s.cfg)
	if err != nil {
		return err
	}
	created, err := kube.Create(ctx, s.obj)
	var answer host.AnswerError
	if err != nil && c.Sensitive && errors.As(err, &answer) {
		// The server may quote the object back, data and all.
		return errors.New(answer.Brief() + " (the server's answer is not shown: the object is sensitive)")
	}
	if err != nil {
		return s.hint(err)
	}
	if !created {
		return &engine.NoChange{Reason: "already created by another writer"}
	}
	return nil
}
