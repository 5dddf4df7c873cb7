package engine

import (
	"cmp"
	"context"
	"fmt"
	"regexp"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/host"
)

// Step is one thing a playbook declares. Diff reads the host and says what
// would change; Apply makes that change. Diff never writes, and Apply is
// only called with the Change that Diff just returned for the same host.
type Step interface {
	Meta() *StepMeta
	Diff(ctx context.Context, h host.Host) (Change, error)
	Apply(ctx context.Context, h host.Host, c Change) error
}

// Restarter is a step that restarts a unit when it runs (systemctl
// restart and try-restart): the closing count of check and run names
// restarts apart from other actions, as what a reader looks for first.
type Restarter interface {
	Restarts() bool
}

// UnitStep is a step that acts on one unit (systemctl): Unit is its name
// ("kubelet.service"), "" for daemon-reload. A rolling restart takes the
// lock of this unit (RollingLockName); kplay test and kplay diff name
// the restarts of a plan by it.
type UnitStep interface {
	Unit() string
}

// InRoot is a step whose Resource is a path in the root: a file, unit
// file, drop-in, manifest or directory, or the removal of one. Its
// content change is shown as a file diff, and a reviewed plan checks
// where its path lands. Other steps' resources (an etcd key, a URL, a
// unit action) are never paths, even when they start with "/".
type InRoot interface {
	InRoot() bool
}

// RootPath returns the path in the root that s acts on (its Resource,
// secrets redacted; as for Key, a test's fake without a Resource gives
// its Target), if s acts on one (InRoot), as a step of the playbook or
// as the removal of one that the playbook no longer declares.
func RootPath(s Step) (string, bool) {
	if p, ok := inner(s).(InRoot); ok && p.InRoot() {
		return s.Meta().resource(), true
	}
	return "", false
}

// Texter is a step whose content is one text but not a file in the root
// (an etcd value): its change is shown, as a file's is, as a unified
// diff under headers that name its Resource.
type Texter interface {
	Text() bool
}

// TextName returns the name a unified diff of s's content is headed
// with: its path in the root (RootPath), or the Resource of a Texter.
// ok is false for a step whose Before and After are lists of lines (the
// symlinks of systemctl enable, an API object's YAML).
func TextName(s Step) (string, bool) {
	if p, ok := RootPath(s); ok {
		return p, true
	}
	if t, ok := s.(Texter); ok && t.Text() {
		return s.Meta().resource(), true
	}
	return "", false
}

// LocalSourcer is a step that reads files on the machine running kplay
// when it is diffed or applied (a file's src, the TLS files and the
// kubeconfig of a step that talks to a server), not in the root: a fleet
// run ships them to each host with the playbook. Names are as host.ReadLocal takes
// them: absolute, or relative to the working directory.
type LocalSourcer interface {
	LocalSources() []string
}

// Prefetcher is a step whose Diff waits on the network (etcd, an API
// server). Check calls Prefetch of every selected such step at its start,
// each in its own goroutine, so that those round trips overlap with the
// other steps' work instead of adding up. Prefetch reads through h, a dry
// host, what Diff will read: the dry host reads its base once and keeps
// the answer, which Diff then gets, error included. Prefetch reports
// nothing and must not change anything.
type Prefetcher interface {
	Prefetch(ctx context.Context, h host.Host)
}

// Verifier is a step that also checks what the whole plan leaves, which
// no single Diff sees: a unit file is loaded with drop-ins that later
// steps declare. Check calls Verify of every selected Verifier once every
// Diff has run on the dry host, in plan order; an error stops the check,
// and so the run, before the first write.
type Verifier interface {
	Verify(ctx context.Context, h host.Host) error
}

// StepMeta is what the engine knows about every step, whatever its kind.
// Builtins fill Kind, Target, Resource, Tags and OnChange; Record fills
// ID and Pos; Evaluate redacts secrets in Target and Resource.
type StepMeta struct {
	Kind   string // the builtin's name: "file", "directory"
	Target string // what it acts on, for a person: "/etc/motd"; free to reword
	// Resource is what the step acts on in the canonical form its
	// builtin defines: a path, an etcd key, a unit action ("restart
	// kubelet.service"). With Kind it is the step's identity across runs
	// (Key), which the journal of owed actions stores; rewording Target
	// leaves it alone.
	Resource string
	ID       int      // index in Plan.Steps
	Pos      Pos      // where the playbook called the builtin
	Tags     Tags     // from tags=[...]
	OnChange OnChange // from on_change=[...]: the step runs only if one of these changed
	Reload   Reload   // how the step takes part in daemon-reload batching
	// Sensitive is the step's sensitive= argument after the rules its
	// builtin applies when called (Sensitivity.Decide).
	Sensitive Sensitivity
	// Once is once = "cluster": in a fleet run, one host applies the
	// step (see Coordinator).
	Once Once
	// Rolling is a restart's rolling = True: in a fleet run, no two
	// hosts restart the unit at once (see Coordinator).
	Rolling bool
}

// Key is the step's identity across runs: its kind and Resource
// ("systemctl restart kubelet.service"), secrets redacted. The journal
// of owed actions names steps by it, so that a run owes the same action
// whatever the wording of Target. A step without a Resource (a test's
// fake) is known by its Target.
func (m *StepMeta) Key() string { return m.Kind + " " + m.resource() }

// resource is Resource, or Target for a step without one (a test's
// fake).
func (m *StepMeta) resource() string { return cmp.Or(m.Resource, m.Target) }

