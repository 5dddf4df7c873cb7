package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/etcdv2"
)

// commitSpy is a Real whose Commit first calls before (if set) and
// records the paths each commit writes, and the journal that holds when
// its changes are made: the one it writes first (host.Op.State), else
// the one on disk. Then it commits.
type commitSpy struct {
	*host.Real
	root     string
	before   func()
	commits  [][]string
	journals []string
}

func (c *commitSpy) Commit(ctx context.Context, ops []host.Op) (int, error) {
	if c.before != nil {
		c.before()
	}
	var writes []string
	journal := journalOnDisk(c.root)
	for i, op := range ops {
		switch {
		case op.State && op.At == engine.PendingFile:
			journal = strings.Join(strings.Fields(string(op.Data)), " ")
		case op.State:
		case op.Kind == host.OpWrite:
			writes = append(writes, op.At)
		}
		if op.State && i > 0 && !ops[i-1].State {
			return -1, fmt.Errorf("a write of kplay's state after the batch's own ops: %v", ops)
		}
	}
	c.commits = append(c.commits, writes)
	c.journals = append(c.journals, journal)
	return c.Real.Commit(ctx, ops)
}

// newCommitSpy opens root (an offline root) under a commitSpy.
func newCommitSpy(t *testing.T, root string) *commitSpy {
	t.Helper()
	real, err := host.OpenReal(root, true, host.WithEtcd(etcdv2.New))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { real.Close() })
	return &commitSpy{Real: real, root: root}
}

