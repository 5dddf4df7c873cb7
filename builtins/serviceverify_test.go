package builtins

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/etcdv2"
)

// serviceCase is a service's unit file and drop-ins, and what systemd
// 252 says when it loads them: refuses is a part of its "… Refusing."
// line, "" when it loads the unit. The unit is kplay-t.service in
// /etc/systemd/system unless name says otherwise (or unit is ""); a
// drop-in path is below /etc/systemd/system unless it is absolute, and
// content "-> target" makes a symlink.
type serviceCase struct {
	name    string
	unit    string
	dropins map[string]string
	refuses string
}

// serviceCases are the texts of TestServiceRulesAgreeWithSystemd, with
// the answers systemd-analyze verify (systemd 252.39, Debian 12) gave;
// TestServiceCasesMatchSystemdAnalyze checks them again where it is
// installed.
func serviceCases() map[string]serviceCase {
	const run = "[Service]\nExecStart=/usr/bin/dockerd\n"
	return map[string]serviceCase{
		"plain":         {unit: run},
		"no_exec_start": {unit: "[Service]\nRestart=always\n", refuses: "Service has no ExecStart=, ExecStop=, or SuccessAction=. Refusing."},
		"only_exec_stop": {
			unit:    "[Service]\nExecStop=/bin/true\n",
			refuses: "Service has no ExecStart= and no SuccessAction= settings and does not have RemainAfterExit=yes set. Refusing.",
		},
		"simple_with_only_exec_stop": {
			unit:    "[Service]\nType=simple\nExecStop=/bin/true\nRemainAfterExit=yes\n",
			refuses: "Service has no ExecStart= setting, which is only allowed for Type=oneshot services. Refusing.",
		},
		"oneshot_remaining_with_exec_stop": {unit: "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStop=/bin/true\n"},
		"oneshot_remaining_without_commands": {
			unit:    "[Service]\nType=oneshot\nRemainAfterExit=yes\n",
			refuses: "Service has no ExecStart=, ExecStop=, or SuccessAction=. Refusing.",
		},
		"success_action_alone": {unit: "[Unit]\nSuccessAction=reboot\n[Service]\nType=oneshot\n"},
		"two_exec_starts": {
			unit:    run + "ExecStart=/bin/true\n",
			refuses: "Service has more than one ExecStart= setting, which is only allowed for Type=oneshot services. Refusing.",
		},
		"oneshot_two_exec_starts": {unit: "[Service]\nType=oneshot\nExecStart=/bin/true\nExecStart=/bin/false\n"},
		"issue_dropin_adds_an_exec_start": {
			unit:    run,
			dropins: map[string]string{"kplay-t.service.d/10-opts.conf": "[Service]\nExecStart=/usr/bin/dockerd --bip=10.1.0.1/24\n"},
			refuses: "Service has more than one ExecStart= setting",
		},
		"dropin_replaces_the_exec_start": {
			unit:    run,
			dropins: map[string]string{"kplay-t.service.d/10-opts.conf": "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd --bip=10.1.0.1/24\n"},
		},
		"dropin_empties_the_exec_start": {
			unit:    run,
			dropins: map[string]string{"kplay-t.service.d/10-opts.conf": "[Service]\nExecStart=\n"},
			refuses: "Service has no ExecStart=, ExecStop=, or SuccessAction=. Refusing.",
		},
		"dropins_read_in_name_order": {
			unit: run,
			dropins: map[string]string{
				"kplay-t.service.d/20-b.conf": "[Service]\nExecStart=\n",
				"kplay-t.service.d/10-a.conf": "[Service]\nExecStart=/bin/a\n",
			},
			refuses: "Service has no ExecStart=, ExecStop=, or SuccessAction=. Refusing.",
		},
		"type_dropin_applies": {
			unit:    run,
			dropins: map[string]string{"service.d/10-all.conf": "[Service]\nExecStart=/bin/x\n"},
			refuses: "Service has more than one ExecStart= setting",
		},
		"dash_prefix_dropin_applies": {
			unit:    run,
			dropins: map[string]string{"kplay-.service.d/10-all.conf": "[Service]\nExecStart=/bin/x\n"},
			refuses: "Service has more than one ExecStart= setting",
		},
		"hidden_and_other_dropins_are_not_read": {
			unit: run,
			dropins: map[string]string{
				"kplay-t.service.d/.10-a.conf":   "[Service]\nExecStart=/bin/a\n",
				"kplay-t.service.d/10-a.conf~":   "[Service]\nExecStart=/bin/a\n",
				"kplay-t.service.d/10-a.service": "[Service]\nExecStart=/bin/a\n",
			},
		},
		"oneshot_restart_always": {
			unit:    "[Service]\nType=oneshot\nExecStart=/bin/true\nRestart=always\n",
			refuses: "Service has Restart= set to either always or on-success, which isn't allowed for Type=oneshot services. Refusing.",
		},
		"oneshot_restart_on_failure": {unit: "[Service]\nType=oneshot\nExecStart=/bin/true\nRestart=on-failure\n"},
		"oneshot_restart_force_status": {
			unit:    "[Service]\nType=oneshot\nExecStart=/bin/true\nRestartForceExitStatus=3\n",
			refuses: "Service has RestartForceExitStatus= set, which isn't allowed for Type=oneshot services. Refusing.",
		},
		"dbus_without_bus_name": {
			unit:    "[Service]\nType=dbus\nExecStart=/bin/true\n",
			refuses: "Service is of type D-Bus but no D-Bus service name has been specified. Refusing.",
		},
		"bus_name_implies_dbus": {unit: "[Service]\nBusName=org.example.X\nExecStart=/bin/true\n"},
		"pam_with_kill_mode_process": {
			unit:    run + "PAMName=login\nKillMode=process\n",
			refuses: "Service has PAM enabled. Kill mode must be set to 'control-group' or 'mixed'. Refusing.",
		},
		"pam_with_default_kill_mode": {unit: run + "PAMName=login\n"},
		// Found by the second attack on issue 12.
		"empty_type_is_ignored": {
			unit:    "[Service]\nType=oneshot\nExecStart=/usr/bin/true\nExecStart=/usr/bin/b\n",
			dropins: map[string]string{"kplay-t.service.d/10.conf": "[Service]\nType=\n"},
		},
		"unknown_type_is_ignored": {unit: "[Service]\nType=oneshot\nType=Bogus\nExecStart=/usr/bin/true\nExecStart=/usr/bin/b\n"},
		"empty_remain_after_exit_is_ignored": {
			unit:    "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStop=/usr/bin/true\n",
			dropins: map[string]string{"kplay-t.service.d/10.conf": "[Service]\nRemainAfterExit=\n"},
		},
		"empty_restart_is_ignored": {
			unit:    "[Service]\nType=oneshot\nExecStart=/usr/bin/true\nRestart=always\nRestart=\n",
			refuses: "Service has Restart= set to either always or on-success",
		},
		"bus_name_without_a_dot_is_ignored": {
			unit:    "[Service]\nType=dbus\nExecStart=/usr/bin/true\nBusName=foo\n",
			refuses: "Service is of type D-Bus but no D-Bus service name has been specified. Refusing.",
		},
		"commands_joined_by_semicolon": {
			unit:    "[Service]\nExecStart=/usr/bin/true ; /usr/bin/b\n",
			refuses: "Service has more than one ExecStart= setting",
		},
		"name_dropin_hides_type_dropin": {
			unit: run + "ExecStart=/usr/bin/b\n",
			dropins: map[string]string{
				"/usr/lib/systemd/system/kplay-t.service.d/10-x.conf": "[Service]\nType=oneshot\n",
				"service.d/10-x.conf": "[Service]\nType=simple\n",
			},
		},
		"name_dropin_hides_type_dropin_refused": {
			unit: run + "ExecStart=/usr/bin/b\n",
			dropins: map[string]string{
				"/usr/lib/systemd/system/kplay-t.service.d/10-x.conf": "[Service]\nType=simple\n",
				"service.d/10-x.conf": "[Service]\nType=oneshot\n",
			},
			refuses: "Service has more than one ExecStart= setting",
		},
		"alias_dropins_apply": {
			unit: "",
			dropins: map[string]string{
				"kplay-t.service":                                     "-> /usr/lib/systemd/system/kplay-u.service",
				"/usr/lib/systemd/system/kplay-u.service":             run,
				"/usr/lib/systemd/system/kplay-u.service.d/type.conf": "[Service]\nType=oneshot\n",
				"kplay-t.service.d/50.conf":                           "[Service]\nExecStart=/usr/bin/b\n",
			},
		},
		// Found by the third attack on issue 12.
		"semicolon_quoted_escaped_or_last":        {unit: "[Service]\nExecStart=/usr/bin/echo 'a ; b' \"c ; d\" e \\; f ;\n"},
		"command_of_a_prefix_alone_is_dropped":    {unit: run + "ExecStart=-\n"},
		"bus_name_with_a_specifier":               {unit: "[Service]\nType=dbus\nBusName=org.example.%p\nExecStart=/usr/bin/true\n"},
		"unknown_restart_force_status_is_ignored": {unit: "[Service]\nType=oneshot\nExecStart=/usr/bin/true\nRestartForceExitStatus=bogus\n"},
		"restart_force_status_signal": {
			unit:    "[Service]\nType=oneshot\nExecStart=/usr/bin/true\nRestartForceExitStatus=3 SIGKILL\n",
			refuses: "Service has RestartForceExitStatus= set, which isn't allowed for Type=oneshot services. Refusing.",
		},
		"dropins_of_a_name_linking_to_the_unit": {
			unit: "",
			dropins: map[string]string{
				"/usr/lib/systemd/system/kplay-t.service": run,
				"kplay-a.service":                         "-> /usr/lib/systemd/system/kplay-t.service",
				"kplay-a.service.d/00-reset.conf":         "[Service]\nExecStart=\n",
				"kplay-t.service.d/10-x.conf":             "[Service]\nExecStart=/usr/bin/false\n",
			},
		},
		"dropins_of_a_name_linking_to_the_unit_refused": {
			unit: "",
			dropins: map[string]string{
				"/usr/lib/systemd/system/kplay-t.service": run,
				"kplay-a.service":                         "-> /usr/lib/systemd/system/kplay-t.service",
				"kplay-a.service.d/20-add.conf":           "[Service]\nExecStart=/usr/bin/false\n",
			},
			refuses: "Service has more than one ExecStart= setting",
		},
		"template_dash_prefix_dropin": {
			name: "kplay-t@x.service",
			unit: "",
			dropins: map[string]string{
				"kplay-t@.service":          run + "ExecStart=/usr/bin/b\n",
				"kplay-@.service.d/10.conf": "[Service]\nType=oneshot\n",
			},
		},
		"template_dash_prefix_dropin_refused": {
			name: "kplay-t@x.service",
			unit: "",
			dropins: map[string]string{
				"kplay-t@.service":          run,
				"kplay-@.service.d/10.conf": "[Service]\nExecStart=/usr/bin/b\n",
			},
			refuses: "Service has more than one ExecStart= setting",
		},
	}
}

