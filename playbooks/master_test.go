package playbooks

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kplay-dev/kplay/builtins"
	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/etcdtest"
	"github.com/kplay-dev/kplay/host/etcdv2"
	"github.com/kplay-dev/kplay/host/kube"
	"github.com/kplay-dev/kplay/host/kube/kubetest"
	"github.com/kplay-dev/kplay/host/roottest"
	"github.com/kplay-dev/kplay/ui"
)

// The acceptance tests of master.star (issue 5). They drive kplay in
// process the way cmd/kplay does (engine.Evaluate with the builtins,
// host.OpenReal on an offline root, engine.Check or engine.Converge, the
// ui printer for the text a person reads), against a copy of
// testdata/roots/coreos, a real etcd, and a fake Kubernetes API.

const playbook = "master.star"

// networkKey is where the guide puts flannel's network config.
const networkKey = "/coreos.com/network/config"

// outcome is what one kplay check or run did.
type outcome struct {
	results []engine.Result
	out     string // stdout of kplay: a line per step, diffs, the count
	err     error  // the error kplay prints on stderr
	exit    int    // kplay's exit code: 0, 1 error, 2 check found changes
}

// kplay runs `kplay MODE master.star --root root --var ... --skip-tags ...`
// in process, as cmd/kplay's apply does (text output, no colors).
func kplay(t *testing.T, mode, root string, vars map[string]string, skipTags ...string) outcome {
	t.Helper()
	ctx := t.Context()
	var out bytes.Buffer
	p := ui.New(&out, ui.Options{Mode: mode})
	plan, err := evaluate(t, vars)
	if err != nil {
		return outcome{err: err, exit: 1}
	}
	plan.Ledger = &engine.LedgerOptions{Name: "master", Prune: true, Pruner: builtins.Pruner} // as cmd/kplay sets it
	real, err := host.OpenReal(root, mode == "run", host.WithEtcd(etcdv2.New), host.WithKube(kube.New))
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close()
	ctx = engine.WithProgress(ctx, func(string) {})
	sel := engine.Selection{SkipTags: skipTags}
	var results []engine.Result
	if mode == "run" {
		results, err = engine.Converge(ctx, plan, real, sel, p.Step)
	} else {
		results, err = engine.Check(ctx, plan, real, sel, p.Step)
	}
	if ferr := p.Finish(playbook, results, err); ferr != nil {
		t.Fatal(ferr)
	}
	o := outcome{results: results, out: out.String(), err: err}
	switch {
	case err != nil:
		o.exit = 1
	case mode == "check" && ui.Count(results).Changes() > 0:
		o.exit = 2
	}
	return o
}

// evaluate evaluates master.star with vars, as cmd/kplay does.
func evaluate(t *testing.T, vars map[string]string) (*engine.Plan, error) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return engine.Evaluate(t.Context(), engine.EvalOptions{
		WorkDir:  wd,
		Playbook: playbook,
		Vars:     vars,
		Builtins: builtins.Predeclared(),
	})
}

// mustExit fails the test unless o exited with code.
func (o outcome) mustExit(t *testing.T, what string, code int) {
	t.Helper()
	if o.exit != code {
		t.Fatalf("%s: exit %d, want %d; error: %v\n%s", what, o.exit, code, o.err, o.out)
	}
}

// lines are the results as "kind target: status" lines, where status is
// the action of a change (create, update, run), "unchanged" or "skipped".
func (o outcome) lines() []string {
	var ls []string
	for _, r := range o.results {
		ls = append(ls, resultLine(r))
	}
	return ls
}

func resultLine(r engine.Result) string {
	m := r.Step.Meta()
	status := r.Status.String()
	if r.Status == engine.Changed {
		status = r.Change.Action.String()
	}
	return fmt.Sprintf("%s %s: %s", m.Kind, m.Target, status)
}

