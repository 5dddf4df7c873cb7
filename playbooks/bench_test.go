package playbooks

import (
	"testing"

	"github.com/kplay-dev/kplay/builtins"
	"github.com/kplay-dev/kplay/engine"
)

// BenchmarkEvaluateMaster measures the evaluation of master.star: parsing,
// running the Starlark and validating every step (the manifests are
// decoded strictly), with no I/O beyond reading the playbook files.
func BenchmarkEvaluateMaster(b *testing.B) {
	vars := map[string]string{"ADVERTISE_IP": "10.0.0.10", "ETCD_ENDPOINTS": "http://127.0.0.1:2379"}
	for b.Loop() {
		if _, err := engine.Evaluate(b.Context(), engine.EvalOptions{Playbook: "master.star", Vars: vars, Builtins: builtins.Predeclared()}); err != nil {
			b.Fatal(err)
		}
	}
}
