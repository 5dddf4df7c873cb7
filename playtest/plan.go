package playtest

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/kplay-dev/kplay/builtins"
	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/sandbox"
	"github.com/kplay-dev/kplay/ui"
)

// planArgs are the arguments of plan_of and converge_of.
type planArgs struct {
	playbook string
	vars     map[string]string
	seed     sandbox.Seed
	from     *state // root = an earlier converge_of's state, in place of seed
	sel      engine.Selection
}

// state is the machine a converge_of left: root = c.state starts a later
// plan_of or converge_of from it (a K8S_VER change after a first run).
type state struct{ h host.Host }

func (*state) String() string        { return "<sandbox state>" }
func (*state) Type() string          { return "state" }
func (*state) Freeze()               {}
func (*state) Truth() starlark.Bool  { return true }
func (*state) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: state") }

// machine returns the host a plan of pa starts from: the state it names,
// or a new sandbox closed when the test ends.
func (r *runner) machine(ctx context.Context, pa planArgs) (host.Host, error) {
	if pa.from != nil {
		return pa.from.h, nil
	}
	seed := pa.seed
	seed.LocalDir, seed.LocalTree = r.workDir, r.opts.Tree
	m, err := sandbox.New(ctx, seed)
	if err != nil {
		return nil, err
	}
	r.closers = append(r.closers, m.Close)
	return m, nil
}