// journalOnDisk is what the pending journal in root lists now.
func journalOnDisk(root string) string {
	data, err := os.ReadFile(filepath.Join(root, engine.PendingFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "(none)"
	}
	if err != nil {
		return err.Error()
	}
	return strings.Join(strings.Fields(string(data)), " ")
}

// onDisk reports whether the file name of root holds content.
func onDisk(root, name, content string) bool {
	data, err := os.ReadFile(filepath.Join(root, name))
	return err == nil && string(data) == content
}

// TestBatchIsMadeBeforeAnyoneSeesIt: on a live system, the files before a
// restart are committed in one batch before the daemon-reload and the
// restart see them; the journal owes the restart before the batch is
// made; every result is observed only once its change is on disk.
func TestBatchIsMadeBeforeAnyoneSeesIt(t *testing.T) {
	t.Parallel()
	plan := mustEval(t, `
a = unit("a.service", "[Service]\nExecStart=/bin/true\n")
conf = file("/etc/a.conf", content = "x\n")
systemctl("restart", "a.service", on_change = [a, conf])
file("/etc/b.conf", content = "y\n")
`)
	root := t.TempDir()
	sd := newFakeSystemd()
	var seen []string
	sd.onCall = func(call string) {
		seen = append(seen, call+": unit "+yes(onDisk(root, "etc/systemd/system/a.service", "[Service]\nExecStart=/bin/true\n"))+
			", conf "+yes(onDisk(root, "etc/a.conf", "x\n")))
	}
	spy := &commitSpy{Real: liveRoot(t, root, sd), root: root}
	var observed []string
	observe := func(r engine.Result) {
		m := r.Step.Meta()
		if m.Kind == "file" || m.Kind == "unit" {
			_, err := os.Stat(filepath.Join(root, m.Target))
			observed = append(observed, m.Target+" on disk: "+yes(err == nil))
		}
	}
	if _, err := engine.Converge(t.Context(), plan, spy, engine.Selection{}, observe); err != nil {
		t.Fatal(err)
	}
	check := func(what string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", what, got, want)
		}
	}
	check("commits", flatten(spy.commits), []string{"/etc/systemd/system/a.service /etc/a.conf", "/etc/b.conf"})
	check("what systemd saw", seen, []string{"daemon-reload: unit yes, conf yes", "restart a.service: unit yes, conf yes"})
	check("the journal as each batch was made", spy.journals, []string{
		`{ "pending": [ "systemctl daemon-reload", "systemctl restart a.service" ] }`, "(none)"})
	check("observed", observed, []string{"/etc/systemd/system/a.service on disk: yes", "/etc/a.conf on disk: yes", "/etc/b.conf on disk: yes"})
	if j := journalOnDisk(root); j != "(none)" {
		t.Errorf("the journal after the run: %s", j)
	}
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func flatten(commits [][]string) []string {
	var out []string
	for _, c := range commits {
		out = append(out, strings.Join(c, " "))
	}
	return out
}

// TestOnChangeStartsANewBatch: a step whose on_change names a step of
// the open batch runs in a new one, after the change it watches is made.
func TestOnChangeStartsANewBatch(t *testing.T) {
	t.Parallel()
	plan := mustEval(t, `
conf = file("/etc/a.conf", content = "a")
file("/etc/b.conf", content = "b")
file("/etc/a.stamp", content = "restarted", on_change = [conf])
file("/etc/c.conf", content = "c")
`)
	root := t.TempDir()
	spy := newCommitSpy(t, root)
	if _, err := engine.Converge(t.Context(), plan, spy, engine.Selection{}, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"/etc/a.conf /etc/b.conf", "/etc/a.stamp /etc/c.conf"}
	if got := flatten(spy.commits); !slices.Equal(got, want) {
		t.Errorf("commits:\n got %q\nwant %q", got, want)
	}
}

// TestOfflineJournalOwesBeforeTheBatch: offline, a restart cannot run,
// and runs in the batch after the one that makes the file it watches.
// The journal lists it before that file is made, still lists it while
// the batch in which it found it cannot run is made, and is gone after.
func TestOfflineJournalOwesBeforeTheBatch(t *testing.T) {
	t.Parallel()
	plan := mustEval(t, `
conf = file("/etc/a.conf", content = "a")
systemctl("restart", "a.service", on_change = [conf])
file("/etc/b.conf", content = "b")
`)
	root := t.TempDir()
	spy := newCommitSpy(t, root)
	results, err := engine.Converge(t.Context(), plan, spy, engine.Selection{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describe(results), []string{"file /etc/a.conf: create", "systemctl restart a.service: skipped (offline root)", "file /etc/b.conf: create"}; !slices.Equal(got, want) {
		t.Errorf("results:\n got %q\nwant %q", got, want)
	}
	if want := []string{"/etc/a.conf", "/etc/b.conf"}; !slices.Equal(flatten(spy.commits), want) {
		t.Errorf("commits: got %q, want %q", flatten(spy.commits), want)
	}
	owed := `{ "pending": [ "systemctl restart a.service" ] }`
	if want := []string{owed, owed}; !slices.Equal(spy.journals, want) {
		t.Errorf("the journal as the batch was made: got %q, want %q", spy.journals, want)
	}
	if j := journalOnDisk(root); j != "(none)" {
		t.Errorf("the journal after the run: %s", j)
	}
}

// TestCommitFailureIsItsStepsError: when the root changed under the run
// so that a batch cannot be made, the error is the step whose change
// failed, at its line; the steps before it are done and reported, none
// after it, and no temp file stays.
func TestCommitFailureIsItsStepsError(t *testing.T) {
	t.Parallel()
	plan := mustEval(t, `
file("/a/x", content = "x")
file("/b/y", content = "y")
file("/c/z", content = "z")
`)
	root := t.TempDir()
	spy := newCommitSpy(t, root)
	spy.before = func() {
		if err := os.WriteFile(filepath.Join(root, "b"), []byte("in the way\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var observed []string
	results, err := engine.Converge(t.Context(), plan, spy, engine.Selection{}, func(r engine.Result) { observed = append(observed, r.String()) })
	var e *engine.Error
	if !errors.As(err, &e) || e.Pos.Line != 3 || !errors.Is(err, syscall.ENOTDIR) ||
		!regexp.MustCompile(`^file /b/y: write /b/y: not a directory$`).MatchString(e.Err.Error()) {
		t.Fatalf("got %v, want the error of line 3: file /b/y: write /b/y: not a directory", err)
	}
	want := []string{"file /a/x: create"}
	if got := describe(results); !slices.Equal(got, want) {
		t.Errorf("results: got %q, want %q", got, want)
	}
	if !slices.Equal(observed, want) {
		t.Errorf("observed: got %q, want %q", observed, want)
	}
	if !onDisk(root, "a/x", "x") {
		t.Error("/a/x, before the failure, is not on disk")
	}
	if _, err := os.Lstat(filepath.Join(root, "c")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("/c, after the failure, was made: %v", err)
	}
	for _, dir := range []string{"", "a"} {
		entries, _ := os.ReadDir(filepath.Join(root, dir))
		for _, e := range entries {
			if strings.Contains(e.Name(), ".kplay-") {
				t.Errorf("a temp file is left: /%s", filepath.Join(dir, e.Name()))
			}
		}
	}
}
