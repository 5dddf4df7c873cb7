package fleet

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
)

// PrepareOptions are what Prepare needs to plan every host here.
type PrepareOptions struct {
	Hosts []*Host
	// Shared are the inventory's vars; Inventory its file, for messages.
	Shared    map[string]string
	Inventory string
	// Flags are the vars of --vars-file and --var; FlagOrigin says which
	// came from --vars-file (engine.EvalOptions.VarOrigin).
	Flags, FlagOrigin map[string]string
	// WorkDir is the controller's working directory (absolute).
	WorkDir string
	// Job is every host's job but for Version, Host, Root, Vars and
	// WorkDir, which Prepare fills.
	Job Job
	// Evaluate evaluates the playbook with vars (their origins for
	// messages); keepGoing as engine.EvalOptions.KeepGoing.
	Evaluate func(ctx context.Context, vars, origin map[string]string, keepGoing bool) (*engine.Plan, error)
}

// Prepared is every host's job, or every reason a host cannot run.
type Prepared struct {
	Jobs  map[string]*Job     // by host name
	Files map[string][]string // the files each host's bundle holds
	// HasOnce: the plan has once = "cluster" steps.
	HasOnce bool
	// Warnings are for the user: inventory vars the playbook ignores.
	Warnings []string
	// Errors are every host's problems: its vars, its plan, its local
	// sources; BadHosts how many hosts have some.
	Errors   []HostError
	BadHosts int
}

// HostError is a problem of one host's plan.
type HostError struct {
	Host string
	Err  error
}

// Prepare evaluates the playbook for each host with its vars (the
// inventory's, the host's, then the flags'), so that every problem of
// every host is known before any host is contacted, and makes each
// host's job and the list of files its bundle holds. As Terraform does
// with a vars file, an inventory var the playbook does not declare is
// ignored with a warning (one inventory serves several playbooks); a
// flag's is an error (a typo). A local source (src=, TLS files, a
// kubeconfig) that cannot be sent is an error at its step. The error
// returned is of the playbook itself, for every host alike.
func Prepare(ctx context.Context, opts PrepareOptions) (*Prepared, error) {
	blank, err := opts.Evaluate(ctx, map[string]string{}, nil, true)
	if err != nil {
		return nil, err
	}
	declared := map[string]bool{}
	for _, d := range blank.Vars {
		declared[d.Name] = true
	}
	p := &Prepared{Jobs: map[string]*Job{}, Files: map[string][]string{}}
	ignored := map[string][]string{} // undeclared inventory var → where given
	checked := map[string]error{}    // local sources, by absolute path
	for _, h := range opts.Hosts {
		vars := Vars(opts.Shared, h, opts.Flags)
		for k := range vars {
			if _, flag := opts.Flags[k]; declared[k] || flag {
				continue
			}
			where := "vars"
			if _, own := h.Vars[k]; own {
				where = h.Name + "'s vars"
			}
			if !slices.Contains(ignored[k], where) {
				ignored[k] = append(ignored[k], where)
			}
			delete(vars, k)
		}
		plan, err := opts.Evaluate(ctx, vars, varOrigins(opts, h), false)
		if err != nil {
			p.BadHosts++
			p.Errors = append(p.Errors, HostError{h.Name, err})
			continue
		}
		if errs := unsendable(plan, opts.WorkDir, checked); len(errs) > 0 {
			p.BadHosts++
			for _, err := range errs {
				p.Errors = append(p.Errors, HostError{h.Name, err})
			}
		}
		p.Files[h.Name] = Sources(plan, opts.WorkDir)
		p.HasOnce = p.HasOnce || slices.ContainsFunc(plan.Steps, func(st engine.Step) bool { return st.Meta().Once != "" })
		job := opts.Job
		job.Version, job.Host, job.Root, job.Vars, job.WorkDir = JobVersion, h.Name, h.Root, vars, opts.WorkDir
		p.Jobs[h.Name] = &job
	}
	for _, k := range slices.Sorted(maps.Keys(ignored)) {
		p.Warnings = append(p.Warnings, fmt.Sprintf("%s: the playbook declares no var %s (%s): ignored", opts.Inventory, k, strings.Join(ignored[k], ", ")))
	}
	return p, nil
}

// varOrigins says where each of a host's vars came from, for messages:
// the inventory's shared vars or the host's, --vars-file, or --var (no
// entry).
func varOrigins(opts PrepareOptions, h *Host) map[string]string {
	origin := map[string]string{}
	for k := range opts.Shared {
		origin[k] = opts.Inventory + " (vars)"
	}
	for k := range h.Vars {
		origin[k] = opts.Inventory + " (" + h.Name + "'s vars)"
	}
	for k := range opts.Flags {
		if o, ok := opts.FlagOrigin[k]; ok {
			origin[k] = o
		} else {
			delete(origin, k)
		}
	}
	return origin
}

// unsendable are the errors, at their steps, of the local sources of
// plan that cannot be sent: missing, not a regular file, too large.
// checked keeps each file's answer for the next host.
func unsendable(plan *engine.Plan, workDir string, checked map[string]error) []error {
	var errs []error
	for _, st := range plan.Steps {
		ls, ok := st.(engine.LocalSourcer)
		if !ok {
			continue
		}
		m := st.Meta()
		for _, src := range ls.LocalSources() {
			if !filepath.IsAbs(src) {
				src = filepath.Join(workDir, src)
			}
			err, seen := checked[src]
			if !seen {
				_, err = host.ReadRegular(nil, src, host.SrcLimit)
				checked[src] = err
			}
			if err != nil {
				errs = append(errs, &engine.Error{Pos: m.Pos, Err: fmt.Errorf("%s %s: src: %w", m.Kind, m.Target, err)})
			}
		}
	}
	return errs
}