// changed are the "kind target: action" lines of the steps that changed
// something.
func (o outcome) changed() []string {
	var ls []string
	for _, r := range o.results {
		if r.Status == engine.Changed && r.Change.Action.Changes() {
			ls = append(ls, resultLine(r))
		}
	}
	return ls
}

// find returns the result of the step "kind target".
func (o outcome) find(t *testing.T, step string) engine.Result {
	t.Helper()
	for _, r := range o.results {
		if m := r.Step.Meta(); m.Kind+" "+m.Target == step {
			return r
		}
	}
	t.Fatalf("no step %q in:\n%s", step, strings.Join(o.lines(), "\n"))
	return engine.Result{}
}

// world is what one test runs master.star against.
type world struct {
	root   string                  // a copy of the CoreOS-like root
	tls    string                  // TLS_DIR: the throwaway assets
	etcd   *etcdtest.Server        // a real etcd with the v2 API
	api    *kubetest.FakeAPIServer // the fake Kubernetes API
	apiURL string                  // K8S_API
	vars   map[string]string       // the --vars of every kplay call
}

// newWorld makes a fresh root, TLS assets, an etcd and a fake API server,
// and the vars that point master.star at them (the other vars keep the
// playbook's defaults, the guide's example values).
func newWorld(t *testing.T) *world {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("master.star writes its files root:root: run the tests as root")
	}
	w := &world{root: copyRoot(t), tls: t.TempDir(), etcd: etcdtest.Start(t), api: kubetest.NewFakeAPIServer()}
	writeTLS(t, w.tls)
	srv := httptest.NewServer(w.api)
	t.Cleanup(srv.Close)
	w.apiURL = srv.URL
	w.vars = map[string]string{
		"ADVERTISE_IP":   "10.0.0.10",
		"ETCD_ENDPOINTS": w.etcd.URL,
		"TLS_DIR":        w.tls,
		"K8S_API":        w.apiURL,
	}
	return w
}

// with returns w's vars with some set or changed ("NAME=value").
func (w *world) with(kv ...string) map[string]string {
	vars := map[string]string{}
	for k, v := range w.vars {
		vars[k] = v
	}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		vars[k] = v
	}
	return vars
}

// goldenVars fill the @NAME@ placeholders of the golden trees.
func (w *world) goldenVars() map[string]string {
	return map[string]string{"ETCD_ENDPOINTS": w.etcd.URL}
}

// guideSteps are the steps of the guide, in its order, with the status a
// check on a fresh offline root gives them. Restarts are not here: where
// the playbook puts them is its choice (see checkGuideOrder).
func guideSteps(calico bool, apiURL string) []string {
	steps := []string{
		"require_file /usr/lib/coreos/kubelet-wrapper: unchanged",
		// TLS Assets
		"directory /etc/kubernetes/ssl: create",
		"file /etc/kubernetes/ssl/ca.pem: create",
		"file /etc/kubernetes/ssl/apiserver.pem: create",
		"file /etc/kubernetes/ssl/apiserver-key.pem: create",
		// Network Configuration
		"file /etc/flannel/options.env: create",
		"dropin /etc/systemd/system/flanneld.service.d/40-ExecStartPre-symlink.conf: create",
		"dropin /etc/systemd/system/docker.service.d/40-flannel.conf: create",
		// Create the kubelet Unit
		"unit /etc/systemd/system/kubelet.service: create",
		// The four pods
		"manifest /etc/kubernetes/manifests/kube-apiserver.yaml: create",
		"manifest /etc/kubernetes/manifests/kube-proxy.yaml: create",
		"manifest /etc/kubernetes/manifests/kube-controller-manager.yaml: create",
		"manifest /etc/kubernetes/manifests/kube-scheduler.yaml: create",
	}
	if calico {
		steps = append(steps,
			"unit /etc/systemd/system/calico-node.service: create",
			"manifest /etc/kubernetes/manifests/policy-controller.yaml: create",
			"file /etc/kubernetes/cni/net.d/10-calico.conf: create",
		)
	}
	steps = append(steps,
		// Start Services
		"systemctl daemon-reload: skipped",
		"etcd_put /coreos.com/network/config: create",
		"systemctl start flanneld.service: skipped",
		"systemctl enable flanneld.service: create",
		"systemctl start kubelet.service: skipped",
		"systemctl enable kubelet.service: create",
	)
	if calico {
		steps = append(steps,
			"systemctl start calico-node.service: skipped",
			"systemctl enable calico-node.service: create",
		)
	}
	steps = append(steps,
		"wait_http "+apiURL+"/version: skipped",
		"kube_create Namespace/kube-system: create",
	)
	if calico {
		steps = append(steps, "kube_create Namespace/calico-system: create")
	}
	return steps
}

