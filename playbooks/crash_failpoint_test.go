package playbooks

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// failpoint is one failpoint (host/failpoint.go) that a run passed, as
// the kplay_failpoints build prints it with KPLAY_FAILPOINT=-1.
type failpoint struct {
	where string // "staged /etc/x", "synced the staged files", "renamed /etc/x", "mkdir /etc/y"
	// endsCommit is whether the run printed something before it passed
	// the next failpoint, or ended: a batch's results are printed once it
	// is committed, so this is the last failpoint of a commit, and a
	// kill there leaves the batch whole and durable. A kill at any other
	// is inside a batch.
	endsCommit bool
}

// kind is what the failpoint follows: its first word ("staged",
// "renamed", "mkdir", "symlink"), or for a sync all of it, since a
// commit syncs twice ("synced the staged files", "synced the batch").
func (f failpoint) kind() string {
	if strings.HasPrefix(f.where, "synced ") {
		return f.where
	}
	k, _, _ := strings.Cut(f.where, " ")
	return k
}

// failpointLine is the line the kplay_failpoints build prints at each
// failpoint with KPLAY_FAILPOINT=-1 (host/failpoint_on.go).
var failpointLine = regexp.MustCompile(`^kplay failpoint ([0-9]+): (.+)$`)

// parseFailpoints reads the failpoints from out, a run's stdout and
// stderr in the order written. They must be numbered 1, 2, … in order.
func parseFailpoints(out string) ([]failpoint, error) {
	var fps []failpoint
	for _, line := range strings.Split(out, "\n") {
		m := failpointLine.FindStringSubmatch(line)
		switch {
		case m != nil:
			if n, _ := strconv.Atoi(m[1]); n != len(fps)+1 {
				return nil, fmt.Errorf("failpoint %s printed after %d failpoints, want %d", m[1], len(fps), len(fps)+1)
			}
			fps = append(fps, failpoint{where: m[2]})
		case line != "" && len(fps) > 0:
			fps[len(fps)-1].endsCommit = true
		}
	}
	if len(fps) > 0 {
		fps[len(fps)-1].endsCommit = true
	}
	return fps, nil
}

// commits counts the commits of fps: the failpoints that end one.
func commits(fps []failpoint) int {
	n := 0
	for _, f := range fps {
		if f.endsCommit {
			n++
		}
	}
	return n
}

// countsOf lists counts by name, sorted by name: "mkdir 2, renamed 5".
func countsOf(counts map[string]int) string {
	if len(counts) == 0 {
		return "none"
	}
	names := make([]string, 0, len(counts))
	for name := range counts {
		names = append(names, name)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = fmt.Sprintf("%s %d", name, counts[name])
	}
	return strings.Join(parts, ", ")
}

func TestParseFailpoints(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		out     string
		want    []failpoint
		wantErr string
	}{
		"none": {out: "file /etc/x: create\n1 to create\n"},
		"two_commits": {
			out: "kplay failpoint 1: staged /etc/a\nkplay failpoint 2: synced the staged files\nkplay failpoint 3: renamed /etc/a\nkplay failpoint 4: synced the batch\n" +
				"file /etc/a: create\nkplay failpoint 5: mkdir /etc/b\nkplay failpoint 6: synced the batch\nfile /etc/b: create\n2 to create\n",
			want: []failpoint{
				{where: "staged /etc/a"}, {where: "synced the staged files"}, {where: "renamed /etc/a"}, {where: "synced the batch", endsCommit: true},
				{where: "mkdir /etc/b"}, {where: "synced the batch", endsCommit: true},
			},
		},
		"last_at_the_end": {
			out:  "kplay failpoint 1: symlink /etc/l\n",
			want: []failpoint{{where: "symlink /etc/l", endsCommit: true}},
		},
		"out_of_order": {out: "kplay failpoint 1: mkdir /a\nkplay failpoint 3: mkdir /b\n", wantErr: "failpoint 3 printed after 1 failpoints, want 2"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := parseFailpoints(tc.out)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("got error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestFailpointKind(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"staged /etc/a":           "staged",
		"renamed /etc/a b":        "renamed",
		"synced the staged files": "synced the staged files",
		"synced the batch":        "synced the batch",
		"mkdir /etc/b":            "mkdir",
	}
	for where, want := range tests {
		if got := (failpoint{where: where}).kind(); got != want {
			t.Errorf("kind of %q: got %q, want %q", where, got, want)
		}
	}
}
