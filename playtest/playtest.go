// Package playtest runs the tests of playbooks (kplay test): Starlark
// files named *_test.star whose top-level functions named test_* take a
// t and call plan_of or converge_of, which evaluate a playbook and check
// or apply it against a sandbox (package sandbox): an offline root, an
// etcd and an API server in memory, no network. Nothing is written
// outside the process but goldens, and only with Options.Update.
//
// A test fails at the first failed assertion (the assert module) or
// error; its Result names the .star position of the assertion, or of the
// test's innermost call that failed.
package playtest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/sandbox"
)

// Options says which tests to run and how.
type Options struct {
	// Files are the *_test.star files, in the order to run them.
	Files []string
	// Run, if set, selects the tests whose name it matches.
	Run *regexp.Regexp
	// Update writes goldens instead of comparing with them.
	Update bool
	// Tree is the directory tree tests may read (a playbook, a root, a
	// load, a src= file): the working directory of kplay test. "" is no
	// bound.
	Tree string
	// Builtins are the playbooks' predeclared names
	// (builtins.Predeclared()).
	Builtins starlark.StringDict
	// Timeout bounds each test in wall-clock time; 0 is a minute.
	Timeout time.Duration
	// Log receives t.log() lines, with the test's name.
	Log func(test, msg string)
}

// Result is the outcome of one test, or of a test file that could not be
// loaded (Test is "").
type Result struct {
	File string `json:"file"`
	Test string `json:"test"`
	Pass bool   `json:"pass"`
	// Position is where the test failed: the .star file:line:col of the
	// failed assertion, or of the innermost call in a test file.
	Position string        `json:"position,omitempty"`
	Message  string        `json:"message,omitempty"`
	Elapsed  time.Duration `json:"elapsed_ns"`
}

// maxTestFile is the largest test file or loaded module, in bytes.
const maxTestFile = 16 << 20

// maxTestSteps bounds the Starlark steps of one test (a playbook
// evaluated by plan_of has its own bound).
const maxTestSteps = 100_000_000

// Run runs the tests of opts.Files and returns one Result per test, in
// file order and, within a file, in the order the tests are defined. A
// file that does not load gives one failed Result with Test "".
func Run(ctx context.Context, opts Options) []Result {
	var out []Result
	for _, f := range opts.Files {
		out = append(out, runFile(ctx, opts, f)...)
	}
	return out
}

// IsTestFile reports whether name is a test file: *_test.star.
func IsTestFile(name string) bool { return strings.HasSuffix(filepath.Base(name), "_test.star") }

func runFile(ctx context.Context, opts Options, file string) []Result {
	src, err := host.ReadRegular(nil, file, maxTestFile)
	if err != nil {
		return []Result{{File: file, Message: err.Error()}}
	}
	r := &runner{opts: opts, file: file, dir: filepath.Dir(file)}
	if r.workDir, err = filepath.Abs(r.dir); err != nil {
		return []Result{{File: file, Message: err.Error()}}
	}
	thread := &starlark.Thread{Name: "kplay test", Load: r.load}
	thread.SetMaxExecutionSteps(maxTestSteps)
	thread.Print = r.print
	globals, err := starlark.ExecFileOptions(&syntax.FileOptions{}, thread, file, src, r.predeclared())
	r.closeAll()
	if err != nil {
		return []Result{{File: file, Position: errorPos(err, file), Message: errorMessage(err)}}
	}
	var tests []*starlark.Function
	for name, v := range globals {
		if fn, ok := v.(*starlark.Function); ok && strings.HasPrefix(name, "test_") && name == fn.Name() {
			if opts.Run == nil || opts.Run.MatchString(name) {
				tests = append(tests, fn)
			}
		}
	}
	// In the order the file defines them, as go test runs tests.
	sort.Slice(tests, func(i, j int) bool { return tests[i].Position().Line < tests[j].Position().Line })
	var out []Result
	for _, fn := range tests {
		if fn.NumParams() > 1 || (fn.NumParams() == 1 && fn.HasVarargs()) {
			out = append(out, Result{File: file, Test: fn.Name(), Position: fn.Position().String(),
				Message: "a test takes one parameter, t, or none"})
			continue
		}
		out = append(out, r.runTest(ctx, fn))
	}
	return out
}

// runner runs the tests of one file.
type runner struct {
	opts    Options
	file    string // as given
	dir     string // its directory: playbooks, roots and goldens are relative to it
	workDir string // dir, absolute: src= and path vars are relative to it
	// closers are the sandboxes of the running test, closed when it ends
	// (a state value may outlive the call that made it).
	closers []func() error
	// test is the running test's name; secrets, the secrets of the
	// playbooks it evaluated, redacted from its messages.
	test    string
	secrets []*engine.Secrets
	// loads are the modules loaded so far (nil while one loads: a cycle).
	loads map[string]*loadEntry
}

type loadEntry struct {
	globals starlark.StringDict
	err     error
}

// closeAll closes the sandboxes made since the last call.
func (r *runner) closeAll() {
	for _, c := range r.closers {
		_ = c()
	}
	r.closers = nil
}

func (r *runner) runTest(ctx context.Context, fn *starlark.Function) Result {
	res := Result{File: r.file, Test: fn.Name()}
	start := time.Now()
	timeout := r.opts.Timeout
	if timeout == 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	thread := &starlark.Thread{Name: fn.Name(), Load: r.load, Print: r.print}
	thread.SetMaxExecutionSteps(maxTestSteps)
	thread.SetLocal(ctxKey, ctx)
	stop := context.AfterFunc(ctx, func() { thread.Cancel("the test ran past " + timeout.String()) })
	defer stop()
	var args starlark.Tuple
	if fn.NumParams() > 0 {
		args = starlark.Tuple{r.newT(fn.Name())}
	}
	r.test, r.secrets = fn.Name(), nil
	_, err := starlark.Call(thread, fn, args, nil)
	r.closeAll()
	res.Elapsed = time.Since(start)
	if err == nil {
		res.Pass = true
		return res
	}
	res.Position, res.Message = errorPos(err, r.file), capMessage(errorMessage(err))
	for _, s := range r.secrets {
		res.Message = s.Redact(res.Message)
	}
	return res
}

