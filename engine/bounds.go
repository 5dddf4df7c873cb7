package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"time"
	"unsafe"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
)

// Bounds of one evaluation. A playbook is code: without them one line
// can allocate gigabytes ([0] * ((1 << 30) - 1)), nest a value deep
// enough to overflow the Go stack when it is printed, or spin inside one
// builtin call for hours. Each bound fails with a playbook file:line
// error that names it.
const (
	// DefaultMaxMemory bounds the heap while a playbook is evaluated.
	// kplay check of master.star ends before the Go runtime's first
	// garbage collection (a 4 MiB heap; 15 MiB of RSS in all), so 1 GiB
	// is more than two orders of magnitude of room and still fits any
	// machine that runs a Kubernetes master. --max-memory raises it.
	DefaultMaxMemory = 1 << 30
	// DefaultEvalTimeout bounds evaluation in wall-clock time.
	// master.star evaluates in about 2 ms, and the step bound stops an
	// endless loop in under a second, so only a builtin that is slow per
	// call (a search through a huge string in a loop) comes near it.
	// --eval-timeout changes it.
	DefaultEvalTimeout = 30 * time.Second
	// MaxDepth bounds how deep values may nest where kplay or Starlark
	// walks them recursively (str, repr, print, %, format, json, the
	// builtins' conversions, and freezing a module's globals). JSON
	// parsers use a few hundred to ten thousand; a Kubernetes manifest
	// nests about 15.
	MaxDepth = 1000
	// MaxSyntaxDepth bounds how deep a playbook's syntax tree may nest.
	// Starlark's parser stops deep brackets itself, but a left-deep chain
	// (1 + 1 + … a million times, x[0][0]…, f()()…) parses into a tree
	// that the resolver, the compiler and kplay's own scans walk
	// recursively; a million levels overflow the stack. Playbooks nest
	// tens of levels.
	MaxSyntaxDepth = 5000
	// watchInterval is how often the heap is measured during evaluation.
	watchInterval = 2 * time.Millisecond
	// abandonAfter is how long Evaluate waits, after cancelling the
	// thread, for a builtin call to return before giving up on it.
	abandonAfter = 200 * time.Millisecond
	// checkFloor is the size below which an allocation is not measured:
	// reading the heap costs about a microsecond.
	checkFloor = 1 << 20
)

// BoundError is the error of an evaluation that passed one of its
// bounds; Flag names the command-line flag that raises it, if any.
type BoundError struct {
	Msg  string
	Flag string
}

func (e *BoundError) Error() string {
	if e.Flag == "" {
		return e.Msg
	}
	return e.Msg + " (raise it with " + e.Flag + ")"
}

// heapInUse returns the bytes of heap objects, live and not yet swept.
func heapInUse() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// liveAtLastGC returns the bytes the last garbage collection found live.
func liveAtLastGC() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// liveHeap is heapInUse after a garbage collection: what evaluation
// really holds.
func liveHeap() uint64 {
	runtime.GC()
	return heapInUse()
}

// ByteSize formats n bytes for a person: 512 B, 3.2 MiB, 1 GiB.
func ByteSize(n uint64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f, exp := float64(n)/1024, 0
	for f >= 1023.95 && exp < 4 { // what %.1f would print as 1024.0
		f /= 1024
		exp++
	}
	s := fmt.Sprintf("%.1f", f)
	return strings.TrimSuffix(s, ".0") + " " + string("KMGTP"[exp]) + "iB"
}

// memoryError is the error of an evaluation over its memory bound.
func memoryError(what string, n, inUse, limit uint64) error {
	if what == "" {
		return &BoundError{Msg: fmt.Sprintf("evaluation holds %s, over its memory bound of %s", ByteSize(inUse), ByteSize(limit)), Flag: "--max-memory"}
	}
	return &BoundError{Msg: fmt.Sprintf("%s would allocate %s, which with the %s in use passes the memory bound of %s for evaluation", what, ByteSize(n), ByteSize(inUse), ByteSize(limit)), Flag: "--max-memory"}
}