// writeServiceCase writes tc into root and returns the unit's name.
func writeServiceCase(t *testing.T, root string, tc serviceCase) string {
	t.Helper()
	name := tc.name
	if name == "" {
		name = "kplay-t.service"
	}
	files := map[string]string{}
	if tc.unit != "" {
		files["/etc/systemd/system/"+name] = tc.unit
	}
	for p, text := range tc.dropins {
		if !strings.HasPrefix(p, "/") {
			p = "/etc/systemd/system/" + p
		}
		files[p] = text
	}
	for p, text := range files {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(text, "-> "); ok {
			err = os.Symlink(target, p)
		} else {
			err = os.WriteFile(p, []byte(text), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return name
}

// TestServiceRulesAgreeWithSystemd: verifyService refuses a service
// exactly when systemd 252 refuses to load it, with systemd's words.
func TestServiceRulesAgreeWithSystemd(t *testing.T) {
	t.Parallel()
	for name, tc := range serviceCases() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			name := writeServiceCase(t, root, tc)
			h, err := host.OpenReal(root, false, host.WithEtcd(etcdv2.New))
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			err = verifyService(t.Context(), h, name)
			switch {
			case tc.refuses == "" && err != nil:
				t.Errorf("got %v, want no error: systemd loads it", err)
			case tc.refuses != "" && (err == nil || !strings.Contains(err.Error(), tc.refuses)):
				t.Errorf("got %v, want an error saying %q", err, tc.refuses)
			}
		})
	}
}

