package builtins

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
)

const systemctlDoc = `systemctl(action, unit=None, on_change=[], tags=[], timeout="90s", rolling=False)
Declares a systemd action. Each action reads the unit's state first, so a
second run does nothing: start only if not active, stop only if active,
enable only if not enabled, disable only if enabled, mask and unmask
likewise. restart, reload and try-restart with on_change run only if one of
those steps changed in this run; without on_change they run every time.
A step that no longer exists cannot be named: when a run removes a
drop-in or unit file (the playbook no longer declares it, or declares it
state = "absent"), a restart whose on_change names any unit() or dropin()
step of the same unit runs, as if that step had changed; the restart is
owed in the journal before the removal.
On an offline root (--root DIR) enable, disable, mask and unmask create or
remove the [Install] symlinks exactly as systemctl --root does, and the
live-only actions (start, stop, restart, reload, try-restart,
daemon-reload) are listed as skipped.

- action: start, stop, restart, reload, try-restart, enable, disable, mask,
  unmask or daemon-reload. daemon-reload needs no unit; it merges with the
  one the engine runs after unit() and dropin() changes, and does nothing
  if no unit file changed.
- unit: the unit name with its type, such as "kubelet.service".
- timeout: how long a start, stop, restart or reload job may take before
  the step fails, such as "90s" or "5m".
- rolling: for restart and try-restart: in a fleet run, the restart takes
  a cluster-wide lock in etcd first, so that no two hosts restart the unit
  at once, even across separate kplay runs (see docs/fleet.md); a single-
  host run ignores it.`

// systemctlActions are the actions systemctl() takes, with whether they
// need a running systemd.
var systemctlActions = map[string]bool{
	"start": true, "stop": true, "restart": true, "reload": true, "try-restart": true,
	"daemon-reload": true,
	"enable":        false, "disable": false, "mask": false, "unmask": false,
}

// systemctl implements the systemctl builtin; see systemctlDoc.
func systemctl(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	s := &systemctlStep{}
	// unit is checked after the action, which decides whether one is
	// wanted: daemon-reload takes none.
	var unit starlark.Value
	timeout := "90s"
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs,
		"action", &s.action,
		"unit??", &unit,
		"on_change?", &s.meta.OnChange,
		"tags?", &s.meta.Tags,
		"timeout?", &timeout,
		"rolling?", &s.meta.Rolling,
	); err != nil {
		return nil, err
	}
	if _, ok := systemctlActions[s.action]; !ok {
		hint := ""
		if a := engine.Suggest(s.action, actionNames()); a != "" {
			hint = fmt.Sprintf("did you mean %q? ", a)
		}
		return nil, fmt.Errorf("%s: unknown action %q (%swant one of %s)", fn.Name(), s.action, hint, strings.Join(actionNames(), ", "))
	}
	var err error
	if s.timeout, err = time.ParseDuration(timeout); err != nil || s.timeout <= 0 {
		return nil, fmt.Errorf("%s: timeout %q is not a duration (write one such as \"90s\" or \"5m\")", fn.Name(), timeout)
	}
	if s.meta.Rolling && s.action != "restart" && s.action != "try-restart" {
		return nil, fmt.Errorf("%s: rolling = True is for restart and try-restart, not %s", fn.Name(), s.action)
	}
	s.meta.Kind, s.meta.Reload = "systemctl", engine.NeedsReload
	if s.action == "daemon-reload" {
		if unit != nil {
			return nil, fmt.Errorf("%s: daemon-reload takes no unit (write systemctl(\"daemon-reload\"))", fn.Name())
		}
		s.meta.Target, s.meta.Resource, s.meta.Reload = "daemon-reload", "daemon-reload", engine.IsReload
		return engine.Record(thread, s)
	}
	if unit == nil {
		return nil, fmt.Errorf("%s: %s needs a unit (write systemctl(%q, \"kubelet.service\"))", fn.Name(), s.action, s.action)
	}
	// Unpacked on its own, so that the library words its error
	// ("systemctl: for parameter unit: …") as for the other arguments.
	var name unitName
	if err := starlark.UnpackArgs(fn.Name(), starlark.Tuple{unit}, nil, "unit", &name); err != nil {
		return nil, err
	}
	s.unit = string(name)
	s.meta.Resource = s.action + " " + s.unit
	s.meta.Target = s.meta.Resource
	return engine.Record(thread, s)
}

func actionNames() []string {
	return []string{"start", "stop", "restart", "reload", "try-restart", "enable", "disable", "mask", "unmask", "daemon-reload"}
}

