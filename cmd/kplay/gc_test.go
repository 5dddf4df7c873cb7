package main

import (
	"math"
	"os"
	"runtime/debug"
	"testing"
)

// TestBigPlanBoundsMemory: a plan of 1,000 steps or more gets GOGC=50 and
// a soft memory limit that grows with it, unless the environment sets
// them; a small plan keeps Go's defaults.
func TestBigPlanBoundsMemory(t *testing.T) {
	for _, env := range []string{"GOGC", "GOMEMLIMIT"} {
		if v, set := os.LookupEnv(env); set {
			t.Skipf("%s=%s is set for the test process", env, v)
		}
	}
	gc, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	defer func() { debug.SetGCPercent(gc); debug.SetMemoryLimit(limit) }()
	settings := func() (int, int64) {
		g := debug.SetGCPercent(100)
		l := debug.SetMemoryLimit(math.MaxInt64)
		return g, l
	}

	lowerGCGoal(999)
	if g, l := settings(); g != 100 || l != math.MaxInt64 {
		t.Errorf("999 steps: GOGC %d, limit %d; want Go's defaults", g, l)
	}
	lowerGCGoal(10000)
	g, l10k := settings()
	if g != 50 || l10k != 12<<20+10000*2816 {
		t.Errorf("10,000 steps: GOGC %d, limit %d; want 50 and %d", g, l10k, 12<<20+10000*2816)
	}
	lowerGCGoal(20000)
	if _, l := settings(); l <= l10k {
		t.Errorf("20,000 steps: limit %d, want more than 10,000 steps' %d", l, l10k)
	}

	t.Setenv("GOGC", "100")
	t.Setenv("GOMEMLIMIT", "1GiB")
	lowerGCGoal(10000)
	if g, l := settings(); g != 100 || l != math.MaxInt64 {
		t.Errorf("GOGC and GOMEMLIMIT set: GOGC %d, limit %d; want them left alone", g, l)
	}
}
