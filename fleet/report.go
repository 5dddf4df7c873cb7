package fleet

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kplay-dev/kplay/ui"
)

// ReportOptions shape the text report.
type ReportOptions struct {
	// Mode is "check" or "run".
	Mode string
	// DiffLimit is --diff-limit: the most rows of one diff (0 for all).
	DiffLimit int
	// Verbose lists unchanged and skipped steps too.
	Verbose bool
	// Quiet prints only the summary table.
	Quiet bool
}

// change is one distinct step outcome and the hosts it is on.
type change struct {
	step  ui.DocStep
	hosts []string
}

// groupChanges lists each distinct listed step once, in the order first
// seen (hosts in fleet order, steps in plan order), with the hosts that
// have it: "3 hosts: kubelet.service updated, same diff".
func groupChanges(results []Result, verbose bool) []*change {
	var order []*change
	byKey := map[string]*change{}
	for _, r := range results {
		if r.Doc == nil {
			continue
		}
		for _, st := range r.Doc.Steps {
			if !verbose && st.Action == "none" {
				continue
			}
			key := strings.Join([]string{st.Position, st.Kind, st.Target, st.Status, st.Action, st.Summary, st.Reason, st.Diff}, "\x00")
			if st.Sensitive {
				// Two hosts' secrets cannot be compared (each root
				// fingerprints with its own key): never "the same".
				key += "\x00" + r.Host.Name
			}
			c := byKey[key]
			if c == nil {
				c = &change{step: st}
				byKey[key] = c
				order = append(order, c)
			}
			c.hosts = append(c.hosts, r.Host.Name)
		}
	}
	return order
}

// WriteText writes the fleet's outcome for a person: each distinct
// change once with the hosts it is on and its diff, then a table of
// hosts with their outcome, counts and time, and what went wrong.
func WriteText(w io.Writer, results []Result, opts ReportOptions) error {
	if !opts.Quiet {
		changes := groupChanges(results, opts.Verbose)
		for _, c := range changes {
			st := c.step
			who := strings.Join(c.hosts, ", ")
			if len(c.hosts) > 1 && len(c.hosts) == countDocs(results) {
				who = fmt.Sprintf("all %d hosts", len(c.hosts))
			}
			word := st.Action
			if st.Action == "none" {
				word = st.Status
			}
			line := fmt.Sprintf("%s: %s  %s %s  %s", ui.Visible(who), ui.Visible(st.Position), ui.Visible(st.Kind), ui.Visible(st.Target), ui.Visible(word))
			if st.Summary != "" {
				line += "  " + ui.Visible(st.Summary)
			}
			if st.Reason != "" {
				line += " (" + ui.Visible(st.Reason) + ")"
			}
			fmt.Fprintln(w, line)
			if st.Diff != "" {
				// Indented: no line a host sends starts where the
				// report's own lines do.
				d := strings.TrimSuffix(ui.CutDiff(st.Diff, opts.DiffLimit), "\n")
				fmt.Fprintln(w, "  "+strings.ReplaceAll(d, "\n", "\n  "))
			}
		}
		if len(changes) > 0 {
			fmt.Fprintln(w)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tOUTCOME\tCREATE\tUPDATE\tDELETE\tRUN\tRESTART\tUNCHANGED\tSKIPPED\tTIME")
	for _, r := range results {
		c := ui.Counts{}
		if r.Doc != nil {
			c = r.Doc.Counts
		}
		t := r.Timing.Dial + r.Timing.Transfer + r.Timing.Remote
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", ui.Visible(r.Host.Name), r.Outcome,
			c.Create, c.Update, c.Delete, c.Run, c.Restart, c.Unchanged, c.Skipped, t.Round(10*time.Millisecond))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		if r.Err != nil {
			// Each error names its host first.
			fmt.Fprintln(w, ui.VisibleMessage(r.Err.Error()))
		}
	}
	fmt.Fprintln(w, Summary(results))
	return nil
}

func countDocs(results []Result) int {
	n := 0
	for _, r := range results {
		if r.Doc != nil {
			n++
		}
	}
	return n
}

// Summary is the closing line: how many hosts had each outcome.
func Summary(results []Result) string {
	n := map[Outcome]int{}
	for _, r := range results {
		n[r.Outcome]++
	}
	parts := []string{}
	for _, o := range []Outcome{OK, Changes, Failed, Unreachable, NotRun} {
		if n[o] > 0 || o == OK {
			parts = append(parts, fmt.Sprintf("%d %s", n[o], o))
		}
	}
	noun := "hosts"
	if len(results) == 1 {
		noun = "host"
	}
	return fmt.Sprintf("%s (%d %s)", strings.Join(parts, ", "), len(results), noun)
}

// jsonHost is one host in the fleet's JSON document.
type jsonHost struct {
	Name     string     `json:"name"`
	Address  string     `json:"address"`
	Outcome  string     `json:"outcome"`
	Error    string     `json:"error,omitempty"`
	ExitCode int        `json:"exit_code"`
	Timing   jsonTiming `json:"timing"`
	// BinarySent: the host had not this kplay in its cache.
	BinarySent bool         `json:"binary_sent"`
	Document   *ui.Document `json:"document"`
}

type jsonTiming struct {
	DialMS     int64 `json:"dial_ms"`
	TransferMS int64 `json:"transfer_ms"`
	RemoteMS   int64 `json:"remote_ms"`
}

// WriteJSON writes the fleet's outcome as one JSON document: each host
// with its outcome and its own document, as that host's kplay wrote it.
func WriteJSON(w io.Writer, mode, playbook string, results []Result) error {
	return writeJSON(w, mode, playbook, results, nil)
}

// WriteJSONError writes the document of a fleet run that stopped before
// it contacted any host (bad flags, inventory or vars): no hosts, and
// the error.
func WriteJSONError(w io.Writer, mode, playbook string, err error) error {
	return writeJSON(w, mode, playbook, nil, err)
}

func writeJSON(w io.Writer, mode, playbook string, results []Result, err error) error {
	doc := struct {
		Command  string     `json:"command"`
		Playbook string     `json:"playbook"`
		Hosts    []jsonHost `json:"hosts"`
		Error    string     `json:"error,omitempty"`
	}{Command: mode, Playbook: playbook, Hosts: []jsonHost{}}
	if err != nil {
		doc.Error = err.Error()
	}
	for _, r := range results {
		h := jsonHost{Name: r.Host.Name, Address: r.Host.Address, Outcome: r.Outcome.String(), ExitCode: r.ExitCode, Document: r.Doc,
			Timing: jsonTiming{r.Timing.Dial.Milliseconds(), r.Timing.Transfer.Milliseconds(), r.Timing.Remote.Milliseconds()}}
		h.BinarySent = r.BinarySent
		if r.Err != nil {
			h.Error = r.Err.Error()
		}
		doc.Hosts = append(doc.Hosts, h)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
