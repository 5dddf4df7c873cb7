package engine

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	starjson "go.starlark.net/lib/json"
	"go.starlark.net/starlark"
)

// outcome is what running a module gives: its globals as text, or its
// error and where it happened.
func outcome(globals starlark.StringDict, err error) string {
	if err != nil {
		var ee *starlark.EvalError
		if errors.As(err, &ee) {
			return "error at " + evalError(err).(*Error).Pos.String() + ": " + ee.Msg
		}
		return "error: " + err.Error()
	}
	var b strings.Builder
	for _, name := range globals.Keys() {
		fmt.Fprintf(&b, "%s = %s\n", name, globals[name].String())
	}
	return b.String()
}

// fuzzTimeLimit cancels a run of the fuzz target that takes longer: a
// few slow builtin calls on big strings under the steps bound.
const fuzzTimeLimit = time.Second

// timedOut is the cancel reason of a run past fuzzTimeLimit.
const timedOut = "took too long for the fuzz target"

// limitTime cancels thread after fuzzTimeLimit; call the returned func
// when the run ends.
func limitTime(thread *starlark.Thread) func() bool {
	return time.AfterFunc(fuzzTimeLimit, func() { thread.Cancel(timedOut) }).Stop
}

// within runs fn and reports whether it ended within twice
// fuzzTimeLimit: one operation that never returns (hashing a tuple that
// shares itself 2^100 ways) ignores the thread's cancellation. Such a
// run is left behind, as kplay leaves it.
func within(fn func()) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
		return true
	case <-time.After(2 * fuzzTimeLimit):
		return false
	}
}

// runPlain runs src as go.starlark.net does, without kplay's rewrite.
func runPlain(src string, steps uint64) string {
	thread := &starlark.Thread{Print: func(*starlark.Thread, string) {}}
	thread.SetMaxExecutionSteps(steps)
	defer limitTime(thread)()
	globals, err := starlark.ExecFileOptions(&fileOptions, thread, "f.star", src, starlark.StringDict{"json": starjson.Module})
	return outcome(globals, err)
}

// runRewritten runs src as Evaluate does: rewritten, with the checked
// universe, under a memory bound of limit bytes. bound is true if a
// bound stopped it.
func runRewritten(src string, steps, limit uint64) (out string, bound bool) {
	thread := &starlark.Thread{Print: func(*starlark.Thread, string) {}}
	thread.SetMaxExecutionSteps(steps)
	thread.SetLocal(localKey, &evaluation{maxMemory: limit})
	defer limitTime(thread)()
	predeclared := boundedPredeclared(starlark.StringDict{"json": starjson.Module})
	f, err := fileOptions.Parse("f.star", src, 0)
	if err != nil {
		return outcome(nil, err), false
	}
	rewrite(f, predeclared.Has)
	prog, err := starlark.FileProgram(f, predeclared.Has)
	if err != nil {
		return outcome(nil, err), false
	}
	globals, err := prog.Init(thread, predeclared)
	var b *BoundError
	return outcome(globals, err), errors.As(err, &b)
}

