package builtins

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host/roottest"
)

// TestPlaybooks runs builtins/testdata/*.star. A file is split into chunks
// at lines "---"; each chunk is a playbook of its own. A chunk passes if it
// evaluates without error, unless one of its lines ends with ### "regexp":
// then evaluation must fail with a message matching regexp at that line.
// Chunks can call assert_eq(got, want) and assert_fails(fn, "regexp"). A
// first line "# vars: A=1 B=x" sets the --vars of every chunk.
func TestPlaybooks(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/*.star")
	if err != nil || len(files) == 0 {
		t.Fatalf("no playbook tests: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		vars := map[string]string{}
		if first, _, _ := strings.Cut(string(data), "\n"); strings.HasPrefix(first, "# vars:") {
			vars, err = engine.ParseVarFlags(strings.Fields(strings.TrimPrefix(first, "# vars:")))
			if err != nil {
				t.Fatal(err)
			}
		}
		for i, chunk := range chunks(string(data)) {
			t.Run(fmt.Sprintf("%s/%d", filepath.Base(file), i), func(t *testing.T) {
				t.Parallel()
				runChunk(t, chunk, vars)
			})
		}
	}
}

type chunk struct {
	src      string // with earlier chunks' lines blanked, so line numbers match the file
	wantLine int    // 0 if the chunk must succeed
	wantErr  *regexp.Regexp
}

var wantErrPattern = regexp.MustCompile(`###\s*"(.*)"\s*$`)

func chunks(data string) []chunk {
	var out []chunk
	lines := strings.Split(data, "\n")
	start := 0
	for i := 0; i <= len(lines); i++ {
		if i < len(lines) && strings.TrimSpace(lines[i]) != "---" {
			continue
		}
		c := chunk{}
		body := make([]string, i)
		for j := start; j < i; j++ {
			body[j] = lines[j]
			if m := wantErrPattern.FindStringSubmatch(lines[j]); m != nil {
				c.wantLine, c.wantErr = j+1, regexp.MustCompile(m[1])
			}
		}
		c.src = strings.Join(body, "\n")
		out = append(out, c)
		start = i + 1
	}
	return out
}

func runChunk(t *testing.T, c chunk, vars map[string]string) {
	dir := t.TempDir()
	name := filepath.Join(dir, "chunk.star")
	roottest.WriteFile(t, name, c.src, 0o644)
	predeclared := Predeclared()
	predeclared["assert_eq"] = starlark.NewBuiltin("assert_eq", assertEq)
	predeclared["assert_fails"] = starlark.NewBuiltin("assert_fails", assertFails)
	_, err := engine.Evaluate(t.Context(), engine.EvalOptions{Playbook: name, Vars: vars, Builtins: predeclared})
	if c.wantErr == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("got no error, want one at line %d matching %q", c.wantLine, c.wantErr)
	}
	msg := strings.TrimPrefix(err.Error(), dir+string(filepath.Separator))
	wantPrefix := fmt.Sprintf("chunk.star:%d:", c.wantLine)
	if !strings.HasPrefix(msg, wantPrefix) || !c.wantErr.MatchString(msg) {
		t.Fatalf("got %q, want %s... matching %q", msg, wantPrefix, c.wantErr)
	}
}

func assertEq(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var got, want starlark.Value
	if err := starlark.UnpackPositionalArgs(fn.Name(), args, kwargs, 2, &got, &want); err != nil {
		return nil, err
	}
	if eq, err := starlark.Equal(got, want); err != nil || !eq {
		return nil, fmt.Errorf("assert_eq: got %s, want %s", got, want)
	}
	return starlark.None, nil
}

func assertFails(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var f starlark.Callable
	var pattern string
	if err := starlark.UnpackPositionalArgs(fn.Name(), args, kwargs, 2, &f, &pattern); err != nil {
		return nil, err
	}
	_, err := starlark.Call(thread, f, nil, nil)
	if err == nil {
		return nil, fmt.Errorf("assert_fails: %s did not fail", f.Name())
	}
	msg := err.Error()
	if ee, ok := err.(*starlark.EvalError); ok {
		msg = ee.Msg
	}
	if !regexp.MustCompile(pattern).MatchString(msg) {
		return nil, fmt.Errorf("assert_fails: error %q does not match %q", msg, pattern)
	}
	return starlark.None, nil
}