// checkGuideOrder checks that the plan lists the guide's steps in the
// guide's order, with their statuses, and nothing else but restarts of
// the units the guide starts.
func checkGuideOrder(t *testing.T, o outcome, want []string) {
	t.Helper()
	var got []string
	var extra []string
	wantSet := map[string]bool{}
	for _, w := range want {
		step, _, _ := strings.Cut(w, ": ")
		wantSet[step] = true
	}
	for _, l := range o.lines() {
		step, _, _ := strings.Cut(l, ": ")
		switch {
		case wantSet[step]:
			got = append(got, l)
		case strings.HasPrefix(step, "systemctl restart "):
		default:
			extra = append(extra, l)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("the guide's steps, in order (-want +got):\n%s", lineDiff(want, got))
	}
	if len(extra) > 0 {
		t.Errorf("steps that are not in the guide:\n%s", strings.Join(extra, "\n"))
	}
	for _, u := range []string{"flanneld", "docker", "kubelet"} {
		if !slices.ContainsFunc(o.lines(), func(l string) bool { return strings.HasPrefix(l, "systemctl restart "+u+".service: ") }) {
			t.Errorf("no restart of %s.service (it must restart when its files change)", u)
		}
	}
}

// lineDiff is a -want +got listing of two line lists.
func lineDiff(want, got []string) string {
	var b strings.Builder
	for _, l := range want {
		if !slices.Contains(got, l) {
			fmt.Fprintf(&b, "-%s\n", l)
		}
	}
	for _, l := range got {
		if !slices.Contains(want, l) {
			fmt.Fprintf(&b, "+%s\n", l)
		}
	}
	fmt.Fprintf(&b, "want:\n  %s\ngot:\n  %s\n", strings.Join(want, "\n  "), strings.Join(got, "\n  "))
	return b.String()
}

// wantLinks are the [Install] symlinks that enable makes in the root.
func wantLinks(calico bool) map[string]string {
	links := map[string]string{
		"/etc/systemd/system/multi-user.target.wants/flanneld.service": "/usr/lib/systemd/system/flanneld.service",
		"/etc/systemd/system/multi-user.target.wants/kubelet.service":  "/etc/systemd/system/kubelet.service",
	}
	if calico {
		links["/etc/systemd/system/multi-user.target.wants/calico-node.service"] = "/etc/systemd/system/calico-node.service"
	}
	return links
}

// checkTLS checks that the root's TLS assets are the ones in tlsDir.
func checkTLS(t *testing.T, root, tlsDir string) {
	t.Helper()
	for _, name := range []string{"ca.pem", "apiserver.pem", "apiserver-key.pem"} {
		want, err := os.ReadFile(filepath.Join(tlsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(root, "etc/kubernetes/ssl", name))
		if err != nil {
			t.Errorf("TLS asset: %v", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("/etc/kubernetes/ssl/%s is not the %s of TLS_DIR", name, name)
		}
	}
}

// checkNetworkConfig checks that etcd holds the guide's flannel config.
func checkNetworkConfig(t *testing.T, etcdURL, network string) {
	t.Helper()
	value, _ := etcdGet(t, etcdURL, networkKey)
	var got, want any
	if err := json.Unmarshal([]byte(value), &got); err != nil {
		t.Fatalf("etcd %s = %q: %v", networkKey, value, err)
	}
	_ = json.Unmarshal([]byte(`{"Network":"`+network+`","Backend":{"Type":"vxlan"}}`), &want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("etcd %s = %s, want {\"Network\":%q,\"Backend\":{\"Type\":\"vxlan\"}}", networkKey, value, network)
	}
}

// etcdGet reads a key: its value and modifiedIndex ("" and 0 if absent).
func etcdGet(t *testing.T, etcdURL, key string) (string, uint64) {
	t.Helper()
	value, _, index := etcdtest.Get(t, etcdURL, key)
	return value, index
}

// etcdIndex is the cluster's index: any write to etcd moves it.
func etcdIndex(t *testing.T, etcdURL string) string {
	t.Helper()
	resp, err := http.Get(etcdURL + "/v2/keys/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header.Get("X-Etcd-Index")
}

// restarts are the results of the systemctl restart steps.
func (o outcome) restarts() []engine.Result {
	var rs []engine.Result
	for _, r := range o.results {
		if m := r.Step.Meta(); m.Kind == "systemctl" && strings.HasPrefix(m.Target, "restart ") {
			rs = append(rs, r)
		}
	}
	return rs
}

// checkNothingToDo checks that a second run or a check after a run
// changed nothing and restarted nothing: every restart is left alone
// because nothing it watches changed (on a live systemd it would not
// run either), not merely skipped on an offline root.
func checkNothingToDo(t *testing.T, what string, o outcome) {
	t.Helper()
	if c := o.changed(); len(c) > 0 {
		t.Errorf("%s changed:\n%s", what, strings.Join(c, "\n"))
	}
	for _, r := range o.restarts() {
		if r.Status != engine.Unchanged {
			t.Errorf("%s: %s: %s (%s), want unchanged (nothing in on_change changed)", what, r.Step.Meta().Target, r.Status, r.Reason)
		}
	}
	for _, r := range o.results {
		if m := r.Step.Meta(); m.Kind == "systemctl" && m.Target == "daemon-reload" && r.Status != engine.Unchanged {
			t.Errorf("%s: daemon-reload %s (%s), want unchanged (no unit file changed)", what, r.Status, r.Reason)
		}
	}
}

// TestMasterFreshRoot is the main acceptance test: on a fresh CoreOS-like
// root, check lists every step of the guide in order and writes nothing;
// run makes the golden tree, the etcd config and the namespaces; a second
// run changes and restarts nothing; a check after it exits 0.
func TestMasterFreshRoot(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	before, indexBefore := roottest.State(t, w.root), etcdIndex(t, w.etcd.URL)

	check := kplay(t, "check", w.root, w.vars)
	check.mustExit(t, "check on a fresh root", 2)
	checkGuideOrder(t, check, guideSteps(true, w.apiURL))
	if after := roottest.State(t, w.root); after != before {
		t.Errorf("check wrote in the root:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if _, index := etcdGet(t, w.etcd.URL, networkKey); index != 0 {
		t.Errorf("check wrote %s (modifiedIndex %d)", networkKey, index)
	}
	if after := etcdIndex(t, w.etcd.URL); after != indexBefore {
		t.Errorf("check wrote to etcd: X-Etcd-Index %s → %s", indexBefore, after)
	}
	if posts := w.api.PostsSent(); posts > 0 {
		t.Errorf("check sent %d POSTs to the API: %v", posts, w.api.Requests())
	}
	// A diff for every file but the key, which shows as its size and hash.
	for _, f := range []string{
		"/etc/kubernetes/ssl/ca.pem", "/etc/kubernetes/ssl/apiserver.pem",
		"/etc/flannel/options.env",
		"/etc/systemd/system/flanneld.service.d/40-ExecStartPre-symlink.conf",
		"/etc/systemd/system/docker.service.d/40-flannel.conf",
		"/etc/systemd/system/kubelet.service",
		"/etc/kubernetes/manifests/kube-apiserver.yaml",
		"/etc/kubernetes/manifests/kube-proxy.yaml",
		"/etc/kubernetes/manifests/kube-controller-manager.yaml",
		"/etc/kubernetes/manifests/kube-scheduler.yaml",
		"/etc/systemd/system/calico-node.service",
		"/etc/kubernetes/manifests/policy-controller.yaml",
		"/etc/kubernetes/cni/net.d/10-calico.conf",
	} {
		if !strings.Contains(check.out, "+++ "+f+" (after)\n") {
			t.Errorf("check shows no diff of %s", f)
		}
	}
	key, err := os.ReadFile(filepath.Join(w.tls, "apiserver-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(check.out, "+++ /etc/kubernetes/ssl/apiserver-key.pem") || strings.Contains(check.out, "PRIVATE KEY") ||
		strings.Contains(check.out, strings.Split(string(key), "\n")[1]) {
		t.Errorf("check shows the private key:\n%s", check.out)
	}
	// A check before the first run: the root has no fingerprint key yet.
	if marker := ui.Sensitive(engine.Change{After: key}); !strings.Contains(check.out, marker) {
		t.Errorf("check does not show the key as %s:\n%s", marker, check.out)
	}

	run := kplay(t, "run", w.root, w.vars)
	run.mustExit(t, "run on a fresh root", 0)
	compareGolden(t, w.root, "../testdata/golden/master-calico", w.goldenVars())
	checkTLS(t, w.root, w.tls)
	if got, want := symlinks(t, w.root), wantLinks(true); !reflect.DeepEqual(got, want) {
		t.Errorf("symlinks in the root:\n got %v\nwant %v", got, want)
	}
	checkNetworkConfig(t, w.etcd.URL, "10.2.0.0/16")
	if got, want := w.api.Created(), []string{"kube-system", "calico-system"}; !slices.Equal(got, want) {
		t.Errorf("namespaces created: %v, want %v", got, want)
	}

	again := kplay(t, "run", w.root, w.vars)
	again.mustExit(t, "second run", 0)
	checkNothingToDo(t, "second run", again)
	if c := ui.Count(again.results); c.Changes() != 0 {
		t.Errorf("second run: %+v, want 0 changes", c)
	}
	if posts := w.api.PostsSent(); posts != 2 {
		t.Errorf("second run sent POSTs again (%d in all): %v", posts, w.api.Requests())
	}
	compareGolden(t, w.root, "../testdata/golden/master-calico", w.goldenVars())

	last := kplay(t, "check", w.root, w.vars)
	last.mustExit(t, "check after run", 0)
	checkNothingToDo(t, "check after run", last)
}

// TestMasterWithoutCalico: CALICO=false leaves out the three Calico files,
// the calico-node unit's start and enable, and the calico-system
// namespace, and leaves kubelet's --network-plugin= blank.
func TestMasterWithoutCalico(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	vars := w.with("CALICO=false")

	check := kplay(t, "check", w.root, vars)
	check.mustExit(t, "check", 2)
	checkGuideOrder(t, check, guideSteps(false, w.apiURL))

	run := kplay(t, "run", w.root, vars)
	run.mustExit(t, "run", 0)
	for _, l := range run.lines() {
		if strings.Contains(l, "calico") {
			t.Errorf("a Calico step with CALICO=false: %s", l)
		}
	}
	compareGolden(t, w.root, "../testdata/golden/master-nocalico", w.goldenVars())
	checkTLS(t, w.root, w.tls)
	if got, want := symlinks(t, w.root), wantLinks(false); !reflect.DeepEqual(got, want) {
		t.Errorf("symlinks in the root:\n got %v\nwant %v", got, want)
	}
	checkNetworkConfig(t, w.etcd.URL, "10.2.0.0/16")
	if got, want := w.api.Created(), []string{"kube-system"}; !slices.Equal(got, want) {
		t.Errorf("namespaces created: %v, want %v", got, want)
	}

	again := kplay(t, "check", w.root, vars)
	again.mustExit(t, "check after run", 0)
	checkNothingToDo(t, "check after run", again)
}

// TestMasterCalicoOffAfterOn: CALICO=true, then CALICO=false, leaves
// the tree a fresh CALICO=false run makes, but for kplay's own state;
// and a check then has nothing to do (issue 13).
func TestMasterCalicoOffAfterOn(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	kplay(t, "run", w.root, w.with("CALICO=true")).mustExit(t, "run with Calico", 0)
	off := kplay(t, "run", w.root, w.with("CALICO=false"))
	off.mustExit(t, "run without Calico", 0)
	for _, want := range []string{
		"manifest /etc/kubernetes/manifests/policy-controller.yaml: deleted",
		"file /etc/kubernetes/cni/net.d/10-calico.conf: deleted",
		"unit /etc/systemd/system/calico-node.service: deleted",
	} {
		if !strings.Contains(off.out, want) {
			t.Errorf("the run without Calico does not say %q:\n%s", want, off.out)
		}
	}
	fresh := copyRoot(t)
	kplay(t, "run", fresh, w.with("CALICO=false")).mustExit(t, "fresh run without Calico", 0)
	got, want := treeOf(t, w.root), treeOf(t, fresh)
	if !slices.Equal(want, got) {
		t.Errorf("the root after Calico on then off differs from a fresh run without it (-fresh +got):\n%s", lineDiff(want, got))
	}
	again := kplay(t, "check", w.root, w.with("CALICO=false"))
	again.mustExit(t, "check after", 0)
}

// treeOf lists root's paths with their kind, mode and content hash,
// leaving out kplay's own state (/run, /var/lib/kplay).
func treeOf(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "run" || rel == "var/lib/kplay" {
			return filepath.SkipDir
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v", rel, fi.Mode())
		switch {
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(data))
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMasterNewK8sVersion: a new K8S_VER changes exactly the four
// manifests and the kubelet unit; kubelet alone is restarted (on an
// offline root its restart and the daemon-reload are listed as skipped,
// the other restarts are left alone).
func TestMasterNewK8sVersion(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	kplay(t, "run", w.root, w.vars).mustExit(t, "first run", 0)

	const newVer = "v1.4.1_coreos.0"
	vars := w.with("K8S_VER=" + newVer)
	wantChanged := []string{
		"unit /etc/systemd/system/kubelet.service: update",
		"manifest /etc/kubernetes/manifests/kube-apiserver.yaml: update",
		"manifest /etc/kubernetes/manifests/kube-proxy.yaml: update",
		"manifest /etc/kubernetes/manifests/kube-controller-manager.yaml: update",
		"manifest /etc/kubernetes/manifests/kube-scheduler.yaml: update",
	}
	before := roottest.State(t, w.root)
	for _, mode := range []string{"check", "run"} {
		o := kplay(t, mode, w.root, vars)
		o.mustExit(t, mode+" with a new K8S_VER", map[string]int{"check": 2, "run": 0}[mode])
		if got := o.changed(); !slices.Equal(got, wantChanged) {
			t.Errorf("%s with a new K8S_VER changed (-want +got):\n%s", mode, lineDiff(wantChanged, got))
		}
		if r := o.find(t, "systemctl daemon-reload"); r.Status != engine.Skipped || r.Reason != "offline root" {
			t.Errorf("%s: daemon-reload %s (%s), want skipped (offline root)", mode, r.Status, r.Reason)
		}
		for _, r := range o.restarts() {
			target := r.Step.Meta().Target
			want := engine.Unchanged
			if target == "restart kubelet.service" {
				want = engine.Skipped // would restart: not applicable offline
			}
			if r.Status != want {
				t.Errorf("%s: %s: %s (%s), want %s", mode, target, r.Status, r.Reason, want)
			}
		}
		if mode == "check" {
			if after := roottest.State(t, w.root); after != before {
				t.Errorf("check wrote in the root")
			}
			for _, want := range []string{
				"-Environment=KUBELET_VERSION=v1.4.0_coreos.0\n",
				"+Environment=KUBELET_VERSION=" + newVer + "\n",
				"-    image: quay.io/coreos/hyperkube:v1.4.0_coreos.0\n",
				"+    image: quay.io/coreos/hyperkube:" + newVer + "\n",
			} {
				if !strings.Contains(o.out, want) {
					t.Errorf("check shows no line %q:\n%s", want, o.out)
				}
			}
		}
	}
	for _, f := range []string{
		"etc/systemd/system/kubelet.service",
		"etc/kubernetes/manifests/kube-apiserver.yaml",
		"etc/kubernetes/manifests/kube-proxy.yaml",
		"etc/kubernetes/manifests/kube-controller-manager.yaml",
		"etc/kubernetes/manifests/kube-scheduler.yaml",
	} {
		data, err := os.ReadFile(filepath.Join(w.root, f))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), "v1.4.0_coreos.0") || !strings.Contains(string(data), newVer) {
			t.Errorf("/%s after the run:\n%s", f, data)
		}
	}
	kplay(t, "check", w.root, vars).mustExit(t, "check after the run", 0)
}

// TestMasterOfflineSkipTagsAPI: with --skip-tags api the playbook runs on
// an offline root with no API server; enable makes the [Install] symlinks,
// the same ones as `systemctl --root` when it is installed.
func TestMasterOfflineSkipTagsAPI(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	vars := w.with("K8S_API=" + closedURL(t))

	run := kplay(t, "run", w.root, vars, "api")
	run.mustExit(t, "run --skip-tags api", 0)
	for _, step := range []string{"wait_http " + vars["K8S_API"] + "/version", "kube_create Namespace/kube-system", "kube_create Namespace/calico-system"} {
		if r := run.find(t, step); r.Status != engine.Skipped || r.Reason != "not selected by tags" {
			t.Errorf("%s: %s (%s), want skipped (not selected by tags)", step, r.Status, r.Reason)
		}
	}
	for _, r := range run.results {
		m := r.Step.Meta()
		if m.Kind == "systemctl" && (strings.HasPrefix(m.Target, "start ") || strings.HasPrefix(m.Target, "restart ") || m.Target == "daemon-reload") {
			if r.Status != engine.Skipped || r.Reason != "offline root" {
				t.Errorf("first run: systemctl %s: %s (%s), want skipped (offline root)", m.Target, r.Status, r.Reason)
			}
		}
	}
	compareGolden(t, w.root, "../testdata/golden/master-calico", w.goldenVars())
	checkTLS(t, w.root, w.tls)
	checkNetworkConfig(t, w.etcd.URL, "10.2.0.0/16")
	got := symlinks(t, w.root)
	if want := wantLinks(true); !reflect.DeepEqual(got, want) {
		t.Errorf("symlinks in the root:\n got %v\nwant %v", got, want)
	}
	if len(w.api.Requests()) > 0 {
		t.Errorf("the API server was asked: %v", w.api.Requests())
	}

	check := kplay(t, "check", w.root, vars, "api")
	check.mustExit(t, "check --skip-tags api after run", 0)
	checkNothingToDo(t, "check after run", check)

	// The same links as systemctl --root makes, from the same unit files.
	systemctl, err := exec.LookPath("systemctl")
	if err != nil {
		t.Skip("systemctl is not installed: enable not compared with systemctl --root")
	}
	ref := copyRoot(t)
	for _, f := range []string{"etc/systemd/system/kubelet.service", "etc/systemd/system/calico-node.service"} {
		data, err := os.ReadFile(filepath.Join(w.root, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ref, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(systemctl, "--root="+ref, "enable", "flanneld.service", "kubelet.service", "calico-node.service")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd, err, out)
	}
	if want := symlinks(t, ref); !reflect.DeepEqual(got, want) {
		t.Errorf("kplay's enable links differ from systemctl --root's:\n kplay %v\n systemctl %v", got, want)
	}
}

// closedURL is an http URL where nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	return url
}

// TestMasterPreflight: a root without kubelet-wrapper (CoreOS before
// 962.0.0) stops the run before anything is written, saying why.
func TestMasterPreflight(t *testing.T) {
	t.Parallel()
	root := copyRoot(t)
	if err := os.Remove(filepath.Join(root, "usr/lib/coreos/kubelet-wrapper")); err != nil {
		t.Fatal(err)
	}
	tls := t.TempDir()
	writeTLS(t, tls)
	before := roottest.State(t, root)
	o := kplay(t, "run", root, map[string]string{
		"ADVERTISE_IP":   "10.0.0.10",
		"ETCD_ENDPOINTS": closedURL(t),
		"TLS_DIR":        tls,
		"K8S_API":        closedURL(t),
	})
	o.mustExit(t, "run without kubelet-wrapper", 1)
	msg := o.err.Error()
	for _, want := range []string{"/usr/lib/coreos/kubelet-wrapper", "962.0.0"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if !regexp.MustCompile(`^master\.star:\d+:\d+: `).MatchString(msg) {
		t.Errorf("error %q does not start with its position in master.star", msg)
	}
	if after := roottest.State(t, root); after != before {
		t.Errorf("the failed run wrote in the root")
	}
}

// TestMasterVarRelations: vars that cannot work together stop the
// playbook at evaluation, with the values in the message.
func TestMasterVarRelations(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		vars []string
		want []string // in the message
	}{
		"dns_outside_service_range": {
			vars: []string{"DNS_SERVICE_IP=10.4.0.10"},
			want: []string{"DNS_SERVICE_IP", "10.4.0.10", "SERVICE_IP_RANGE", "10.3.0.0/24"},
		},
		"dns_outside_custom_service_range": {
			vars: []string{"SERVICE_IP_RANGE=10.100.0.0/16"},
			want: []string{"DNS_SERVICE_IP", "10.3.0.10", "10.100.0.0/16"},
		},
		"pod_network_inside_service_range": {
			vars: []string{"POD_NETWORK=10.3.0.128/25"},
			want: []string{"POD_NETWORK", "10.3.0.128/25", "SERVICE_IP_RANGE", "10.3.0.0/24"},
		},
		"pod_network_around_service_range": {
			vars: []string{"POD_NETWORK=10.0.0.0/8"},
			want: []string{"POD_NETWORK", "10.0.0.0/8", "SERVICE_IP_RANGE", "10.3.0.0/24"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			vars := map[string]string{"ADVERTISE_IP": "10.0.0.10", "ETCD_ENDPOINTS": "http://127.0.0.1:2379", "TLS_DIR": "/nonexistent"}
			for _, kv := range tc.vars {
				k, v, _ := strings.Cut(kv, "=")
				vars[k] = v
			}
			_, err := evaluate(t, vars)
			if err == nil {
				t.Fatalf("evaluation with %v succeeded", tc.vars)
			}
			var perr *engine.Error
			if !errors.As(err, &perr) || !perr.Pos.IsValid() {
				t.Errorf("error %q has no playbook position", err)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
	// The defaults, the guide's example, work together.
	vars := map[string]string{"ADVERTISE_IP": "10.0.0.10", "ETCD_ENDPOINTS": "http://127.0.0.1:2379"}
	if _, err := evaluate(t, vars); err != nil {
		t.Errorf("evaluation with the defaults: %v", err)
	}
}
