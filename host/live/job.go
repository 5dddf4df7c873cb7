package live

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// progressEvery is how often Job reports a job that is still running.
const progressEvery = 2 * time.Second

// journalLines is how many of the unit's last journal lines a JobError shows.
const journalLines = 10

// JobError is the error of a Job that did not end with the result "done":
// systemd ended it otherwise (Result is set), or it did not end within the
// timeout Job was given (Waited is set; the job is left to systemd and may
// still finish: stop the unit to abandon it). The unit's state is read when
// Job gives up; a field is "" when it could not be read.
type JobError struct {
	Action string // "start", "stop", "restart", "reload" or "try-restart"
	Unit   string
	// Result is systemd's job result: "failed", "dependency", "timeout"
	// (systemd's own JobTimeoutSec), "canceled", "skipped", "invalid"
	// (e.g. reload of an inactive unit), "assert", ...; "" when Job
	// stopped waiting.
	Result string
	// Waited is the timeout after which Job stopped waiting; 0 when
	// systemd ended the job.
	Waited time.Duration

	ActiveState string // the unit's ActiveState, e.g. "failed"
	SubState    string // e.g. "failed", "start-pre"
	UnitResult  string // the Result property of a service, socket, mount...: e.g. "exit-code"
	// Journal holds the unit's last journal lines, oldest first, when
	// journalctl on this machine could read them; nil otherwise.
	Journal []string
}

// Error reads, for example,
// "start broken.service: job failed (ActiveState=failed, SubState=failed,
// Result=exit-code); see journalctl -u broken.service" or
// "restart kubelet.service: job did not finish within 1m30s (state
// activating/start)", followed by the journal lines, one per line and
// indented, when there are any.
func (e *JobError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: ", e.Action, e.Unit)
	if e.Result == "" {
		fmt.Fprintf(&b, "job did not finish within %s", e.Waited)
		if e.ActiveState != "" {
			fmt.Fprintf(&b, " (state %s/%s)", e.ActiveState, e.SubState)
		}
	} else {
		b.WriteString(resultText(e.Result))
		var props []string
		for _, p := range []struct{ name, value string }{
			{"ActiveState", e.ActiveState}, {"SubState", e.SubState}, {"Result", e.UnitResult},
		} {
			if p.value != "" {
				props = append(props, p.name+"="+p.value)
			}
		}
		if len(props) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(props, ", "))
		}
		if len(e.Journal) == 0 {
			fmt.Fprintf(&b, "; see journalctl -u %s", e.Unit)
		}
	}
	if len(e.Journal) > 0 {
		fmt.Fprintf(&b, "; journalctl -u %s:", e.Unit)
		for _, l := range e.Journal {
			b.WriteString("\n    " + l)
		}
	}
	return b.String()
}

// resultText words a systemd job result.
func resultText(result string) string {
	switch result {
	case "failed":
		return "job failed"
	case "dependency":
		return "job failed: a unit it depends on failed"
	case "timeout":
		return "job timed out in systemd (JobTimeoutSec)"
	case "canceled":
		return "job canceled (another job replaced it)"
	case "skipped":
		return "job skipped (it does not apply to the unit's state)"
	case "invalid":
		// systemd 252 queues a reload of an inactive unit and ends it so.
		return "job does not apply to the unit in its state (a reload needs an active unit)"
	case "assert":
		return "job failed: an Assert... condition of the unit does not hold"
	case "unsupported":
		return "job not supported by this type of unit"
	case "frozen":
		return "job failed: the unit is frozen"
	}
	return fmt.Sprintf("job ended with result %q", result)
}

// jobFunc starts one kind of job; the go-systemd methods all have this shape.
type jobFunc func(ctx context.Context, unit, mode string, ch chan<- string) (int, error)

func (s *Systemd) jobFunc(action string) jobFunc {
	switch action {
	case "start":
		return s.conn.StartUnitContext
	case "stop":
		return s.conn.StopUnitContext
	case "restart":
		return s.conn.RestartUnitContext
	case "reload":
		return s.conn.ReloadUnitContext
	case "try-restart":
		return s.conn.TryRestartUnitContext
	}
	return nil
}

