package builtins

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
)

const etcdPutDoc = `etcd_put(key, value, endpoints, if_absent=False, ca=None, cert=None, key_file=None, sensitive=None, tags=[], on_change=[], once=None)
Declares that the etcd key (v2 keys API) holds value. The diff reads the
key: absent is a create, equal is unchanged, different is an update shown
as a diff. JSON values are compared as JSON, so key order or spacing alone
is not a change. The cluster is asked only when the plan is diffed.

- key: the key, such as "/coreos.com/network/config".
- value: a string, or a dict or list written as compact JSON with sorted
  keys.
- endpoints: the cluster's client URLs: a list (a urls var) or a
  comma-separated string. Each is tried in turn.
- if_absent: write only if the key does not exist, for once-per-cluster
  values that several masters may race to set. An existing key, or losing
  the race, is unchanged (never overwritten).
- ca, cert, key_file: TLS files on the machine running kplay (relative to
  the playbook's directory), for clusters that need them.
- sensitive: never print the value, old or new, only its size and
  fingerprint. None lets the secret rule decide, as for file(): a key
  with "secret" or "token" in it, a value holding a private key,
  credentials or a sensitive var.
- once: "cluster" makes the step run on one host of a fleet run (kplay
  run --inventory or --hosts): the first host to take it in etcd (see
  docs/fleet.md), or the fleet's first host without etcd; the others list
  it as unchanged, "done by" that host. A single-host run ignores it.`

// etcdPut implements the etcd_put builtin; see etcdPutDoc.
func etcdPut(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	s := &etcdPutStep{}
	var value etcdValue
	var endpoints urlList
	var ca, cert, keyFile string
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs,
		"key", &s.key,
		"value", &value,
		"endpoints", &endpoints,
		"if_absent?", &s.ifAbsent,
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
	if !strings.HasPrefix(s.key, "/") || strings.Contains(s.key, "//") {
		return nil, fmt.Errorf("%s: key %q must be an absolute key such as \"/coreos.com/network/config\"", fn.Name(), s.key)
	}
	s.value, s.cfg.Endpoints = value.text, endpoints
	var err error
	if s.cfg.TLS, err = tlsFiles(thread, fn, ca, cert, keyFile, s.cfg.Endpoints...); err != nil {
		return nil, err
	}
	s.meta.Kind, s.meta.Target, s.meta.Resource = "etcd_put", s.key, s.key
	s.meta.Sensitive = s.meta.Sensitive.Decide([]string{s.key}, []byte(s.value), 0, false)
	if holdsSecret(thread, value.value) {
		s.meta.Sensitive = engine.SensitiveYes // the flow rule, before JSON escapes the value
	}
	return engine.Record(thread, s)
}

type etcdPutStep struct {
	meta     engine.StepMeta
	key      string
	value    string
	ifAbsent bool
	cfg      host.EtcdConfig
}

func (s *etcdPutStep) Meta() *engine.StepMeta { return &s.meta }

// Text is true: the value is one text, diffed as a file's content is
// (engine.Texter).
func (s *etcdPutStep) Text() bool { return true }

func (s *etcdPutStep) Diff(ctx context.Context, h host.Host) (engine.Change, error) {
	etcd, err := h.Etcd(s.cfg)
	if err != nil {
		return engine.Change{}, err
	}
	cur, err := etcd.Get(ctx, s.key)
	if err != nil {
		return engine.Change{}, err
	}
	after := []byte(s.value + "\n")
	switch {
	case !cur.Exists:
		return engine.Change{Action: engine.Create, Summary: fmt.Sprintf("%d bytes", len(s.value)), After: after}, nil
	case sameValue(cur.Value, s.value):
		return engine.Change{}, nil
	case s.ifAbsent:
		return engine.Change{Summary: "set already; if_absent keeps it"}, nil
	}
	return engine.Change{Action: engine.Update, Summary: "value changed", Before: []byte(cur.Value + "\n"), After: after}, nil
}

// Prefetch reads the key, which the dry host keeps for Diff.
func (s *etcdPutStep) Prefetch(ctx context.Context, h host.Host) {
	if etcd, err := h.Etcd(s.cfg); err == nil {
		_, _ = etcd.Get(ctx, s.key)
	}
}

func (s *etcdPutStep) Apply(ctx context.Context, h host.Host, c engine.Change) error {
	etcd, err := h.Etcd(s.cfg)
	if err != nil {
		return err
	}
	if engine.ReviewedPlan(ctx) && !s.ifAbsent {
		// What the Diff saw, which the plan holds: write only over it.
		prev := host.EtcdValue{Exists: c.Action == engine.Update, Value: strings.TrimSuffix(string(c.Before), "\n")}
		if err := etcd.Swap(ctx, s.key, s.value, prev); err != nil {
			if errors.Is(err, host.ErrEtcdSwap) {
				return fmt.Errorf("drift: %w since the plan's check; not written (make the plan again: kplay check --out)", err)
			}
			return err
		}
		return nil
	}
	created, err := etcd.Set(ctx, s.key, s.value, s.ifAbsent)
	if err != nil {
		return err
	}
	if s.ifAbsent && !created {
		return &engine.NoChange{Reason: "already set by another writer"}
	}
	return nil
}

// sameValue compares two values as JSON when both are JSON, else as text.
func sameValue(a, b string) bool {
	if a == b {
		return true
	}
	var ja, jb any
	if json.Unmarshal([]byte(a), &ja) != nil || json.Unmarshal([]byte(b), &jb) != nil {
		return false
	}
	return reflect.DeepEqual(ja, jb)
}

// urlList is a list of absolute URLs (checkURL), given as a list or as a
// comma-separated string, such as etcd_put's endpoints=. Unpack's errors:
// not a list or string; an item that is not a string or not an absolute
// URL; no URLs.
type urlList []string

func (l *urlList) Unpack(v starlark.Value) error {
	var parts []string
	if s, ok := starlark.AsString(v); ok {
		parts = strings.Split(s, ",")
	} else {
		items, err := engine.Sequence(v)
		if err != nil {
			return fmt.Errorf("got %s, want a list of URLs or a comma-separated string", v.Type())
		}
		for _, item := range items {
			s, ok := starlark.AsString(item)
			if !ok {
				return fmt.Errorf("got %s in list, want a URL string", item.Type())
			}
			parts = append(parts, s)
		}
	}
	var urls urlList
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if err := checkURL(p, "http://127.0.0.1:2379"); err != nil {
			return err
		}
		urls = append(urls, p)
	}
	if len(urls) == 0 {
		return fmt.Errorf("no URLs (give at least one, such as http://127.0.0.1:2379)")
	}
	*l = urls
	return nil
}

// etcdValue is etcd_put's value=: a string as it is (bodyArg), or a
// dict or list written as compact JSON with sorted keys (jsonArg).
// Unpack's error: a value JSON cannot hold.
type etcdValue textArg

func (e *etcdValue) Unpack(v starlark.Value) error {
	if _, ok := starlark.AsString(v); ok {
		return (*bodyArg)(e).Unpack(v)
	}
	return (*jsonArg)(e).Unpack(v)
}
