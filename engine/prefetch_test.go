package engine_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/etcdv2"
)

// netStep stands for a step that reads the network: Prefetch counts its
// calls and closes started.
type netStep struct {
	meta       engine.StepMeta
	prefetches atomic.Int32
	once       sync.Once
	started    chan struct{}
}

func (s *netStep) Meta() *engine.StepMeta { return &s.meta }
func (s *netStep) Prefetch(ctx context.Context, h host.Host) {
	if _, dry := h.(*host.Dry); !dry {
		panic("prefetch on a host that is not dry")
	}
	s.prefetches.Add(1)
	s.once.Do(func() { close(s.started) })
}
func (s *netStep) Diff(context.Context, host.Host) (engine.Change, error) {
	return engine.Change{}, nil
}
func (s *netStep) Apply(context.Context, host.Host, engine.Change) error { return nil }

// firstStep's Diff returns only once the network step after it has begun
// its prefetch.
type firstStep struct {
	meta  engine.StepMeta
	after *netStep
}

func (s *firstStep) Meta() *engine.StepMeta { return &s.meta }
func (s *firstStep) Diff(ctx context.Context, _ host.Host) (engine.Change, error) {
	select {
	case <-s.after.started:
		return engine.Change{}, nil
	case <-ctx.Done():
		return engine.Change{}, errors.New("the prefetch of a later step did not start before the first step")
	}
}
func (s *firstStep) Apply(context.Context, host.Host, engine.Change) error { return nil }

// Check starts the prefetch of every selected network step before the
// first step; a run prefetches in its dry pass only.
func TestCheckPrefetchesSelectedSteps(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"check", "run"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			selected := &netStep{meta: engine.StepMeta{Kind: "net", Target: "a", ID: 1}, started: make(chan struct{})}
			skipped := &netStep{meta: engine.StepMeta{Kind: "net", Target: "b", ID: 2, Tags: engine.Tags{"api"}}, started: make(chan struct{})}
			first := &firstStep{meta: engine.StepMeta{Kind: "first", Target: "x"}, after: selected}
			plan := &engine.Plan{Playbook: "play.star", Steps: []engine.Step{first, selected, skipped}}
			real, err := host.OpenReal(t.TempDir(), true, host.WithEtcd(etcdv2.New))
			if err != nil {
				t.Fatal(err)
			}
			defer real.Close()
			// The bound makes a missing prefetch fail the test, not hang it.
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			apply := engine.Check
			if mode == "run" {
				apply = engine.Converge
			}
			if _, err := apply(ctx, plan, real, engine.Selection{SkipTags: []string{"api"}}, nil); err != nil {
				t.Fatal(err)
			}
			if n := selected.prefetches.Load(); n != 1 {
				t.Errorf("the selected step was prefetched %d times, want 1", n)
			}
			if n := skipped.prefetches.Load(); n != 0 {
				t.Errorf("the step skipped by tags was prefetched %d times, want 0", n)
			}
		})
	}
}
