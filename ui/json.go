package ui

import (
	"encoding/json"
	"io"

	"github.com/kplay-dev/kplay/engine"
)

// Document is what check and run print with --output json, and what a
// fleet run reads back from each host. Its field names are an interface:
// changing them is an API change. There are no timestamps, and steps
// keep plan order.
type Document struct {
	Command  string    `json:"command"`
	Playbook string    `json:"playbook"`
	Steps    []DocStep `json:"steps"`
	Counts   Counts    `json:"counts"`
	Changed  bool      `json:"changed"`
	Error    string    `json:"error,omitempty"`
}

// DocStep is one step of a Document: every step of the plan, changed or
// not.
type DocStep struct {
	ID        int      `json:"id"`
	Position  string   `json:"position"`
	Kind      string   `json:"kind"`
	Target    string   `json:"target"`
	Status    string   `json:"status"`
	Action    string   `json:"action"`
	Summary   string   `json:"summary"`
	Reason    string   `json:"reason,omitempty"`
	Diff      string   `json:"diff,omitempty"`
	Sensitive bool     `json:"sensitive"`
	Tags      []string `json:"tags"`
}

// exact is the identity: JSON carries every string as it is, for
// programs. encoding/json escapes C0 controls but writes DEL, C1 controls
// and bidi characters as they are (and a byte that is not UTF-8 as
// U+FFFD), so a terminal is the wrong place to read it.
func exact(s string) string { return s }

func writeJSON(w io.Writer, mode, playbook string, results []engine.Result, c Counts, err error) error {
	doc := Document{Command: mode, Playbook: playbook, Steps: []DocStep{}, Counts: c, Changed: engine.Changes(results) > 0}
	if err != nil {
		doc.Error = err.Error()
	}
	doc.Steps = append(doc.Steps, DocSteps(results)...)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// DocSteps are results as a Document lists them: every step, in plan
// order, with its diff exactly as it is (a sensitive change's is its
// size and fingerprint, never its content).
func DocSteps(results []engine.Result) []DocStep {
	steps := make([]DocStep, 0, len(results))
	for _, r := range results {
		m := r.Step.Meta()
		tags := []string(m.Tags)
		if tags == nil {
			tags = []string{}
		}
		action := r.Change.Action.String()
		if r.Status != engine.Changed {
			action = engine.None.String()
		}
		steps = append(steps, DocStep{
			ID: m.ID, Position: m.Pos.String(), Kind: m.Kind, Target: m.Target,
			Status: r.Status.String(), Action: action, Summary: r.Change.Summary, Reason: r.Reason,
			Diff: diffText(r, exact), Sensitive: r.Change.Sensitive, Tags: tags,
		})
	}
	return steps
}