// CheckAlloc returns an error if allocating about n bytes would take the
// evaluation running in thread past its memory bound. Builtins that can
// build a big value from small arguments call it before they allocate;
// what names the value in the error ("the result").
func CheckAlloc(thread *starlark.Thread, n uint64, what string) error {
	if n < checkFloor {
		return nil
	}
	limit := uint64(DefaultMaxMemory)
	if e, ok := thread.Local(localKey).(*evaluation); ok {
		limit = e.maxMemory
	}
	if n > limit {
		return memoryError(what, n, heapInUse(), limit)
	}
	inUse := heapInUse()
	if inUse+n > limit {
		if inUse = liveHeap(); inUse+n > limit {
			return memoryError(what, n, inUse, limit)
		}
	}
	return nil
}

// newDepthWalk returns a walk that measures nesting only, not size: it
// does not read strings. Evaluate checks a module's globals with it
// before freezing them.
func newDepthWalk() *valueWalk {
	return &valueWalk{seen: map[memoKey]walked{}, depthOnly: true}
}

// measure returns about how many bytes str(v) (or repr: strings quoted)
// takes, or an error if v nests lists, tuples, dicts or sets more than
// MaxDepth deep. Printing repeats a value each time
// it appears, so a list that holds itself twice, forty times over, prints
// 2^40 times; measuring takes one visit per value.
func measure(v starlark.Value) (uint64, error) { return newValueWalk().measure(v) }

func newValueWalk() *valueWalk {
	return &valueWalk{seen: map[memoKey]walked{}, quoted: map[memoKey]uint64{}}
}

// measure is the package's measure, with what w has walked before known.
func (w *valueWalk) measure(v starlark.Value) (uint64, error) {
	_, size, ok := w.walk(v, 1)
	if !ok {
		return 0, &BoundError{Msg: fmt.Sprintf("value nests more than %d levels deep", MaxDepth)}
	}
	return size, nil
}

type valueWalk struct {
	// seen are the containers walked so far, by identity; one being
	// walked has height -1 (a cycle back to it prints as [...]).
	seen map[memoKey]walked
	// quoted are the quoted lengths of long strings, by their bytes: a
	// string repeated 10,000 times in a tuple is scanned once.
	quoted map[memoKey]uint64
	// depthOnly skips the sizes of strings (newDepthWalk).
	depthOnly bool
}

// memoKey names a value by where its elements or bytes are and how
// many: t[:1] shares t's array but is not t.
type memoKey struct {
	p unsafe.Pointer
	n int
}

type walked struct {
	height int
	size   uint64
}

// walk returns how many levels v spans (1 for a scalar) and its printed
// size, or false as soon as a value below it passes MaxDepth when v is
// at level.
func (w *valueWalk) walk(v starlark.Value, level int) (int, uint64, bool) {
	var id memoKey
	var elems func(yield func(starlark.Value) bool)
	switch x := v.(type) {
	case starlark.String:
		if w.depthOnly {
			return 1, 0, true
		}
		return 1, w.quotedLen(string(x)), true
	case starlark.Bytes:
		return 1, 4 * uint64(len(x)), true
	case *starlark.List:
		id, elems = memoKey{unsafe.Pointer(x), 0}, seqElems(x)
	case starlark.Tuple:
		if len(x) == 0 {
			return 1, 2, true
		}
		id, elems = memoKey{unsafe.Pointer(unsafe.SliceData(x)), len(x)}, seqElems(x)
	case *starlark.Set:
		id, elems = memoKey{unsafe.Pointer(x), 0}, seqElems(x)
	case *starlark.Dict:
		id = memoKey{unsafe.Pointer(x), 0}
		elems = func(yield func(starlark.Value) bool) {
			for _, kv := range x.Items() {
				if !yield(kv[0]) || !yield(kv[1]) {
					return
				}
			}
		}
	case *starlark.Function:
		// Its defaults are frozen with it (a closure's captured values
		// are out of reach here: go.starlark.net does not show them).
		id = memoKey{unsafe.Pointer(x), 0}
		elems = func(yield func(starlark.Value) bool) {
			for i := range x.NumParams() {
				if d := x.ParamDefault(i); d != nil && !yield(d) {
					return
				}
			}
		}
	case starlark.Sequence:
		// A range, or another sequence that is not a container: about
		// a number per element.
		return 1, satAdd(2, uint64(x.Len())*14), true
	default:
		return 1, 24, true // a number, None, a builtin: short
	}
	if d, seen := w.seen[id]; seen {
		if d.height < 0 {
			return 1, 5, true
		}
		return d.height, d.size, level+d.height-1 <= MaxDepth
	}
	if level > MaxDepth {
		return 0, 0, false
	}
	w.seen[id] = walked{height: -1}
	h, size, ok := 1, uint64(2), true
	elems(func(e starlark.Value) bool {
		var eh int
		var es uint64
		eh, es, ok = w.walk(e, level+1)
		h = max(h, eh+1)
		size = satAdd(size, es+2)
		return ok
	})
	w.seen[id] = walked{height: h, size: size}
	return h, size, ok
}

