package builtins

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kplay-dev/kplay/engine"
)

const kubeletUnit = `[Service]
ExecStartPre=/usr/bin/mkdir -p /etc/kubernetes/manifests
Environment=KUBELET_VERSION=v1.4.0_coreos.0
ExecStart=/usr/lib/coreos/kubelet-wrapper \
  --api-servers=http://127.0.0.1:8080 \
  --register-schedulable=false
Restart=always
RestartSec=10

[Install]
WantedBy=multi-user.target
`

func TestUnitCreateUnchangedUpdate(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	plan := mustEvaluate(t, "unit(\"kubelet.service\", content = "+quote(kubeletUnit)+")")
	// The daemon-reload the engine adds at the end of the plan is listed,
	// and skipped on an offline root.
	want := []string{"unit /etc/systemd/system/kubelet.service: create", "systemctl daemon-reload: skipped (offline root)"}
	if got := describe(mustApply(t, plan, root, false)); !slices.Equal(got, want) {
		t.Fatalf("run: got %q, want %q", got, want)
	}
	name := filepath.Join(root, "etc/systemd/system/kubelet.service")
	if got := readFile(t, name); got != kubeletUnit {
		t.Errorf("content: got %q", got)
	}
	if got := perm(t, name); got != 0o644 {
		t.Errorf("mode: got %04o, want 0644", got)
	}
	if got := describe(mustApply(t, plan, root, false)); !slices.Equal(got, []string{"unit /etc/systemd/system/kubelet.service: unchanged"}) {
		t.Fatalf("second run: got %q, want the unit unchanged and no daemon-reload", got)
	}
	changed := strings.Replace(kubeletUnit, "RestartSec=10", "RestartSec=5", 1)
	plan = mustEvaluate(t, "unit(\"kubelet.service\", content = "+quote(changed)+")")
	results := mustApply(t, plan, root, true)
	c := results[0].Change
	if c.Action != engine.Update || string(c.Before) != kubeletUnit || string(c.After) != changed {
		t.Errorf("update: got %v %q → %q", c.Action, c.Before, c.After)
	}
	if results[0].Step.Meta().Reload != engine.UnitFile {
		t.Error("a unit step does not ask for a daemon-reload")
	}
}