// Job queues a job for unit in mode "replace" (as systemctl does) and
// waits for its result up to timeout and while ctx lives. action is
// "start", "stop", "restart", "reload" or "try-restart". The result "done"
// gives nil; any other result, or no result within timeout, gives a
// *JobError with the unit's state and journal. A job systemd refuses to
// queue (unknown or masked unit) gives the error systemd gave, naming the
// action and the unit; a reload of an inactive unit is queued and ends with
// the result "invalid". When ctx ends first, the error wraps ctx.Err().
// While the job runs, Progress is called every 2 s. A job Job stops
// waiting for is not canceled: systemd may still finish it.
func (s *Systemd) Job(ctx context.Context, action, unit string, timeout time.Duration) error {
	queue := s.jobFunc(action)
	if queue == nil {
		return fmt.Errorf("job %q for %s: unknown action (use start, stop, restart, reload or try-restart)", action, unit)
	}
	// Buffered: go-systemd sends the result while holding its job lock,
	// and nobody reads it once Job has given up waiting.
	results := make(chan string, 1)
	callCtx, cancel := context.WithTimeout(ctx, callTimeout)
	_, err := queue(callCtx, unit, "replace", results)
	cancel()
	if err != nil {
		// Nothing is ever sent on results then: do not wait.
		return fmt.Errorf("%s %s: %w", action, unit, cleanBusError(err))
	}

	began := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for {
		select {
		case result := <-results:
			if result == "done" {
				return nil
			}
			return s.jobError(ctx, &JobError{Action: action, Unit: unit, Result: result})
		case <-deadline.C:
			return s.jobError(ctx, &JobError{Action: action, Unit: unit, Waited: timeout})
		case <-ctx.Done():
			return fmt.Errorf("%s %s: %w", action, unit, ctx.Err())
		case <-tick.C:
			if s.Progress == nil {
				continue
			}
			msg := fmt.Sprintf("%s %s: waiting %s", action, unit, time.Since(began).Round(time.Second))
			if active, sub := s.states(ctx, unit); active != "" {
				msg += fmt.Sprintf(" (%s/%s)", active, sub)
			}
			s.Progress(msg)
		}
	}
}

// states returns the unit's ActiveState and SubState, "" for what cannot
// be read.
func (s *Systemd) states(ctx context.Context, unit string) (active, sub string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	active, _ = s.unitProperty(ctx, unit, "ActiveState")
	sub, _ = s.unitProperty(ctx, unit, "SubState")
	return active, sub
}

// jobError fills in e's unit state and journal, best effort, and returns it.
func (s *Systemd) jobError(ctx context.Context, e *JobError) error {
	e.ActiveState, e.SubState = s.states(ctx, e.Unit)
	if typ := unitType(e.Unit); typ != "" {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		p, err := s.conn.GetUnitTypePropertyContext(ctx, e.Unit, typ, "Result")
		cancel()
		if err == nil {
			e.UnitResult, _ = p.Value.Value().(string)
		}
	}
	if s.journal {
		e.Journal = journal(ctx, s.root, e.Unit)
	}
	return e
}

// unitType returns the D-Bus interface suffix of a unit type that has a
// Result property ("Service" for "a.service"), or "".
func unitType(unit string) string {
	i := strings.LastIndexByte(unit, '.')
	switch typ := unit[i+1:]; typ {
	case "service", "socket", "mount", "swap", "timer", "path", "automount", "scope":
		return strings.ToUpper(typ[:1]) + typ[1:]
	}
	return ""
}

// journal returns the last journal lines of unit from journalctl on this
// machine (with --root when root is not ""), or nil when journalctl is
// missing, fails or has none. Lines logged just before the job ended may
// not have reached the journal yet.
func journal(ctx context.Context, root, unit string) []string {
	path, err := exec.LookPath("journalctl")
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	args := []string{"--no-pager", "--quiet", "-n", fmt.Sprint(journalLines), "-u", unit}
	if root != "" {
		args = append(args, "--root="+root)
	}
	out, err := exec.CommandContext(ctx, path, args...).Output()
	if err != nil {
		return nil
	}
	var lines []string
	for l := range strings.Lines(string(bytes.TrimSpace(out))) {
		l = strings.TrimRight(l, "\n")
		if l == "" || strings.HasPrefix(l, "-- ") {
			continue
		}
		lines = append(lines, l)
	}
	return lines
}