// quotedLen is about the length of s quoted, by repr or json.encode:
// each byte, plus escapes (\u0000 is the longest).
func (w *valueWalk) quotedLen(s string) uint64 {
	key := memoKey{unsafe.Pointer(unsafe.StringData(s)), len(s)}
	if len(s) >= 4096 {
		if n, ok := w.quoted[key]; ok {
			return n
		}
	}
	n := uint64(len(s)) + 2
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			n += 5
		} else if c == '"' || c == '\\' {
			n++
		}
	}
	if len(s) >= 4096 {
		w.quoted[key] = n
	}
	return n
}

// satAdd is a + b, or the largest uint64 if that overflows.
func satAdd(a, b uint64) uint64 {
	if a+b < a {
		return ^uint64(0)
	}
	return a + b
}

// seqElems yields the elements of an iterable without recursion.
func seqElems(x starlark.Iterable) func(yield func(starlark.Value) bool) {
	return func(yield func(starlark.Value) bool) {
		it := x.Iterate()
		defer it.Done()
		var e starlark.Value
		for it.Next(&e) {
			if !yield(e) {
				return
			}
		}
	}
}

// jsonDepth returns how deep a JSON text nests arrays and objects,
// ignoring brackets inside strings. It stops counting past limit.
func jsonDepth(s string, limit int) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case inString && c == '"':
			inString = false
		case inString:
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			if depth > deepest {
				if deepest = depth; deepest > limit {
					return deepest
				}
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

// watch measures the heap every watchInterval while evaluation runs and
// cancels evaluation, with the bound as the cause, once it passes limit.
// It returns a func that stops it and restores the process's soft memory
// limit. The soft limit is set
// to limit meanwhile, so that the garbage collector works harder before
// garbage is taken for a playbook's use.
func watch(limit uint64, cancel context.CancelCauseFunc) (stop func()) {
	old := debug.SetMemoryLimit(int64(min(limit, 1<<62)))
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(watchInterval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			// No runtime.GC here: it stops the world, which waits for
			// a long copy in the evaluation (a huge string built) to
			// end. The live heap of the last collection says what is
			// really held; twice the bound is over it, garbage or not.
			inUse := heapInUse()
			if inUse <= limit {
				continue
			}
			if live := liveAtLastGC(); live > limit || inUse/2 > limit {
				cancel(memoryError("", 0, max(live, inUse), limit))
				return
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		debug.SetMemoryLimit(old)
	}
}

// boundedPredeclared returns the predeclared names of a playbook: the
// builtins given, Starlark's universe functions that can build a big or
// deep value from a small argument wrapped with a check of their
// bounds, and the hidden functions the rewritten syntax calls (see
// rewrite.go).
func boundedPredeclared(builtins starlark.StringDict) starlark.StringDict {
	d := make(starlark.StringDict, len(builtins)+16)
	for name, v := range builtins {
		d[name] = v
	}
	for name, check := range universeChecks {
		if _, own := builtins[name]; !own {
			d[name] = checked(name, starlark.Universe[name].(*starlark.Builtin), check)
		}
	}
	if m, ok := builtins["json"].(*starlarkstruct.Module); ok {
		d["json"] = boundedJSON(m)
	}
	d[hiddenBinary] = starlark.NewBuiltin(hiddenBinary, binaryChecked)
	d[hiddenMethod] = starlark.NewBuiltin(hiddenMethod, methodChecked)
	return d
}

// argCheck checks a call's arguments before the call is made.
type argCheck func(thread *starlark.Thread, name string, args starlark.Tuple, kwargs []starlark.Tuple) error

// checked wraps a builtin so that check runs before it; the builtin's
// own errors and messages are unchanged.
func checked(name string, fn starlark.Value, check argCheck) *starlark.Builtin {
	return starlark.NewBuiltin(name, func(thread *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		noteCall(thread)
		if err := check(thread, name, args, kwargs); err != nil {
			return nil, err
		}
		args, kwargs = checkedCallables(args, kwargs)
		return starlark.Call(thread, fn, args, kwargs)
	})
}

// checkedCallables returns args and kwargs with a key= that is a string
// method able to build a large result (sorted(l, key = s.split): the one
// way a universe function calls what it is given) replaced by one that
// checks first, as methodChecked does. Other arguments are left as they
// are, so that str(s.split) prints what it always did.
func checkedCallables(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Tuple, []starlark.Tuple) {
	wrap := func(v starlark.Value) starlark.Value {
		m, ok := v.(*starlark.Builtin)
		if !ok || !checkedMethods[m.Name()] {
			return v
		}
		if _, isString := m.Receiver().(starlark.String); !isString {
			return v
		}
		return starlark.NewBuiltin(m.Name(), func(thread *starlark.Thread, _ *starlark.Builtin, a starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			return methodChecked(thread, nil, append(starlark.Tuple{m}, a...), kw)
		})
	}
	outKw := make([]starlark.Tuple, len(kwargs))
	for i, kv := range kwargs {
		outKw[i] = kv
		if k, _ := starlark.AsString(kv[0]); k == "key" {
			outKw[i] = starlark.Tuple{kv[0], wrap(kv[1])}
		}
	}
	return args, outKw
}

// Bytes per element of what the checked functions build: a Starlark
// value in a slice, and one boxed in an interface with its header.
const (
	valueBytes = 16
	boxedBytes = 48
)

// universeChecks are the universe functions kplay checks, by name.
var universeChecks = map[string]argCheck{
	"list":      lengthCheck(valueBytes),
	"tuple":     lengthCheck(valueBytes),
	"sorted":    lengthCheck(valueBytes),
	"reversed":  lengthCheck(valueBytes),
	"set":       lengthCheck(boxedBytes),
	"enumerate": lengthCheck(valueBytes + 2*valueBytes + boxedBytes),
	"zip":       zipCheck,
	"min":       noCheck, // their key= is checked (checkedCallables)
	"max":       noCheck,
	"str":       printCheck,
	"repr":      printCheck,
	"print":     printCheck,
	"fail":      printCheck,
}

// lengthCheck checks the allocation of per bytes for each element of
// the first argument, when its length is known.
func lengthCheck(per uint64) argCheck {
	return func(thread *starlark.Thread, name string, args starlark.Tuple, kwargs []starlark.Tuple) error {
		for _, a := range append(args[:len(args):len(args)], kwargValues(kwargs, "iterable")...) {
			if n := starlark.Len(a); n > 0 {
				if err := CheckAlloc(thread, uint64(n)*per, name+"()"); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

func noCheck(*starlark.Thread, string, starlark.Tuple, []starlark.Tuple) error { return nil }

// kwargValues returns the values of the named keyword arguments.
func kwargValues(kwargs []starlark.Tuple, names ...string) []starlark.Value {
	var vs []starlark.Value
	for _, kv := range kwargs {
		if k, _ := starlark.AsString(kv[0]); slices.Contains(names, k) {
			vs = append(vs, kv[1])
		}
	}
	return vs
}

func zipCheck(thread *starlark.Thread, name string, args starlark.Tuple, _ []starlark.Tuple) error {
	rows := -1
	for _, a := range args {
		if n := starlark.Len(a); n >= 0 && (rows < 0 || n < rows) {
			rows = n
		}
	}
	if rows <= 0 {
		return nil
	}
	return CheckAlloc(thread, uint64(rows)*uint64(len(args)+2)*valueBytes, name+"()")
}

// printCheck checks the nesting of every argument, and that printing
// them all fits the memory bound.
func printCheck(thread *starlark.Thread, name string, args starlark.Tuple, kwargs []starlark.Tuple) error {
	var total uint64
	w := newValueWalk()
	for _, a := range args {
		size, err := w.measure(a)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		total = satAdd(total, size)
	}
	for _, kv := range kwargs {
		size, err := w.measure(kv[1])
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		total = satAdd(total, size)
	}
	return CheckAlloc(thread, total, name+": the text")
}

// boundedJSON wraps Starlark's json module: encode checks its value's
// depth, decode and indent their text's, before the recursive work.
func boundedJSON(m *starlarkstruct.Module) *starlarkstruct.Module {
	members := make(starlark.StringDict, len(m.Members))
	for name, v := range m.Members {
		fn, ok := v.(*starlark.Builtin)
		if !ok {
			members[name] = v
			continue
		}
		qualified := fn.Name() // json.encode
		switch name {
		case "encode":
			members[name] = checked(qualified, fn, func(thread *starlark.Thread, _ string, args starlark.Tuple, kwargs []starlark.Tuple) error {
				return printCheck(thread, qualified, args, kwargs)
			})
		case "encode_indent":
			members[name] = checked(qualified, fn, func(thread *starlark.Thread, _ string, args starlark.Tuple, kwargs []starlark.Tuple) error {
				if len(args) == 0 {
					return nil
				}
				size, err := measure(args[0])
				if err != nil {
					return fmt.Errorf("%s: %w", qualified, err)
				}
				return CheckAlloc(thread, size*indentFactor(kwargs), qualified+": the text")
			})
		case "decode", "indent":
			members[name] = checked(qualified, fn, func(thread *starlark.Thread, _ string, args starlark.Tuple, kwargs []starlark.Tuple) error {
				if len(args) == 0 {
					return nil
				}
				s, ok := starlark.AsString(args[0])
				if !ok {
					return nil
				}
				if jsonDepth(s, MaxDepth) > MaxDepth {
					return fmt.Errorf("%s: JSON text nests more than %d levels deep", qualified, MaxDepth)
				}
				if name == "indent" {
					return CheckAlloc(thread, uint64(len(s))*indentFactor(kwargs), qualified+": the text")
				}
				return nil
			})
		default:
			members[name] = fn
		}
	}
	return &starlarkstruct.Module{Name: m.Name, Members: members}
}

// noteCall records where evaluation is, for an error if the call never
// returns (see Evaluate).
func noteCall(thread *starlark.Thread) {
	if e, ok := thread.Local(localKey).(*evaluation); ok {
		p := callerPos(thread)
		e.at.Store(&p)
	}
}

// errAbandoned is wrapped by the error of an evaluation whose thread did
// not stop when cancelled: it was inside one operation (a builtin call,
// or an operator on a huge value) that started after the position the
// error gives, the last place evaluation was seen.
var errAbandoned = errors.New("one operation started after this point did not return, and was abandoned")

// checkSyntaxDepth returns an error at the first node of f that nests
// deeper than MaxSyntaxDepth. It never recurses deeper than that itself.
func checkSyntaxDepth(f *syntax.File) error {
	depth := 0
	var err error
	syntax.Walk(f, func(n syntax.Node) bool {
		switch {
		case n == nil:
			depth--
		case err != nil:
			return false
		case depth >= MaxSyntaxDepth:
			start, _ := n.Span()
			err = &Error{Pos: posOf(start), Err: &BoundError{Msg: fmt.Sprintf("expression nests more than %d levels deep (split it, as into a list and a join or a loop)", MaxSyntaxDepth)}}
			return false
		default:
			depth++
		}
		return true
	})
	return err
}

// indentFactor bounds how many times larger JSON grows when indented
// with the prefix= and indent= in kwargs: each byte may start a line.
func indentFactor(kwargs []starlark.Tuple) uint64 {
	n := uint64(1)
	for _, v := range kwargValues(kwargs, "prefix", "indent") {
		if s, ok := starlark.AsString(v); ok {
			n += uint64(len(s))
		}
	}
	return n
}
