package playbooks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kplay-dev/kplay/builtins"
	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/etcdtest"
	"github.com/kplay-dev/kplay/host/etcdv2"
)

// TestSiteForkChangesOnlyTheKubelet checks site-fork.star against
// master.star: the same vars and root give the same plan but for the
// kubelet unit, which has the fork's flag and RestartSec.
func TestSiteForkChangesOnlyTheKubelet(t *testing.T) {
	t.Parallel()
	etcd := etcdtest.Start(t)
	tls := t.TempDir()
	for _, name := range []string{"ca.pem", "apiserver.pem", "apiserver-key.pem"} {
		if err := os.WriteFile(filepath.Join(tls, name), []byte(name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	vars := map[string]string{"ADVERTISE_IP": "10.0.0.10", "ETCD_ENDPOINTS": etcd.URL, "TLS_DIR": tls}
	plan := func(playbook string) map[string]engine.Result {
		t.Helper()
		p, err := engine.Evaluate(t.Context(), engine.EvalOptions{Playbook: playbook, Vars: vars, Builtins: builtins.Predeclared()})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		for name, content := range map[string]string{
			"usr/lib/coreos/kubelet-wrapper":          "#!/bin/sh\n",
			"usr/lib/systemd/system/flanneld.service": "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
			"usr/lib/systemd/system/docker.service":   "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
		} {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		root, err := host.OpenReal(dir, false, host.WithEtcd(etcdv2.New))
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		results, err := engine.Check(t.Context(), p, root, engine.Selection{SkipTags: []string{"api"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(results) < len(p.Steps) {
			t.Fatalf("%s: %d results for %d steps", playbook, len(results), len(p.Steps))
		}
		byTarget := map[string]engine.Result{}
		for _, s := range p.Steps {
			byTarget[s.Meta().Kind+" "+s.Meta().Target] = engine.Result{Step: s}
		}
		for _, r := range results {
			byTarget[r.Step.Meta().Kind+" "+r.Step.Meta().Target] = r
		}
		return byTarget
	}
	master, fork := plan("master.star"), plan("site-fork.star")
	if len(master) != len(fork) {
		t.Fatalf("master.star has %d steps, the fork %d", len(master), len(fork))
	}
	const kubelet = "unit /etc/systemd/system/kubelet.service"
	for target, m := range master {
		f, ok := fork[target]
		if !ok {
			t.Errorf("the fork lacks %s", target)
			continue
		}
		same := string(m.Change.After) == string(f.Change.After) && m.Change.Summary == f.Change.Summary
		if target == kubelet {
			if same {
				t.Errorf("the fork's kubelet.service is master's")
			}
			continue
		}
		if !same {
			t.Errorf("%s differs:\nmaster: %s\nfork:   %s", target, m.Change.After, f.Change.After)
		}
	}
	after := string(fork[kubelet].Change.After)
	for _, want := range []string{"  --cluster-domain=cluster.local \\\n  --max-pods=50\n", "RestartSec=5\n"} {
		if !strings.Contains(after, want) {
			t.Errorf("the fork's kubelet.service lacks %q:\n%s", want, after)
		}
	}
}