// Lander is a Claimer whose resource is a path in the root, which a
// symlink in the root may lead to the path of another step (on an image,
// /etc/kubernetes/cni/net.d -> /etc/cni/net.d). Land returns the path it
// lands on, its directories' symlinks resolved; Check refuses two steps
// that land on one path with different claims, as Record refuses two
// that name it alike.
type Lander interface {
	Claimer
	Land(ctx context.Context, h host.Host) (string, error)
}

// Grouper is a step that configures one thing together with others,
// such as a unit's file and its drop-ins: when a run removes a step of
// the group that the playbook no longer declares (see Pruner), a step
// whose on_change names any step of the group runs, as if that step had
// changed: a service restarts without the old drop-in's lines.
type Grouper interface {
	Group() string
}

// Reload says how a step takes part in daemon-reload batching: a changed
// unit file makes a reload pending; the engine runs one pending reload
// before the next step that talks to systemd, or at the end of the plan.
type Reload int

// The roles of a step in daemon-reload batching.
const (
	NoReload    Reload = iota
	UnitFile           // a change to this step's file needs a daemon-reload
	NeedsReload        // talks to systemd: a pending daemon-reload runs first
	IsReload           // an explicit daemon-reload: it runs only if one is pending
)

// Claimer is a step that owns a resource, such as the file at a path. Two
// steps of a plan may claim the same resource only with the same
// fingerprint (its content, mode and owner): otherwise the plan would
// flip it back and forth, and evaluation fails naming both positions.
type Claimer interface {
	Claim() (resource, fingerprint string)
}

// Action is the kind of change a step makes.
type Action int

// The actions, in the order the closing count lists them.
const (
	None Action = iota
	Create
	Update
	Delete
	Run
	Wait // waits for something (wait_http): applied and listed, never a change
)

var actionNames = [...]string{None: "none", Create: "create", Update: "update", Delete: "delete", Run: "run", Wait: "wait"}

func (a Action) String() string { return actionNames[a] }

// Changes reports whether the action changes the machine.
func (a Action) Changes() bool { return a != None && a != Wait }

// NoChange is returned by an Apply that found, at the last moment, that
// there was nothing to do: another writer set the etcd key or created the
// API object first. The engine reports the step as unchanged, with Reason.
type NoChange struct{ Reason string }

func (nc *NoChange) Error() string { return "no change: " + nc.Reason }

// Change is what a step would do (check) or did (run). Before and After
// are file contents for text diffs and empty for actions. When Sensitive is
// set, Before and After must never be shown; ui prints the size of After
// and its Fingerprint. The engine sets Sensitive by the secret rule (see
// Sensitivity) whatever the step said, and Fingerprint.
type Change struct {
	Action    Action
	Summary   string // one line a person reads: "mode 0644 → 0600"
	Before    []byte
	After     []byte
	Sensitive bool
	// Fingerprint stands for After when Sensitive: a keyed hash (16 hex
	// digits) that cannot be turned back into a short secret, or "" when
	// the root has no key yet (FingerprintKeyFile).
	Fingerprint string
	// Parents are the missing directories that Apply makes on the way
	// to a path it creates, deepest last: the ledger records them as
	// made by kplay, so that they go when nothing declared is below them.
	Parents []string
	// Keep, from a step that prunes an object (engine.Pruner), says the
	// object stays (a directory that is not empty): the ledger keeps
	// listing it, to try again at the next run.
	Keep bool
}

// Handle is the Starlark value a builtin returns: it names the step so a
// later step can say on_change=[handle].
type Handle struct {
	id     int
	kind   string
	target string
}

var _ starlark.Value = (*Handle)(nil)

// ID returns the index of the step in its plan.
func (h *Handle) ID() int { return h.id }

func (h *Handle) String() string        { return fmt.Sprintf("<%s %s>", h.kind, h.target) }
func (h *Handle) Type() string          { return "step" }
func (h *Handle) Freeze()               {}
func (h *Handle) Truth() starlark.Bool  { return starlark.True }
func (h *Handle) Hash() (uint32, error) { return uint32(h.id), nil }

// Tags are the tags=[...] of a step. Unpack accepts a list or tuple of
// tag names made of lowercase letters, digits, "-" and "_".
type Tags []string

var tagPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// Unpack implements starlark.Unpacker.
func (t *Tags) Unpack(v starlark.Value) error {
	items, err := Sequence(v)
	if err != nil {
		return err
	}
	var tags Tags
	for _, item := range items {
		s, ok := starlark.AsString(item)
		if !ok {
			return fmt.Errorf("got %s in list, want string", item.Type())
		}
		if !tagPattern.MatchString(s) {
			return fmt.Errorf("tag %q must be lowercase letters, digits, - or _ (for example \"api\")", s)
		}
		tags = append(tags, s)
	}
	*t = tags
	return nil
}

// OnChange holds the step IDs of on_change=[handle, ...]. Unpack accepts
// a list or tuple of the values that builtins return.
type OnChange []int

// Unpack implements starlark.Unpacker.
func (o *OnChange) Unpack(v starlark.Value) error {
	items, err := Sequence(v)
	if err != nil {
		return err
	}
	var ids OnChange
	for _, item := range items {
		h, ok := item.(*Handle)
		if !ok {
			return fmt.Errorf("got %s in list, want a step (the value a builtin such as file() returns)", item.Type())
		}
		ids = append(ids, h.id)
	}
	*o = ids
	return nil
}

// Sequence returns the items of a Starlark list or tuple; any other value
// is an error "got <type>, want list".
func Sequence(v starlark.Value) ([]starlark.Value, error) {
	switch v := v.(type) {
	case *starlark.List:
		out := make([]starlark.Value, v.Len())
		for i := range out {
			out[i] = v.Index(i)
		}
		return out, nil
	case starlark.Tuple:
		return v, nil
	}
	return nil, fmt.Errorf("got %s, want list", v.Type())
}