// TestRewriteKeepsMeaning holds rewrite and the checked builtins to
// go.starlark.net: every expression they touch gives the interpreter's
// own value, or its own error at its own position.
func TestRewriteKeepsMeaning(t *testing.T) {
	t.Parallel()
	for _, src := range []string{
		`a = 3 * 4; b = "ab" * 3; c = [1, 2] * 2; d = 2 * (1,); e = "x" * -1; f = [] * 5; g = b"ab" * 2`,
		`a = 7 % 3; b = "%s-%d" % ("x", 4); c = "%r" % [1]; d = -7 % 3; e = 7.5 % 2`,
		`a = 1 + 2; b = "a" + "b"; c = [1] + [2]; d = (1,) + (2,); e = 1.5 + 2`,
		`x = [1]
y = x
def f():
    x.extend([5])
    z = [1]
    w = z
    z += [2]
    z += range(2)
    s = "a"
    s += "b"
    n = 2
    n *= 3
    m = 10
    m %= 4
    return z, w, s, n, m
r = f()`,
		`x = [[1], "%s", 3, {"k": [1]}]
x[0] *= 2
x[1] %= "v"
x[2] += 4
x[3]["k"] += range(2)
y = x[3]["k"]
x[0] += [5]
k = 0
x[k] *= 1`,
		`x = [1]
x[5] *= 2`,
		`l = [[0], "%s", [1]]
l[-1] *= 3
l[len(l) - 2] %= "v"
l[-3] += [2]
i = 1
l[i + 1] *= 2
l[-1 - 1] += "w"`,
		`def f(kplay):
    return 2 * 3
y = f(None)`,
		`d = {}
d["k"] += [1]`,
		`a = "a-b-c".replace("-", "+"); b = "aaa".replace("a", "bb", 2); c = "ab".replace("", "-")`,
		`a = ",".join(["x", "y"]); b = "".join(("a", "b")); c = "-".join([])`,
		`a = "a b  c".split(); b = "a,b".split(","); c = "a,b,c".rsplit(",", 1); d = "a\nb\r\nc".splitlines(True)`,
		`a = "{} {x}".format(1, x = [2]); b = "{0}{0}".format("z")`,
		`a = list("ab".elems()); b = tuple([1]); c = sorted([3, 1]); d = enumerate(["a"]); e = zip([1, 2], "ab".elems()); f = reversed([1, 2]); g = set([1, 1])`,
		`a = str([1, (2,), {"k": "v"}]); b = repr("x"); c = json.encode({"a": [1]}); d = json.decode("[1, {\"b\": null}]"); e = json.indent("[1]")`,
		`print("hi", [1])`,
		`a = str("a".join); b = repr([" ".split]); c = sorted(["b a", "a"], key = " ".join); d = max(["ab", "c"], key = "x".split)`,
		// Errors: the interpreter's message, at the interpreter's place.
		`x = 1
y = "a" * "b"`,
		`y = [1] % 2`,
		`y = 1 + "a"`,
		`y = "a" * (1 << 40)`,
		`y = "a".replace(1, 2)`,
		`y = "a".join([1])`,
		`y = None.join([])`,
		`y = [].nope()`,
		`y = "{".format()`,
		`y = "%d" % "x"`,
		`y = list(1)`,
		`y = zip(1)`,
		`y = json.decode("[")`,
		`def f():
    s = "a"
    s *= "b"
f()`,
		`x = 1
x += 1`,
		`y = undefined * 2`,
	} {
		want := runPlain(src, 1e6)
		got, bound := runRewritten(src, 1e6, DefaultMaxMemory)
		if bound || got != want {
			t.Errorf("%s\nrewritten: %s\nwant (go.starlark.net): %s", src, got, want)
		}
	}
}

// FuzzRewriteKeepsMeaning runs any source both ways: unless a bound of
// kplay's stops the rewritten run, both give the same values or the same
// error at the same place.
func FuzzRewriteKeepsMeaning(f *testing.F) {
	for _, s := range []string{
		`a = 3 * 4; b = "ab" * 3`, `a = "%s" % [1]`, `x = [1]; x += [2]`, `a = "a-b".replace("-", "+")`,
		`a = "x".join(["a", "b"])`, `a = list(range(3))`, `a = json.decode("[[1]]")`, `a = str([[[]]])`,
		`def f(n):
    x = []
    for i in range(n):
        x = [x]
    return x
a = json.encode(f(10))`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		const steps, limit = 10_000, 8 << 20
		var got string
		var bound bool
		if !within(func() { got, bound = runRewritten(src, steps, limit) }) || bound || strings.Contains(got, timedOut) {
			return // the plain run could take all memory, or long
		}
		var want string
		if !within(func() { want = runPlain(src, steps) }) || strings.Contains(want, timedOut) {
			return
		}
		if got != want {
			t.Fatalf("%q\nrewritten: %s\nwant (go.starlark.net): %s", src, got, want)
		}
	})
}
