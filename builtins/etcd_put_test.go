package builtins

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/etcdtest"
	"github.com/kplay-dev/kplay/host/etcdv2"
)

// uniqueKey is a key no other test uses.
func uniqueKey(t *testing.T) string {
	return "/kplay-test/" + strings.NewReplacer("/", "-").Replace(t.Name()) + "/config"
}

func TestEtcdPutCreateUnchangedUpdate(t *testing.T) {
	t.Parallel()
	url := etcdURL(t)
	key := uniqueKey(t)
	src := fmt.Sprintf(`etcd_put(%q, {"Network": "10.2.0.0/16", "Backend": {"Type": "vxlan"}}, endpoints = [%q])`, key, url)
	plan := mustEvaluate(t, src)
	root := t.TempDir()

	results := mustApply(t, plan, root, true)
	if got := actions(results); !slices.Equal(got, []string{"create"}) {
		t.Fatalf("check: got %v, want [create]", got)
	}
	if _, exists, _ := etcdtest.Get(t, url, key); exists {
		t.Fatal("check wrote the key")
	}
	mustApply(t, plan, root, false)
	want := `{"Backend":{"Type":"vxlan"},"Network":"10.2.0.0/16"}`
	value, _, index := etcdtest.Get(t, url, key)
	if value != want {
		t.Errorf("value: got %s, want %s (compact JSON, sorted keys)", value, want)
	}
	if got := actions(mustApply(t, plan, root, false)); !slices.Equal(got, []string{"-"}) {
		t.Errorf("second run: got %v, want unchanged", got)
	}
	if _, _, again := etcdtest.Get(t, url, key); again != index {
		t.Errorf("second run wrote the key: modifiedIndex %d → %d", index, again)
	}

	// The same JSON with other spacing and key order is no change.
	etcdtest.Put(t, url, key, `{ "Network": "10.2.0.0/16", "Backend": { "Type": "vxlan" } }`)
	if got := actions(mustApply(t, plan, root, true)); !slices.Equal(got, []string{"-"}) {
		t.Errorf("JSON equal but for spacing: got %v, want unchanged", got)
	}

	etcdtest.Put(t, url, key, `{"Network":"10.9.0.0/16","Backend":{"Type":"vxlan"}}`)
	results = mustApply(t, plan, root, false)
	c := results[0].Change
	if c.Action != engine.Update || !strings.Contains(string(c.Before), "10.9.0.0/16") || !strings.Contains(string(c.After), "10.2.0.0/16") {
		t.Errorf("update: got %v %q → %q", c.Action, c.Before, c.After)
	}
	if value, _, _ := etcdtest.Get(t, url, key); value != want {
		t.Errorf("value after update: got %s", value)
	}
}

func TestEtcdPutIfAbsentRace(t *testing.T) {
	t.Parallel()
	url := etcdURL(t)
	key := uniqueKey(t)
	var wg sync.WaitGroup
	results := make([][]engine.Result, 2)
	errs := make([]error, 2)
	for i := range 2 {
		plan := mustEvaluate(t, fmt.Sprintf(`etcd_put(%q, "writer %d", endpoints = %q, if_absent = True)`, key, i, url))
		root := t.TempDir()
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = apply(t, plan, root, false)
		}()
	}
	wg.Wait()
	var created, lost int
	for i := range 2 {
		if errs[i] != nil {
			t.Fatalf("writer %d: %v", i, errs[i])
		}
		r := results[i][0]
		switch {
		case r.Status == engine.Changed && r.Change.Action == engine.Create:
			created++
		case r.Status == engine.Unchanged && (r.Reason == "already set by another writer" || r.Change.Summary == "set already; if_absent keeps it"):
			lost++
		default:
			t.Errorf("writer %d: got %v %q %q", i, r.Status, r.Reason, r.Change.Summary)
		}
	}
	if created != 1 || lost != 1 {
		t.Errorf("got %d created and %d unchanged, want exactly one of each", created, lost)
	}
	if value, _, _ := etcdtest.Get(t, url, key); !strings.HasPrefix(value, "writer ") {
		t.Errorf("value: got %q", value)
	}

	// An existing key is never overwritten with if_absent.
	plan := mustEvaluate(t, fmt.Sprintf(`etcd_put(%q, "late writer", endpoints = %q, if_absent = True)`, key, url))
	if got := actions(mustApply(t, plan, t.TempDir(), false)); !slices.Equal(got, []string{"-"}) {
		t.Errorf("if_absent on a set key: got %v, want unchanged", got)
	}
}