// ctxKey is the thread-local key of the test's context.
const ctxKey = "kplay.context"

func threadContext(thread *starlark.Thread) context.Context {
	if ctx, ok := thread.Local(ctxKey).(context.Context); ok {
		return ctx
	}
	return context.Background()
}

// predeclared are the names a test file sees: plan_of, converge_of,
// assert and struct.
func (r *runner) predeclared() starlark.StringDict {
	return starlark.StringDict{
		"plan_of":     starlark.NewBuiltin("plan_of", r.planOf),
		"converge_of": starlark.NewBuiltin("converge_of", r.convergeOf),
		"assert":      r.assertModule(),
		"struct":      starlark.NewBuiltin("struct", starlarkstruct.Make),
	}
}

// load loads a helper module of the test file's tree, as a test file
// would, with the same names predeclared.
func (r *runner) load(thread *starlark.Thread, module string) (starlark.StringDict, error) {
	p, err := r.path(module)
	if err != nil {
		return nil, err
	}
	if r.loads == nil {
		r.loads = map[string]*loadEntry{}
	}
	e, ok := r.loads[p]
	switch {
	case ok && e == nil:
		return nil, fmt.Errorf("load cycle: %s loads itself, through the modules it loads", module)
	case ok:
		return e.globals, e.err
	}
	r.loads[p] = nil
	src, err := host.ReadRegular(nil, p, maxTestFile)
	var globals starlark.StringDict
	if err == nil {
		globals, err = starlark.ExecFileOptions(&syntax.FileOptions{}, thread, p, src, r.predeclared())
	}
	r.loads[p] = &loadEntry{globals, err}
	return globals, err
}

// print is print() in a test file: a line of -v's output, escaped, as
// t.log's.
func (r *runner) print(thread *starlark.Thread, msg string) {
	if r.opts.Log != nil {
		r.opts.Log(thread.Name, msg)
	}
}

// maxMessage bounds the message of a failed test, in bytes.
const maxMessage = 16 << 10

// capMessage cuts msg to maxMessage bytes.
func capMessage(msg string) string {
	if len(msg) <= maxMessage {
		return msg
	}
	return strings.ToValidUTF8(msg[:maxMessage], "") + fmt.Sprintf("… (%d bytes in all)", len(msg))
}

// path resolves a path a test reads (a playbook, a root, a load)
// against the test file's directory. It must be relative, so that a test
// gives the same answer on every machine, and stay in Options.Tree once
// its symlinks are resolved, so that a test reads the files of the tree
// it tests and nothing else of the machine.
func (r *runner) path(p string) (string, error) {
	if p == "" || filepath.IsAbs(p) {
		return "", fmt.Errorf("%q: want a path relative to the test file's directory %s", p, r.dir)
	}
	full := filepath.Join(r.dir, filepath.Clean(p))
	if err := sandbox.InTree(r.opts.Tree, full); err != nil {
		return "", fmt.Errorf("%q: %w", p, err)
	}
	return full, nil
}

// newT is the value a test function gets: t.name, t.log(msg) and
// t.fail(msg).
func (r *runner) newT(name string) starlark.Value {
	return starlarkstruct.FromStringDict(starlark.String("t"), starlark.StringDict{
		"name": starlark.String(name),
		"log": starlark.NewBuiltin("log", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var msg string
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &msg); err != nil {
				return nil, err
			}
			if r.opts.Log != nil {
				r.opts.Log(name, msg)
			}
			return starlark.None, nil
		}),
		"fail": starlark.NewBuiltin("fail", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var msg string
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &msg); err != nil {
				return nil, err
			}
			return nil, failure(thread, msg)
		}),
	})
}

// assertError is a failed assertion: where the test called it, and why.
type assertError struct {
	pos syntax.Position
	msg string
}

func (e *assertError) Error() string { return e.msg }

// failure is the error of a failed assertion called from thread.
func failure(thread *starlark.Thread, msg string) error {
	return &assertError{pos: thread.CallFrame(1).Pos, msg: msg}
}

// errorPos is where err happened, for the test's report: the failed
// assertion's call, else the innermost frame of a Starlark error that is
// in file (the test's call of plan_of that failed), else the innermost.
func errorPos(err error, file string) string {
	var ae *assertError
	if errors.As(err, &ae) && ae.pos.Filename() == file {
		return ae.pos.String()
	}
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		for i := 0; i < len(ee.CallStack); i++ {
			if pos := ee.CallStack.At(i).Pos; pos.Filename() == file {
				return pos.String()
			}
		}
		if len(ee.CallStack) > 0 {
			return ee.CallStack.At(0).Pos.String()
		}
	}
	var se syntax.Error
	if errors.As(err, &se) {
		return se.Pos.String()
	}
	return ""
}

// errorMessage is err without the position errorPos gives and without
// Starlark's "Error in fn:" prefixes.
func errorMessage(err error) string {
	var ae *assertError
	if errors.As(err, &ae) {
		return ae.msg
	}
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		if cause := errors.Unwrap(ee); cause != nil {
			return cause.Error()
		}
		return ee.Msg
	}
	var se syntax.Error
	if errors.As(err, &se) {
		return se.Msg
	}
	return err.Error()
}
