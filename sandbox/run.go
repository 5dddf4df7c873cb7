package sandbox

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"slices"
	"strings"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/ui"
)

// Run is kplay run of plan on h, in memory: a recording host.Dry over h
// takes every write. It returns the results, with every sensitive
// change's Fingerprint cleared (a sandbox's fingerprint key is made at
// random by its first run, so its fingerprints would differ from one run
// to the next), what the run did (Effects), and the Dry, which holds the
// machine as the run left it.
func Run(ctx context.Context, plan *engine.Plan, h host.Host, sel engine.Selection) ([]engine.Result, *Effects, *host.Dry, error) {
	dry := host.NewDry(h)
	dry.Record()
	results, err := engine.Converge(ctx, plan, dry, sel, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	results = slices.Clone(results)
	for i := range results {
		results[i].Change.Fingerprint = ""
	}
	return results, effectsOf(results, dry.Ops()), dry, nil
}

// Effects are what a run did, in the terms a review reads.
type Effects struct {
	// Written and Removed are the paths the run wrote (or made, or
	// changed the mode or owner of) and removed, sorted, without kplay's
	// own state (under host.StateDir: the journal, a ledger, the
	// fingerprint key).
	Written, Removed []string
	// Restarts are the units restarted, in plan order: on an offline
	// root, the restarts whose on_change fired (engine.OfflineRoot).
	Restarts []string
	// Etcd are the keys set, with their values as written, secrets too:
	// for comparing, never for showing. EtcdShown are the values to show
	// (a sensitive value is ui.Sensitive's marker); EtcdKeys orders the
	// keys as the plan does.
	Etcd, EtcdShown map[string]string
	EtcdKeys        []string
	// Objects are the API objects created, as their steps name them
	// ("Namespace/kube-system"), in plan order; ObjectContent, what each
	// was created with (its JSON), and ObjectSensitive, whether that is
	// sensitive.
	Objects         []string
	ObjectContent   map[string][]byte
	ObjectSensitive map[string]bool
	// Requests are the HTTP requests sent, or planned and not sent on
	// the dry host (http_post), in plan order: "POST http://...".
	Requests []Request
}

// Request is one HTTP request a run sent.
type Request struct {
	Target    string // "POST http://10.0.0.1:8080/x", a URL's password redacted
	Body      []byte
	Sensitive bool
}

// Restarts reports whether r is a restart that ran, or would run on a
// machine: a restart step that changed, or that was reached on an
// offline root.
func Restarts(r engine.Result) bool {
	rs, ok := r.Step.(engine.Restarter)
	return ok && rs.Restarts() && (r.Status == engine.Changed || r.Cause == engine.OfflineRoot)
}

func effectsOf(results []engine.Result, ops []host.Op) *Effects {
	e := &Effects{Etcd: map[string]string{}, EtcdShown: map[string]string{},
		ObjectContent: map[string][]byte{}, ObjectSensitive: map[string]bool{}}
	for _, r := range results {
		m := r.Step.Meta()
		if u, ok := r.Step.(engine.UnitStep); ok && Restarts(r) {
			e.Restarts = append(e.Restarts, u.Unit())
		}
		if !r.Changes() {
			continue
		}
		switch m.Kind {
		case "etcd_put":
			// etcd_put shows the value as a line of text.
			value := strings.TrimSuffix(string(r.Change.After), "\n")
			shown := value
			if r.Change.Sensitive {
				shown = ui.Sensitive(r.Change)
			}
			if _, ok := e.Etcd[m.Target]; !ok {
				e.EtcdKeys = append(e.EtcdKeys, m.Target)
			}
			e.Etcd[m.Target], e.EtcdShown[m.Target] = value, shown
		case "kube_create":
			e.Objects = append(e.Objects, m.Target)
			e.ObjectContent[m.Target], e.ObjectSensitive[m.Target] = r.Change.After, r.Change.Sensitive
		case "http_post":
			e.Requests = append(e.Requests, Request{Target: m.Target, Body: r.Change.After, Sensitive: r.Change.Sensitive})
		}
	}
	written, removed := map[string]bool{}, map[string]bool{}
	for _, op := range ops {
		if op.State || op.At == host.StateDir || strings.HasPrefix(op.At, host.StateDir+"/") {
			continue // kplay's own state: the journal, a ledger, the fingerprint key
		}
		if op.Kind == host.OpRemove {
			removed[op.At] = true
			delete(written, op.At)
		} else {
			written[op.At] = true
			delete(removed, op.At)
		}
	}
	e.Written, e.Removed = slices.Sorted(maps.Keys(written)), slices.Sorted(maps.Keys(removed))
	return e
}

// File is the state of one path of a machine.
type File struct {
	Path string
	// Kind is "file", "directory", "symlink", "absent", or another kind
	// as host.Kind names it ("a named pipe").
	Kind     string
	Mode     fs.FileMode // permission bits
	UID, GID int
	Content  []byte // a file's
	Target   string // a symlink's
}

// Stat returns the state of path on h.
func Stat(ctx context.Context, h host.Host, path string) (File, error) {
	f := File{Path: path}
	fi, err := h.Lstat(ctx, path)
	if errors.Is(err, fs.ErrNotExist) {
		f.Kind = "absent"
		return f, nil
	}
	if err != nil {
		return f, err
	}
	f.Mode, f.UID, f.GID = fi.Mode.Perm(), fi.UID, fi.GID
	switch {
	case fi.Mode.IsRegular():
		f.Kind = "file"
		f.Content, err = h.ReadFile(ctx, path)
	case fi.Mode.IsDir():
		f.Kind = "directory"
	case fi.Mode&fs.ModeSymlink != 0:
		f.Kind = "symlink"
		f.Target, err = h.Readlink(ctx, path)
	default:
		f.Kind = host.Kind(fi.Mode)
	}
	return f, err
}