func TestEtcdPutEndpoints(t *testing.T) {
	t.Parallel()
	url := etcdURL(t)
	key := uniqueKey(t)
	dead := "http://127.0.0.1:1"

	plan := mustEvaluate(t, fmt.Sprintf(`etcd_put(%q, "x", endpoints = "%s,%s")`, key, dead, url))
	if got := actions(mustApply(t, plan, t.TempDir(), false)); !slices.Equal(got, []string{"create"}) {
		t.Fatalf("first endpoint dead: got %v, want [create]", got)
	}

	root := t.TempDir()
	plan = mustEvaluate(t, fmt.Sprintf(`
file("/etc/before", content = "x")
etcd_put(%q, "x", endpoints = ["http://127.0.0.1:1", "http://127.0.0.1:2"])
file("/etc/after", content = "x")
`, key))
	began := time.Now()
	_, err := apply(t, plan, root, false)
	if err == nil || !strings.Contains(relErr(err), "play.star:3:9: etcd_put "+key+": ") || !strings.Contains(err.Error(), "http://127.0.0.1:1") {
		t.Fatalf("all endpoints dead: got %v, want an error at play.star:3:9 naming the endpoints", err)
	}
	t.Logf("all endpoints dead: error after %s: %v", time.Since(began).Round(time.Millisecond), err)
	for _, name := range []string{"before", "after"} {
		if _, err := os.Lstat(filepath.Join(root, "etc", name)); !os.IsNotExist(err) {
			t.Errorf("/etc/%s was written although etcd did not answer", name)
		}
	}
}

func TestEtcdPutBadArguments(t *testing.T) {
	t.Parallel()
	tests := map[string]struct{ src, wantErr string }{
		"relative_key":   {`etcd_put("coreos.com/x", "v", endpoints = "http://127.0.0.1:2379")`, `key "coreos.com/x" must be an absolute key`},
		"bad_endpoint":   {`etcd_put("/x", "v", endpoints = ["127.0.0.1:2379"])`, `"127.0.0.1:2379" is not an absolute URL`},
		"no_endpoints":   {`etcd_put("/x", "v", endpoints = [])`, `no URLs`},
		"value_function": {`etcd_put("/x", len, endpoints = "http://127.0.0.1:2379")`, `for parameter value: got builtin_function_or_method`},
		"cert_alone":     {`etcd_put("/x", "v", endpoints = "http://127.0.0.1:2379", cert = "c.pem")`, `give both cert and key_file, or neither`},
		"missing_value":  {`etcd_put("/x", endpoints = "http://127.0.0.1:2379")`, `missing argument for value`},
		"once_host":      {`etcd_put("/x", "v", endpoints = "http://127.0.0.1:2379", once = "host")`, `for parameter "once": want "cluster" (run on one host of a fleet run) or None, got "host"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := evaluate(t, playbook(t, tc.src, nil), nil)
			if err == nil || !strings.HasPrefix(relErr(err), "play.star:1:9: ") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want play.star:1:9: ...%s", err, tc.wantErr)
			}
		})
	}
}

// TestEtcdPutReviewedPlanSwaps: in a run of a reviewed plan
// (engine.WithReviewedPlan), etcd_put writes only over the value its Diff
// saw, with etcd's compare-and-swap; a key changed in between is drift,
// left as the other writer set it.
func TestEtcdPutReviewedPlanSwaps(t *testing.T) {
	t.Parallel()
	url := etcdURL(t)
	key := uniqueKey(t)
	plan := mustEvaluate(t, fmt.Sprintf(`etcd_put(%q, "planned", endpoints = [%q])`, key, url))
	h, err := host.OpenReal(t.TempDir(), true, host.WithEtcd(etcdv2.New))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx := engine.WithReviewedPlan(t.Context())
	step := plan.Steps[0]
	for _, before := range []string{"", "v1"} { // absent, then a value
		if before != "" {
			etcdtest.Put(t, url, key, before)
		}
		c, err := step.Diff(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		etcdtest.Put(t, url, key, "another writer") // between the Diff and the write
		err = step.Apply(ctx, h, c)
		if !errors.Is(err, host.ErrEtcdSwap) || !strings.Contains(err.Error(), "drift") {
			t.Errorf("before %q: Apply after another writer: got %v, want drift (ErrEtcdSwap)", before, err)
		}
		if value, _, _ := etcdtest.Get(t, url, key); value != "another writer" {
			t.Errorf("before %q: the other writer's value was overwritten: %q", before, value)
		}
	}
	// Unchanged since its Diff: written.
	c, err := step.Diff(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := step.Apply(ctx, h, c); err != nil {
		t.Fatal(err)
	}
	if value, _, _ := etcdtest.Get(t, url, key); value != "planned" {
		t.Errorf("value: got %q, want planned", value)
	}
}
