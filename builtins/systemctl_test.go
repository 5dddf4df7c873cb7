package builtins

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host/roottest"
)

const demoPlaybook = `
u = unit("demo.service", "[Service]\nExecStart=/bin/sleep infinity\n\n[Install]\nWantedBy=multi-user.target\n")
d = dropin("demo.service", "10-env.conf", "[Service]\nEnvironment=A=1\n")
systemctl("enable", "demo.service")
systemctl("restart", "demo.service", on_change = [u, d])
`

// describe renders results as engine.Result.String lines.
func describe(results []engine.Result) []string {
	var out []string
	for _, r := range results {
		out = append(out, r.String())
	}
	return out
}

func TestSystemctlOfflineRoot(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	plan := mustEvaluate(t, demoPlaybook)

	want := []string{
		"unit /etc/systemd/system/demo.service: create",
		"dropin /etc/systemd/system/demo.service.d/10-env.conf: create",
		"systemctl daemon-reload: skipped (offline root)",
		"systemctl enable demo.service: create",
		"systemctl restart demo.service: skipped (offline root)",
	}
	results := mustApply(t, plan, root, true)
	if got := describe(results); !slices.Equal(got, want) {
		t.Fatalf("check on a fresh root:\n got %q\nwant %q", got, want)
	}
	if got := results[3].Change.Summary; got != "symlink /etc/systemd/system/multi-user.target.wants/demo.service → /etc/systemd/system/demo.service" {
		t.Errorf("enable summary: got %q", got)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("check wrote into the root: %v", entries)
	}

	if got := describe(mustApply(t, plan, root, false)); !slices.Equal(got, want) {
		t.Fatalf("run:\n got %q\nwant %q", got, want)
	}
	link, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/demo.service"))
	if err != nil || link != "/etc/systemd/system/demo.service" {
		t.Fatalf("enable link: got %q, %v", link, err)
	}

	want = []string{
		"unit /etc/systemd/system/demo.service: unchanged",
		"dropin /etc/systemd/system/demo.service.d/10-env.conf: unchanged",
		"systemctl enable demo.service: unchanged",
		"systemctl restart demo.service: unchanged (nothing in on_change changed)",
	}
	if got := describe(mustApply(t, plan, root, true)); !slices.Equal(got, want) {
		t.Fatalf("check after run:\n got %q\nwant %q", got, want)
	}

	roottest.WriteFile(t, filepath.Join(root, "etc/systemd/system/demo.service.d/10-env.conf"), "[Service]\nEnvironment=A=2\n", 0o644)
	want = []string{
		"unit /etc/systemd/system/demo.service: unchanged",
		"dropin /etc/systemd/system/demo.service.d/10-env.conf: update",
		"systemctl daemon-reload: skipped (offline root)",
		"systemctl enable demo.service: unchanged",
		"systemctl restart demo.service: skipped (offline root)",
	}
	if got := describe(mustApply(t, plan, root, true)); !slices.Equal(got, want) {
		t.Fatalf("check after editing the drop-in:\n got %q\nwant %q", got, want)
	}
}

// TestSystemctlEnableMatchesSystemctlRoot compares the links that enable
// makes on an offline root with those of the real systemctl --root.
func TestSystemctlEnableMatchesSystemctlRoot(t *testing.T) {
	t.Parallel()
	systemctlBin, err := exec.LookPath("systemctl")
	if err != nil {
		t.Skip("systemctl is not installed (apt-get install systemd)")
	}
	unitText := "[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\nRequiredBy=remote-fs.target\nAlias=demo-alias.service\n"
	ours, theirs := t.TempDir(), t.TempDir()
	roottest.WriteFile(t, filepath.Join(theirs, "etc/systemd/system/demo.service"), unitText, 0o644)
	plan := mustEvaluate(t, "unit(\"demo.service\", "+quote(unitText)+")\nsystemctl(\"enable\", \"demo.service\")")
	mustApply(t, plan, ours, false)
	if out, err := exec.Command(systemctlBin, "--root="+theirs, "enable", "demo.service").CombinedOutput(); err != nil {
		t.Fatalf("systemctl --root enable: %v\n%s", err, out)
	}
	if got, want := links(t, ours), links(t, theirs); !slices.Equal(got, want) {
		t.Errorf("links:\n ours %q\ntheirs %q", got, want)
	}
}

// links lists the symlinks under root as "name -> target".
func links(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out = append(out, strings.TrimPrefix(p, root)+" -> "+target)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSystemctlBadInput(t *testing.T) {
	t.Parallel()
	tests := map[string]struct{ src, wantErr string }{
		"unknown_action":   {`systemctl("restrat", "kubelet.service")`, `systemctl: unknown action "restrat" \(did you mean "restart"\? want one of start, stop`},
		"missing_unit":     {`systemctl("start")`, `systemctl: start needs a unit \(write systemctl\("start", "kubelet.service"\)\)`},
		"reload_with_unit": {`systemctl("daemon-reload", "kubelet.service")`, `daemon-reload takes no unit`},
		"no_suffix":        {`systemctl("start", "kubelet")`, `"kubelet" has no unit type \(write "kubelet.service"\)`},
		"bad_timeout":      {`systemctl("start", "kubelet.service", timeout = "soon")`, `timeout "soon" is not a duration`},
		"on_change_string": {`systemctl("restart", "kubelet.service", on_change = ["kubelet.service"])`, `got string in list, want a step`},
		"rolling_start":    {`systemctl("start", "kubelet.service", rolling = True)`, `rolling = True is for restart and try-restart, not start`},
		"rolling_string":   {`systemctl("restart", "kubelet.service", rolling = "yes")`, `for parameter "rolling": got string, want bool`},
		// Two faults: the action is reported first, as its check comes
		// first, and daemon-reload says it takes no unit.
		"unknown_action_bad_unit": {`systemctl("restrat", "kubelet")`, `systemctl: unknown action "restrat" \(did you mean "restart"\?`},
		"reload_with_empty_unit":  {`systemctl("daemon-reload", "")`, `systemctl: daemon-reload takes no unit`},
		"unit_keyword":            {`systemctl("start", unit = "kubelet")`, `systemctl: for parameter unit: "kubelet" has no unit type`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := evaluate(t, playbook(t, tc.src, nil), nil)
			if err == nil {
				t.Fatal("got no error")
			}
			if msg := relErr(err); !strings.HasPrefix(msg, "play.star:1:10: ") || !matches(tc.wantErr, msg) {
				t.Errorf("got %q, want play.star:1:10: ... matching %q", msg, tc.wantErr)
			}
		})
	}
}