func TestUnitFromSections(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	plan := mustEvaluate(t, `unit("calico-node.service", content = {
    "Unit": [("Description", "Calico per-host agent"), ("Requires", "network-online.target")],
    "Service": [("ExecStart", "/usr/bin/rkt run calico"), ("Restart", "always")],
    "Install": [("WantedBy", "multi-user.target")],
})`)
	mustApply(t, plan, root, false)
	want := "[Unit]\nDescription=Calico per-host agent\nRequires=network-online.target\n\n" +
		"[Service]\nExecStart=/usr/bin/rkt run calico\nRestart=always\n\n" +
		"[Install]\nWantedBy=multi-user.target\n"
	if got := readFile(t, filepath.Join(root, "etc/systemd/system/calico-node.service")); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestUnitAndDropinBadInput(t *testing.T) {
	t.Parallel()
	tests := map[string]struct{ src, wantErr string }{
		"no_suffix":                {`unit("kubelet", content = "[Service]\n")`, `unit: for parameter name: "kubelet" has no unit type \(write "kubelet.service"\)`},
		"empty_name":               {`unit("", content = "[Service]\n")`, `unit name is empty`},
		"path_as_name":             {`unit("/etc/systemd/system/x.service", content = "")`, `is a path, not a unit name \(write "x.service"\)`},
		"outside_section":          {`unit("x.service", content = "ExecStart=/bin/true\n[Service]\n")`, `line 1: "ExecStart=/bin/true" is outside any section`},
		"bad_section":              {`unit("x.service", content = "[Service\nA=b\n")`, `line 1: "\[Service" is not a section header`},
		"not_key_value":            {`unit("x.service", content = "[Service]\nRestart always\n")`, `line 2: "Restart always" is not a key=value line`},
		"bad_sections_type":        {`unit("x.service", content = {"Service": "Restart=always"})`, `section "Service": got string, want a list of \(key, value\) pairs`},
		"bad_pair":                 {`unit("x.service", content = {"Service": [("Restart",)]})`, `section "Service", pair 1: got a tuple of 1, want a \(key, value\) pair`},
		"bad_key_not_quoted":       {`unit("x.service", content = {"Service": [("SEKRIT\n", "x")]}, sensitive = True)`, `section "Service", pair 1: the key is not a key name \(letters, digits, - and _\)$`},
		"bad_value_not_quoted":     {`unit("x.service", content = {"Service": [("ExecStart", "/bin/true SEKRIT\n")]}, sensitive = True)`, `section "Service", pair 1: the value of ExecStart holds a line break \(keep it on one line\)$`},
		"bad_triple_not_quoted":    {`unit("x.service", content = {"Service": [("Environment", "A=SEKRIT", "x")]})`, `section "Service", pair 1: got a tuple of 3, want a \(key, value\) pair`},
		"bad_section_not_quoted":   {`unit("x.service", content = {"SEKRIT]": [("A", "b")]})`, `section 1 of the dict: its name is not a section name \(write one such as "Service"\)$`},
		"content_int":              {`unit("x.service", content = 1)`, `got int, want string \(unit text\) or dict`},
		"trailing_backslash":       {`unit("x.service", content = {"Service": [("ExecStart", "/bin/a \\"), ("Restart", "always")]})`, `the value of ExecStart ends in a backslash`},
		"dropin_not_conf":          {`dropin("flanneld.service", "40-flannel", "[Unit]\n")`, `dropin: name "40-flannel": systemd reads only drop-ins that end in .conf: .* \(try "40-flannel.conf"\)`},
		"dropin_not_a_type":        {`dropin("services", "10-x.conf", "[Service]\n")`, `"services" has no unit type`},
		"install_runs_into_header": {"unit(\"t.service\", \"[Service]\\nExecStart=/bin/true\\n[Install]\\nWantedBy=a.target \\\\\\n[Install]\\nWantedBy=b.target\\n\")", `unit: for parameter content: \[Install\] WantedBy=a.target  \[Install\]: "\[Install\]" has no unit type`},
		"unit_empty":               {`unit("t.service", "")`, `unit: for parameter content: the unit text is empty, and systemd takes an empty unit file for a masked unit`},
		"unit_scope":               {`unit("t.scope", "[Scope]\nSlice=a.slice\n")`, `unit: systemd never loads a .scope unit from a file: t.scope would be ignored`},
		"dropin_hidden":            {`dropin("flanneld.service", ".override.conf", "[Unit]\n")`, `dropin: name ".override.conf": systemd skips hidden drop-ins`},
		"unit_no_prefix":           {`unit("@x.service", "[Unit]\n")`, `"@x.service" has no name before its "@"`},
		"dropin_bad_unit":          {`dropin("flanneld", "40-flannel.conf", "[Unit]\n")`, `"flanneld" has no unit type`},
		"dropin_bad_text":          {`dropin("docker.service", "40-flannel.conf", "Requires=flanneld.service\n")`, `line 1: "Requires=flanneld.service" is outside any section`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := evaluate(t, playbook(t, "\n"+tc.src, nil), nil)
			if err == nil {
				t.Fatal("got no error")
			}
			msg := relErr(err)
			if !strings.HasPrefix(msg, "play.star:2:") || !matches(tc.wantErr, msg) {
				t.Errorf("got %q, want play.star:2:... matching %q", msg, tc.wantErr)
			}
		})
	}
}

func TestDropin(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	src := `dropin("docker.service", "40-flannel.conf", "[Unit]\nRequires=flanneld.service\nAfter=flanneld.service\n")`
	plan := mustEvaluate(t, src)
	if got := actions(mustApply(t, plan, root, false)); !slices.Equal(got, []string{"create", "-"}) {
		t.Fatalf("run: got %v, want [create -] (the drop-in, then the daemon-reload skipped offline)", got)
	}
	name := filepath.Join(root, "etc/systemd/system/docker.service.d/40-flannel.conf")
	if got := readFile(t, name); got != "[Unit]\nRequires=flanneld.service\nAfter=flanneld.service\n" {
		t.Errorf("content: got %q", got)
	}
	if got := actions(mustApply(t, plan, root, true)); !slices.Equal(got, []string{"-"}) {
		t.Errorf("check after run: got %v, want unchanged", got)
	}
	plan = mustEvaluate(t, strings.Replace(src, "After=flanneld", "Wants=flanneld", 1))
	results := mustApply(t, plan, root, true)
	if results[0].Change.Action != engine.Update || !strings.Contains(string(results[0].Change.After), "Wants=") {
		t.Errorf("update: got %+v", results[0].Change)
	}
}

// quote returns s as a Starlark string literal.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