type systemctlStep struct {
	meta    engine.StepMeta
	action  string
	unit    string
	timeout time.Duration
}

func (s *systemctlStep) Meta() *engine.StepMeta { return &s.meta }

// Unit is the unit the step acts on ("" for daemon-reload): kplay test
// lists the units a plan restarts by it.
func (s *systemctlStep) Unit() string { return s.unit }

// Restarts is true of restart and try-restart (engine.Restarter).
func (s *systemctlStep) Restarts() bool { return s.action == "restart" || s.action == "try-restart" }

func (s *systemctlStep) Diff(ctx context.Context, h host.Host) (engine.Change, error) {
	sd := h.Systemd()
	if systemctlActions[s.action] && !sd.Live() {
		return engine.Change{}, fmt.Errorf("%s: %w", s.meta.Target, host.ErrNotApplicable)
	}
	switch s.action {
	case "daemon-reload":
		return engine.Change{Action: engine.Run, Summary: "unit files changed"}, nil
	case "start", "stop":
		state, err := sd.ActiveState(ctx, s.unit)
		if err != nil {
			return engine.Change{}, err
		}
		if isActive(state) == (s.action == "start") {
			return engine.Change{}, nil
		}
		return engine.Change{Action: engine.Run, Summary: "was " + state}, nil
	case "restart", "reload", "try-restart":
		if len(s.meta.OnChange) == 0 {
			return engine.Change{Action: engine.Run, Summary: "runs every time (no on_change)"}, nil
		}
		return engine.Change{Action: engine.Run, Summary: "a step in on_change changed"}, nil
	case "enable", "disable":
		return s.diffLinks(ctx, sd)
	}
	// mask, unmask
	state, err := sd.UnitFileState(ctx, s.unit)
	if err != nil {
		return engine.Change{}, err
	}
	masked := state == "masked" || state == "masked-runtime"
	link := "/etc/systemd/system/" + s.unit + " → /dev/null"
	switch {
	case s.action == "mask" && !masked:
		return engine.Change{Action: engine.Create, Summary: "symlink " + link, After: []byte(link + "\n")}, nil
	case s.action == "unmask" && masked:
		return engine.Change{Action: engine.Delete, Summary: "symlink " + link, Before: []byte(link + "\n")}, nil
	}
	return engine.Change{}, nil
}

// diffLinks says what enable or disable would do: on an offline root, the
// symlinks it creates or removes; live, a change of the unit file state.
func (s *systemctlStep) diffLinks(ctx context.Context, sd host.Systemd) (engine.Change, error) {
	enable := s.action == "enable"
	if sd.Live() {
		state, err := sd.UnitFileState(ctx, s.unit)
		if err != nil {
			return engine.Change{}, err
		}
		if (state == "enabled" || state == "static" || state == "alias" || state == "indirect" || state == "generated") == enable {
			return engine.Change{}, nil
		}
		return engine.Change{Action: engine.Run, Summary: "was " + state}, nil
	}
	links, err := sd.EnableLinks(ctx, s.unit)
	if !enable {
		links, err = sd.DisableLinks(ctx, s.unit)
	}
	if err != nil || len(links) == 0 {
		return engine.Change{}, err
	}
	var text strings.Builder
	for _, l := range links {
		fmt.Fprintf(&text, "%s → %s\n", l.Name, l.Target)
	}
	summary := fmt.Sprintf("symlink %s → %s", links[0].Name, links[0].Target)
	if len(links) > 1 {
		summary += fmt.Sprintf(" and %d more", len(links)-1)
	}
	if enable {
		return engine.Change{Action: engine.Create, Summary: summary, After: []byte(text.String())}, nil
	}
	return engine.Change{Action: engine.Delete, Summary: summary, Before: []byte(text.String())}, nil
}

func isActive(state string) bool {
	return state == "active" || state == "activating" || state == "reloading"
}

func (s *systemctlStep) Apply(ctx context.Context, h host.Host, c engine.Change) error {
	sd := h.Systemd()
	switch s.action {
	case "daemon-reload":
		return sd.DaemonReload(ctx)
	case "enable":
		return sd.Enable(ctx, s.unit)
	case "disable":
		return sd.Disable(ctx, s.unit)
	case "mask":
		return sd.Mask(ctx, s.unit)
	case "unmask":
		return sd.Unmask(ctx, s.unit)
	}
	return sd.Job(ctx, s.action, s.unit, s.timeout)
}
