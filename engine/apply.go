package engine

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/kplay-dev/kplay/host"
)

// Status says what became of a step in one pass over the plan.
type Status int

// The statuses of a step.
const (
	Unchanged Status = iota // Diff found nothing to do, or nothing it watches changed
	Changed                 // Diff found a change; Apply made it (on the dry host in check)
	Skipped                 // not selected by --tags/--skip-tags
)

var statusNames = [...]string{Unchanged: "unchanged", Changed: "changed", Skipped: "skipped"}

func (s Status) String() string { return statusNames[s] }

// Result is what happened to one step.
type Result struct {
	Step   Step
	Status Status
	Change Change
	Reason string // why a step was skipped or left alone without a diff
}

// Selection picks steps by tag: a step runs if Tags is empty or it has one
// of them, and it has none of SkipTags.
type Selection struct {
	Tags     []string
	SkipTags []string
}

func (sel Selection) selects(m *StepMeta) bool {
	if len(sel.Tags) > 0 && !slices.ContainsFunc(m.Tags, func(t string) bool { return slices.Contains(sel.Tags, t) }) {
		return false
	}
	return !slices.ContainsFunc(m.Tags, func(t string) bool { return slices.Contains(sel.SkipTags, t) })
}

// Unused returns a warning for each tag in the selection that no step of
// the plan has, with a suggestion when a tag is close.
func (sel Selection) Unused(p *Plan) []string {
	have := map[string]bool{}
	for _, s := range p.Steps {
		for _, t := range s.Meta().Tags {
			have[t] = true
		}
	}
	var known []string
	for t := range have {
		known = append(known, t)
	}
	sort.Strings(known)
	var warnings []string
	for _, flag := range []struct {
		name string
		tags []string
	}{{"--tags", sel.Tags}, {"--skip-tags", sel.SkipTags}} {
		for _, t := range flag.tags {
			if have[t] {
				continue
			}
			w := fmt.Sprintf("%s %s: no step has this tag", flag.name, t)
			if s := Suggest(t, known); s != "" {
				w += fmt.Sprintf(" (did you mean %s?)", s)
			} else if len(known) > 0 {
				w += fmt.Sprintf(" (tags in this playbook: %s)", strings.Join(known, ", "))
			}
			warnings = append(warnings, w)
		}
	}
	return warnings
}

// Observer is told about each step as soon as it is done.
type Observer func(Result)

// Apply diffs and applies the plan's steps in order against h, stopping
// at the first error. It returns the results of the steps done before
// the error, and the error as *Error at the failing step's position.
func Apply(ctx context.Context, p *Plan, h host.Host, sel Selection, observe Observer) ([]Result, error) {
	results := make([]Result, 0, len(p.Steps))
	for _, s := range p.Steps {
		if err := ctx.Err(); err != nil {
			return results, err
		}
		r, err := applyStep(ctx, s, h, sel, results)
		if err != nil {
			m := s.Meta()
			return results, &Error{Pos: m.Pos, Err: fmt.Errorf("%s %s: %w", m.Kind, m.Target, err)}
		}
		results = append(results, r)
		if observe != nil {
			observe(r)
		}
	}
	return results, nil
}

func applyStep(ctx context.Context, s Step, h host.Host, sel Selection, done []Result) (Result, error) {
	m := s.Meta()
	if !sel.selects(m) {
		return Result{Step: s, Status: Skipped, Reason: "not selected by tags"}, nil
	}
	if len(m.OnChange) > 0 && !slices.ContainsFunc(m.OnChange, func(id int) bool { return done[id].Status == Changed }) {
		return Result{Step: s, Status: Unchanged, Reason: "nothing in on_change changed"}, nil
	}
	c, err := s.Diff(ctx, h)
	if err != nil {
		return Result{}, err
	}
	if !c.Action.Changes() {
		return Result{Step: s, Status: Unchanged, Change: c}, nil
	}
	if err := s.Apply(ctx, h, c); err != nil {
		return Result{}, err
	}
	return Result{Step: s, Status: Changed, Change: c}, nil
}

// Check applies the plan to a dry host over real: every change is
// computed and kept in memory, and real is never written.
func Check(ctx context.Context, p *Plan, real host.Host, sel Selection, observe Observer) ([]Result, error) {
	return Apply(ctx, p, host.NewDry(real), sel, observe)
}

// Converge converges real to the plan. It first checks the whole plan on a dry
// host, so that bad input found by any step's Diff stops the run before
// the first write; then it applies the plan to real.
func Converge(ctx context.Context, p *Plan, real host.Host, sel Selection, observe Observer) ([]Result, error) {
	if _, err := Check(ctx, p, real, sel, nil); err != nil {
		return nil, err
	}
	return Apply(ctx, p, real, sel, observe)
}