func (r *runner) unpackPlan(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (planArgs, error) {
	var (
		playbook       string
		vars, etcd     *starlark.Dict
		root           starlark.Value = starlark.None
		objects        *starlark.List
		tags, skipTags *starlark.List
		pa             planArgs
		err            error
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "playbook", &playbook, "vars?", &vars, "root?", &root,
		"etcd?", &etcd, "objects?", &objects, "tags?", &tags, "skip_tags?", &skipTags); err != nil {
		return pa, err
	}
	if pa.playbook, err = r.path(playbook); err != nil {
		return pa, fmt.Errorf("%s: playbook %w", b.Name(), err)
	}
	if pa.vars, err = stringDict(vars, varString); err != nil {
		return pa, fmt.Errorf("%s: vars: %w", b.Name(), err)
	}
	if pa.seed.Etcd, err = stringDict(etcd, exactString); err != nil {
		return pa, fmt.Errorf("%s: etcd: %w", b.Name(), err)
	}
	switch root := root.(type) {
	case *state:
		if etcd != nil || objects != nil {
			return pa, fmt.Errorf("%s: etcd and objects come with root = state, from the converge_of that made it", b.Name())
		}
		pa.from = root
	case starlark.NoneType:
	case starlark.String:
		if pa.seed.Dir, err = r.path(string(root)); err != nil {
			return pa, fmt.Errorf("%s: root %w", b.Name(), err)
		}
	case *starlark.Dict:
		if pa.seed.Files, err = stringDict(root, exactString); err != nil {
			return pa, fmt.Errorf("%s: root: %w", b.Name(), err)
		}
	default:
		return pa, fmt.Errorf("%s: root: got %s, want a directory (a string), a dict of path: content, or a converge_of's state", b.Name(), root.Type())
	}
	if objects != nil {
		for i := range objects.Len() {
			obj, err := builtins.ToGo(objects.Index(i))
			m, ok := obj.(map[string]any)
			if err != nil || !ok {
				return pa, fmt.Errorf("%s: objects[%d]: want a dict such as {\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"x\"}}", b.Name(), i)
			}
			pa.seed.Objects = append(pa.seed.Objects, m)
		}
	}
	if pa.sel.Tags, err = stringList(tags); err != nil {
		return pa, fmt.Errorf("%s: tags: %w", b.Name(), err)
	}
	if pa.sel.SkipTags, err = stringList(skipTags); err != nil {
		return pa, fmt.Errorf("%s: skip_tags: %w", b.Name(), err)
	}
	return pa, nil
}

// evaluate evaluates the playbook of pa as kplay check does.
func (r *runner) evaluate(ctx context.Context, pa planArgs) (*engine.Plan, error) {
	plan, err := engine.Evaluate(ctx, engine.EvalOptions{
		Playbook: pa.playbook,
		Vars:     pa.vars,
		Builtins: r.opts.Builtins,
		WorkDir:  r.workDir,
		Print: func(pos engine.Pos, msg string) {
			if r.opts.Log != nil {
				r.opts.Log(r.test, pos.String()+": "+msg)
			}
		},
	})
	if plan != nil && plan.Secrets != nil {
		// The test's messages may quote a secret it compared.
		r.secrets = append(r.secrets, plan.Secrets)
	}
	return plan, err
}

// prepare does what plan_of and converge_of share: it unpacks their
// arguments, evaluates the playbook and returns the plan with the host
// it starts from.
func (r *runner) prepare(ctx context.Context, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (*engine.Plan, host.Host, engine.Selection, error) {
	pa, err := r.unpackPlan(b, args, kwargs)
	if err != nil {
		return nil, nil, engine.Selection{}, err
	}
	plan, err := r.evaluate(ctx, pa)
	if err != nil {
		return nil, nil, pa.sel, err
	}
	h, err := r.machine(ctx, pa)
	return plan, h, pa.sel, err
}

// planOf is plan_of(playbook, vars = {}, root = None, etcd = {},
// objects = [], tags = [], skip_tags = []): the outcome of kplay check of
// the playbook against a sandbox seeded from the arguments.
func (r *runner) planOf(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	ctx := threadContext(thread)
	plan, m, sel, err := r.prepare(ctx, b, args, kwargs)
	if err != nil {
		return nil, err
	}
	// A run in memory: the results are check's, and the effects say
	// what a run would do.
	results, effects, _, err := sandbox.Run(ctx, plan, m, sel)
	if err != nil {
		return nil, err
	}
	return outcome(results, effects, plan.Secrets), nil
}

// convergeOf is converge_of(...), with plan_of's arguments: kplay run of
// the playbook against the sandbox, in memory, then a second run on what
// the first left. It returns struct(first, second), each like plan_of's
// value, and state, the machine the runs left (root = state starts a
// later plan from it); the second of an idempotent playbook changes
// nothing.
func (r *runner) convergeOf(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	ctx := threadContext(thread)
	plan, h, sel, err := r.prepare(ctx, b, args, kwargs)
	if err != nil {
		return nil, err
	}
	var runs [2]starlark.Value
	for i := range runs {
		results, effects, dry, err := sandbox.Run(ctx, plan, h, sel)
		if err != nil {
			return nil, fmt.Errorf("%s run: %w", []string{"first", "second"}[i], err)
		}
		runs[i] = outcome(results, effects, plan.Secrets)
		h = dry
	}
	return starlarkstruct.FromStringDict(starlark.String("converge"), starlark.StringDict{
		"first": runs[0], "second": runs[1], "state": &state{h: h},
	}), nil
}

// outcome is the value plan_of returns for the results and effects of a
// run (sandbox.Run): struct(steps, changed, written, removed, restarts,
// etcd, objects, counts). Every list is in plan order or sorted; nothing
// holds a sensitive value (its diff is its size, as check prints it).
func outcome(results []engine.Result, e *sandbox.Effects, secrets *engine.Secrets) starlark.Value {
	redact := func(list []string) *starlark.List {
		out := make([]string, len(list))
		for i, s := range list {
			out[i] = secrets.Redact(s)
		}
		return strings2list(out)
	}
	docs := ui.DocSteps(results)
	var steps, changed []starlark.Value
	for i, r := range results {
		d := docs[i]
		m := r.Step.Meta()
		onChange := make([]starlark.Value, len(m.OnChange))
		for j, id := range m.OnChange {
			onChange[j] = starlark.MakeInt(id)
		}
		step := starlarkstruct.FromStringDict(starlark.String("step"), starlark.StringDict{
			"id": starlark.MakeInt(d.ID), "position": starlark.String(d.Position),
			"kind": starlark.String(d.Kind), "target": starlark.String(d.Target),
			"status": starlark.String(d.Status), "action": starlark.String(d.Action),
			"summary": starlark.String(d.Summary), "reason": starlark.String(d.Reason),
			"diff": starlark.String(d.Diff), "sensitive": starlark.Bool(d.Sensitive),
			"tags": strings2list(d.Tags), "on_change": starlark.NewList(onChange),
			"restart": starlark.Bool(sandbox.Restarts(r)),
		})
		steps = append(steps, step)
		if r.Status == engine.Changed {
			changed = append(changed, step)
		}
	}
	etcd := starlark.NewDict(len(e.EtcdKeys))
	for _, k := range e.EtcdKeys {
		_ = etcd.SetKey(starlark.String(secrets.Redact(k)), starlark.String(secrets.Redact(e.EtcdShown[k])))
	}
	c := ui.Count(results)
	counts := starlarkstruct.FromStringDict(starlark.String("counts"), starlark.StringDict{
		"create": starlark.MakeInt(c.Create), "update": starlark.MakeInt(c.Update),
		"delete": starlark.MakeInt(c.Delete), "run": starlark.MakeInt(c.Run),
		"restart": starlark.MakeInt(c.Restart), "unchanged": starlark.MakeInt(c.Unchanged),
		"skipped": starlark.MakeInt(c.Skipped), "changes": starlark.MakeInt(engine.Changes(results)),
	})
	v := starlarkstruct.FromStringDict(starlark.String("plan"), starlark.StringDict{
		"steps": starlark.NewList(steps), "changed": starlark.NewList(changed),
		"written": redact(e.Written), "removed": redact(e.Removed),
		"restarts": redact(e.Restarts), "etcd": etcd,
		"objects": redact(e.Objects), "counts": counts,
	})
	v.Freeze()
	return v
}

func strings2list(ss []string) *starlark.List {
	vs := make([]starlark.Value, len(ss))
	for i, s := range ss {
		vs[i] = starlark.String(s)
	}
	return starlark.NewList(vs)
}

// stringDict turns a dict of strings to values into a Go map, each value
// made a string by conv; nil is an empty map.
func stringDict(d *starlark.Dict, conv func(starlark.Value) (string, bool)) (map[string]string, error) {
	out := map[string]string{}
	if d == nil {
		return out, nil
	}
	for _, kv := range d.Items() {
		k, ok := starlark.AsString(kv[0])
		if !ok {
			return nil, fmt.Errorf("key %s: want a string", kv[0])
		}
		v, ok := conv(kv[1])
		if !ok {
			return nil, fmt.Errorf("%q: got %s, want a string", k, kv[1].Type())
		}
		out[k] = v
	}
	return out, nil
}

func exactString(v starlark.Value) (string, bool) { return starlark.AsString(v) }

// varString is a var's value as --var gives it: a string as it is, a
// bool as true or false, an int in decimal, a list of strings joined
// with commas (a urls var).
func varString(v starlark.Value) (string, bool) {
	switch v := v.(type) {
	case starlark.String:
		return string(v), true
	case starlark.Bool:
		return strconv.FormatBool(bool(v)), true
	case starlark.Int:
		return v.String(), true
	case *starlark.List:
		parts, err := stringList(v)
		return strings.Join(parts, ","), err == nil
	}
	return "", false
}

func stringList(l *starlark.List) ([]string, error) {
	if l == nil {
		return nil, nil
	}
	out := make([]string, l.Len())
	for i := range l.Len() {
		s, ok := starlark.AsString(l.Index(i))
		if !ok {
			return nil, fmt.Errorf("[%d]: got %s, want a string", i, l.Index(i).Type())
		}
		out[i] = s
	}
	return out, nil
}