// TestServiceCasesMatchSystemdAnalyze runs systemd-analyze verify on each
// case, its drop-ins beside it, so that the recorded answers cannot
// drift from systemd's.
func TestServiceCasesMatchSystemdAnalyze(t *testing.T) {
	t.Parallel()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed; the answers stay as recorded")
	}
	for name, tc := range serviceCases() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			name := writeServiceCase(t, root, tc)
			out, _ := exec.CommandContext(t.Context(), analyze, "verify", "--man=no", "--root="+root, name).CombinedOutput()
			var refused []string
			for _, line := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(line, name+": ") && strings.Contains(line, "Refusing.") {
					refused = append(refused, line)
				}
			}
			switch {
			case tc.refuses == "" && len(refused) > 0:
				t.Errorf("systemd refuses it, recorded as loaded:\n%s", out)
			case tc.refuses != "" && !slices.ContainsFunc(refused, func(l string) bool { return strings.Contains(l, tc.refuses) }):
				t.Errorf("systemd does not say %q; its output:\n%s", tc.refuses, out)
			}
		})
	}
}

// TestFileIntoUnitDirIsUnitText: a unit file or drop-in written with
// file() is checked as unit() checks it, at evaluation, and its service
// as systemd would load it.
func TestFileIntoUnitDirIsUnitText(t *testing.T) {
	t.Parallel()
	_, err := evaluate(t, playbook(t, `file("/etc/systemd/system/app.service.d/10-x.conf", content = "[Service]\nExecStart=/bin/echo \"a\n")`, nil), nil)
	const want = `play.star:1:5: file: for parameter content: line 2: "ExecStart=/bin/echo \"a" has an unbalanced quote`
	if err == nil || !strings.HasPrefix(relErr(err), want) {
		t.Errorf("got %v, want an error starting %q", err, want)
	}
	mustEvaluate(t, `file("/etc/systemd/system/app.service.d/10-x.conf", content = "[Service]\nExecStart=/bin/echo a\n")`)

	plan := mustEvaluate(t, `file("/etc/systemd/system/app.service", content = "[Service]\nRestart=always\n")`)
	_, err = apply(t, plan, t.TempDir(), true)
	if err == nil || !strings.Contains(err.Error(), "systemd would refuse to load app.service: Service has no ExecStart=") {
		t.Errorf("got %v, want systemd's refusal", err)
	}
}

