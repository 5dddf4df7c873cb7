package engine_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/builtins"
	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/etcdv2"
)

// chattyStep reports progress and fails with messages that quote what it
// was given, as a wait or a server's error would.
type chattyStep struct {
	meta engine.StepMeta
	text string
}

func (s *chattyStep) Meta() *engine.StepMeta { return &s.meta }
func (s *chattyStep) Diff(ctx context.Context, _ host.Host) (engine.Change, error) {
	engine.Progress(ctx)("still waiting for " + s.text)
	return engine.Change{}, errors.New("server said: no " + s.text)
}
func (s *chattyStep) Apply(context.Context, host.Host, engine.Change) error { return nil }

// TestSecretFlowIsRedactedEverywhere: a sensitive var's value, and a
// URL's credentials, are left out of the step's target, its progress
// lines and its error, whichever builtin carried them.
func TestSecretFlowIsRedactedEverywhere(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{"play.star": `
TOKEN = var("TOKEN", sensitive = True)
chatty("http://user:pw@127.0.0.1:1/x?t=" + TOKEN)
`})
	predeclared := builtins.Predeclared()
	predeclared["chatty"] = starlark.NewBuiltin("chatty", func(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		text := string(args[0].(starlark.String))
		return engine.Record(thread, &chattyStep{meta: engine.StepMeta{Kind: "chatty", Target: text}, text: text})
	})
	plan, err := engine.Evaluate(t.Context(), engine.EvalOptions{
		Playbook: filepath.Join(dir, "play.star"), Builtins: predeclared,
		Vars: map[string]string{"TOKEN": "tok-9f8e7d"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := plan.Steps[0].Meta().Target, "http://xxxxx@127.0.0.1:1/x?t=(sensitive)"; got != want {
		t.Errorf("target %q, want %q", got, want)
	}
	var mu sync.Mutex
	var progress []string
	ctx := engine.WithProgress(t.Context(), func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		progress = append(progress, msg)
	})
	real, err := host.OpenReal(t.TempDir(), true, host.WithEtcd(etcdv2.New))
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close()
	_, err = engine.Check(ctx, plan, real, engine.Selection{}, nil)
	wantErr := "play.star:3:7: chatty http://xxxxx@127.0.0.1:1/x?t=(sensitive): server said: no http://xxxxx@127.0.0.1:1/x?t=(sensitive)"
	if err == nil || !strings.HasSuffix(err.Error(), wantErr) {
		t.Errorf("error %v, want it to end %q", err, wantErr)
	}
	var perr *engine.Error
	if !errors.As(err, &perr) {
		t.Errorf("a redacted error is still an *engine.Error: %T", err)
	}
	want := []string{"still waiting for http://xxxxx@127.0.0.1:1/x?t=(sensitive)"}
	if strings.Join(progress, "\n") != strings.Join(want, "\n") {
		t.Errorf("progress %q, want %q", progress, want)
	}
}