// TestCommentOnlyUnitIsNotMasked: systemd takes only a unit file of 0
// bytes for a mask; one of comments is a unit with no settings
// (systemctl --root 252 lists it as static). A service of comments is
// refused as systemd would refuse to load it.
func TestCommentOnlyUnitIsNotMasked(t *testing.T) {
	t.Parallel()
	mustEvaluate(t, `unit("a.target", "# placeholder\n")`)
	plan := mustEvaluate(t, `unit("a.service", "# placeholder\n\n")`)
	if _, err := apply(t, plan, t.TempDir(), true); err == nil || !strings.Contains(err.Error(), "Service has no ExecStart=") {
		t.Errorf("got %v, want systemd's refusal", err)
	}
}

// TestFileIntoManifestDirIsAPod: the kubelet runs every file in its
// manifests directory, so file() there is checked as manifest() is, and
// a sensitive one's error quotes nothing of it.
func TestFileIntoManifestDirIsAPod(t *testing.T) {
	t.Parallel()
	const pod = `apiVersion: v1\nkind: Pod\nmetadata:\n  name: SEKRIT_\nspec:\n  containers:\n  - name: c\n    image: busybox\n`
	_, err := evaluate(t, playbook(t, `file("/etc/kubernetes/manifests/a.yaml", content = "`+pod+`")`, nil), nil)
	if err == nil || !strings.Contains(err.Error(), "metadata.name") || !strings.Contains(err.Error(), "the kubelet reads /etc/kubernetes/manifests/a.yaml as a static pod") {
		t.Errorf("got %v, want the pod rule's error", err)
	}
	_, err = evaluate(t, playbook(t, `file("/etc/kubernetes/manifests/a.yaml", content = "`+pod+`", sensitive = True)`, nil), nil)
	if err == nil || strings.Contains(err.Error(), "SEKRIT") {
		t.Errorf("got %v, want an error that does not quote the name", err)
	}
	mustEvaluate(t, `file("/etc/kubernetes/manifests/a.yaml", content = "`+strings.Replace(pod, "SEKRIT_", "demo", 1)+`")`)
}
