package engine

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Starlark's operators and string methods run inside the interpreter,
// where no hook reaches them, and a few of them allocate their whole
// result at once: `[0] * ((1 << 30) - 1)` asks Go for 16 GiB in one
// make(), which on a small machine is a fatal out-of-memory that no
// recover() can turn into an error. So before a module is compiled,
// rewrite replaces those few expressions in its syntax tree with calls
// to hidden builtins that check the result's size (or the nesting of
// what % formats) and then do exactly what the expression did:
//
//	x * y          → kplay:binary("*", x, y), and likewise % and +
//	x *= y, x %= y → x = kplay:binary(…, x, y)   (x a name or x[i])
//	x += y         → x += kplay:binary("+=", x, y), which returns y
//	s.replace(…)   → kplay:method(s.replace, …), and likewise
//	                 join, split, rsplit, splitlines and format
//	f(…)           → kplay:method(f, …) unless f is a builtin called by
//	                 its own name (r = s.replace; r(…) is checked too)
//
// The call sits at the operator's (or the method call's) position, so
// errors point where they did; the one difference is that a recursion
// error points at the recursive call rather than the callee's first
// instruction. Growth a step at a time (s = s + s) is
// left to the heap watch in Evaluate; the checked + stops a string that
// doubles each step before its last doubling.
//
// go.starlark.net offers no allocation accounting (its maxAlloc stops a
// string at 1 GiB and a list at 2^30 elements, 16 GiB), hence this code
// of our own; TestRewriteKeepsMeaning holds it to the interpreter's
// results.
//
// The hidden names are not identifiers, so no playbook can bind, shadow
// or call them.
const (
	hiddenBinary = "kplay:binary"
	hiddenMethod = "kplay:method"
)

// checkedMethods are the string methods whose result can be much larger
// than their receiver and arguments, or walks nested values.
var checkedMethods = map[string]bool{
	"replace": true, "join": true, "split": true, "rsplit": true, "splitlines": true, "format": true,
}

// rewrite replaces the expressions described above throughout f.
// predeclared reports the names of kplay's builtins and Starlark's
// universe: a call of one, unless f binds the name itself, is left as
// written; any other call (of a name, or of what an expression gives)
// goes through kplay:method, as it may call a string method under
// another name (r = s.replace; r(…), or getattr(s, "replace")(…)).
func rewrite(f *syntax.File, predeclared func(string) bool) {
	r := &rewriter{predeclared: predeclared, bound: boundNames(f)}
	for _, s := range f.Stmts {
		r.stmt(s)
	}
}

type rewriter struct {
	predeclared func(string) bool
	bound       map[string]bool // names f assigns, defines or loads
}

// direct reports whether a call of fn is left as written: a call of a
// builtin by its own name.
func (r *rewriter) direct(fn syntax.Expr) bool {
	id, ok := fn.(*syntax.Ident)
	return ok && r.predeclared(id.Name) && !r.bound[id.Name]
}

// boundNames returns every name f binds anywhere (more is harmless: a
// call of it is only checked).
func boundNames(f *syntax.File) map[string]bool {
	bound := map[string]bool{}
	idents := func(xs ...syntax.Expr) {
		for _, x := range xs {
			if x == nil {
				continue
			}
			syntax.Walk(x, func(n syntax.Node) bool {
				if id, ok := n.(*syntax.Ident); ok {
					bound[id.Name] = true
				}
				return true
			})
		}
	}
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.AssignStmt:
			idents(n.LHS)
		case *syntax.DefStmt:
			idents(n.Name)
			idents(n.Params...)
		case *syntax.ForStmt:
			idents(n.Vars)
		case *syntax.ForClause:
			idents(n.Vars)
		case *syntax.LambdaExpr:
			idents(n.Params...)
		case *syntax.LoadStmt:
			for _, id := range n.To {
				idents(id)
			}
		}
		return true
	})
	return bound
}

func (r *rewriter) stmts(stmts []syntax.Stmt) {
	for _, s := range stmts {
		r.stmt(s)
	}
}

func (r *rewriter) stmt(s syntax.Stmt) {
	switch s := s.(type) {
	case *syntax.AssignStmt:
		// x op= y reads x again in the call: only a target that reads
		// the same twice (a name, or an index of names, literals, + and
		// - and len: x[0], d["k"][i], l[len(l) - 1]) is rewritten. One
		// with another call in it is left to the heap watch.
		read, pure := pureCopy(s.LHS)
		r.target(s.LHS)
		s.RHS = r.expr(s.RHS)
		if !pure {
			break
		}
		_, end := s.RHS.Span()
		switch s.Op {
		case syntax.STAR_EQ, syntax.PERCENT_EQ:
			op := map[syntax.Token]string{syntax.STAR_EQ: "*", syntax.PERCENT_EQ: "%"}[s.Op]
			s.RHS = hiddenCall(hiddenBinary, s.OpPos, end, stringLit(op, s.OpPos), read, s.RHS)
			s.Op = syntax.EQ
		case syntax.PLUS_EQ:
			// Kept an in-place +=, which extends a list rather than
			// making a new one: the call only checks, and returns y.
			s.RHS = hiddenCall(hiddenBinary, s.OpPos, end, stringLit("+=", s.OpPos), read, s.RHS)
		}
	case *syntax.ExprStmt:
		s.X = r.expr(s.X)
	case *syntax.IfStmt:
		s.Cond = r.expr(s.Cond)
		r.stmts(s.True)
		r.stmts(s.False)
	case *syntax.ForStmt:
		r.target(s.Vars)
		s.X = r.expr(s.X)
		r.stmts(s.Body)
	case *syntax.WhileStmt:
		s.Cond = r.expr(s.Cond)
		r.stmts(s.Body)
	case *syntax.DefStmt:
		for i, p := range s.Params {
			s.Params[i] = r.expr(p)
		}
		r.stmts(s.Body)
	case *syntax.ReturnStmt:
		if s.Result != nil {
			s.Result = r.expr(s.Result)
		}
	}
}

// rewriteTarget rewrites the expressions inside an assignment's target
// (a[i * 2] = …), never the target itself: what cannot be assigned to
// stays as written, for the resolver to report.
func (r *rewriter) target(x syntax.Expr) {
	switch x := x.(type) {
	case *syntax.IndexExpr:
		x.X, x.Y = r.expr(x.X), r.expr(x.Y)
	case *syntax.DotExpr:
		x.X = r.expr(x.X)
	case *syntax.ParenExpr:
		r.target(x.X)
	case *syntax.TupleExpr:
		for _, e := range x.List {
			r.target(e)
		}
	case *syntax.ListExpr:
		for _, e := range x.List {
			r.target(e)
		}
	}
}

func (r *rewriter) exprs(xs []syntax.Expr) {
	for i, x := range xs {
		xs[i] = r.expr(x)
	}
}

func (r *rewriter) expr(x syntax.Expr) syntax.Expr {
	switch x := x.(type) {
	case *syntax.BinaryExpr:
		x.X, x.Y = r.expr(x.X), r.expr(x.Y)
		if x.Op == syntax.STAR || x.Op == syntax.PERCENT || x.Op == syntax.PLUS {
			_, end := x.Y.Span()
			return hiddenCall(hiddenBinary, x.OpPos, end, stringLit(x.Op.String(), x.OpPos), x.X, x.Y)
		}
	case *syntax.UnaryExpr:
		if x.X != nil {
			x.X = r.expr(x.X)
		}
	case *syntax.CallExpr:
		x.Fn = r.expr(x.Fn)
		r.exprs(x.Args)
		dot, isDot := x.Fn.(*syntax.DotExpr)
		if isDot && checkedMethods[dot.Name.Name] || !isDot && !r.direct(x.Fn) {
			return hiddenCall(hiddenMethod, x.Lparen, x.Rparen, append([]syntax.Expr{x.Fn}, x.Args...)...)
		}
	case *syntax.DotExpr:
		x.X = r.expr(x.X)
	case *syntax.IndexExpr:
		x.X, x.Y = r.expr(x.X), r.expr(x.Y)
	case *syntax.SliceExpr:
		x.X = r.expr(x.X)
		for _, p := range []*syntax.Expr{&x.Lo, &x.Hi, &x.Step} {
			if *p != nil {
				*p = r.expr(*p)
			}
		}
	case *syntax.ListExpr:
		r.exprs(x.List)
	case *syntax.TupleExpr:
		r.exprs(x.List)
	case *syntax.DictExpr:
		r.exprs(x.List)
	case *syntax.DictEntry:
		x.Key, x.Value = r.expr(x.Key), r.expr(x.Value)
	case *syntax.ParenExpr:
		x.X = r.expr(x.X)
	case *syntax.CondExpr:
		x.Cond, x.True, x.False = r.expr(x.Cond), r.expr(x.True), r.expr(x.False)
	case *syntax.LambdaExpr:
		r.exprs(x.Params)
		x.Body = r.expr(x.Body)
	case *syntax.Comprehension:
		x.Body = r.expr(x.Body)
		for _, c := range x.Clauses {
			switch c := c.(type) {
			case *syntax.ForClause:
				r.target(c.Vars)
				c.X = r.expr(c.X)
			case *syntax.IfClause:
				c.Cond = r.expr(c.Cond)
			}
		}
	}
	return x
}

// pureCopy returns a copy of x, an expression that gives the same value
// each time it is evaluated (names, literals, indexes and fields of
// them), or false.
func pureCopy(x syntax.Expr) (syntax.Expr, bool) {
	switch x := x.(type) {
	case *syntax.Ident:
		return &syntax.Ident{NamePos: x.NamePos, Name: x.Name}, true
	case *syntax.Literal:
		c := *x
		return &c, true
	case *syntax.UnaryExpr:
		if x.Op != syntax.MINUS && x.Op != syntax.PLUS || x.X == nil {
			return nil, false
		}
		inner, ok := pureCopy(x.X)
		return &syntax.UnaryExpr{OpPos: x.OpPos, Op: x.Op, X: inner}, ok
	case *syntax.BinaryExpr:
		if x.Op != syntax.MINUS && x.Op != syntax.PLUS {
			return nil, false
		}
		l, ok1 := pureCopy(x.X)
		r, ok2 := pureCopy(x.Y)
		return &syntax.BinaryExpr{X: l, OpPos: x.OpPos, Op: x.Op, Y: r}, ok1 && ok2
	case *syntax.CallExpr:
		// len(x), as in x[len(x) - 1]: the one call that reads only.
		if id, ok := x.Fn.(*syntax.Ident); !ok || id.Name != "len" || len(x.Args) != 1 {
			return nil, false
		}
		arg, ok := pureCopy(x.Args[0])
		return &syntax.CallExpr{Fn: &syntax.Ident{NamePos: x.Fn.(*syntax.Ident).NamePos, Name: "len"}, Lparen: x.Lparen, Args: []syntax.Expr{arg}, Rparen: x.Rparen}, ok
	case *syntax.ParenExpr:
		inner, ok := pureCopy(x.X)
		return &syntax.ParenExpr{Lparen: x.Lparen, X: inner, Rparen: x.Rparen}, ok
	case *syntax.IndexExpr:
		obj, ok1 := pureCopy(x.X)
		key, ok2 := pureCopy(x.Y)
		return &syntax.IndexExpr{X: obj, Lbrack: x.Lbrack, Y: key, Rbrack: x.Rbrack}, ok1 && ok2
	case *syntax.DotExpr:
		obj, ok := pureCopy(x.X)
		return &syntax.DotExpr{X: obj, Dot: x.Dot, NamePos: x.NamePos, Name: &syntax.Ident{NamePos: x.Name.NamePos, Name: x.Name.Name}}, ok
	}
	return nil, false
}

func hiddenCall(name string, lparen, rparen syntax.Position, args ...syntax.Expr) *syntax.CallExpr {
	return &syntax.CallExpr{
		Fn:     &syntax.Ident{NamePos: lparen, Name: name},
		Lparen: lparen,
		Args:   args,
		Rparen: rparen,
	}
}

func stringLit(s string, pos syntax.Position) *syntax.Literal {
	return &syntax.Literal{Token: syntax.STRING, TokenPos: pos, Raw: fmt.Sprintf("%q", s), Value: s}
}

// binaryChecked is kplay:binary(op, x, y): x op y for *, % and +,
// after checking the size of a repetition or concatenation and the
// nesting of what % formats. For op "+=" it checks x += y and returns y.
func binaryChecked(thread *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) != 3 || len(kwargs) != 0 {
		return nil, fmt.Errorf("%s is kplay's own: do not call it", hiddenBinary)
	}
	op, x, y := args[0], args[1], args[2]
	var tok syntax.Token
	switch op {
	case starlark.String("*"):
		tok = syntax.STAR
		if n, per := repeatSize(x, y); n > 0 {
			noteCall(thread)
			if err := CheckAlloc(thread, n*per, "this repetition"); err != nil {
				return nil, err
			}
		}
	case starlark.String("%"):
		tok = syntax.PERCENT
		if f, ok := x.(starlark.String); ok {
			noteCall(thread)
			if err := checkFormat(thread, "%", string(f), "%", y); err != nil {
				return nil, err
			}
		}
	case starlark.String("+"), starlark.String("+="):
		tok = syntax.PLUS
		if n := concatSize(x, y); n >= checkFloor {
			noteCall(thread)
			if err := CheckAlloc(thread, n, "this concatenation"); err != nil {
				return nil, err
			}
		}
		if op == starlark.String("+=") {
			return y, nil
		}
	default:
		return nil, fmt.Errorf("%s is kplay's own: do not call it", hiddenBinary)
	}
	return starlark.Binary(tok, x, y)
}

// concatSize returns the bytes of x + y (or of extending list x by y)
// for strings, bytes, lists and tuples, else 0.
func concatSize(x, y starlark.Value) uint64 {
	switch x := x.(type) {
	case starlark.String:
		if y, ok := y.(starlark.String); ok {
			return uint64(len(x) + len(y))
		}
	case starlark.Bytes:
		if y, ok := y.(starlark.Bytes); ok {
			return uint64(len(x) + len(y))
		}
	case *starlark.List, starlark.Tuple:
		if n := starlark.Len(y); n > 0 {
			return uint64(starlark.Len(x)+n) * valueBytes
		}
	}
	return 0
}

// repeatSize returns the elements and bytes per element of x * y when
// it repeats a sequence, else 0.
func repeatSize(x, y starlark.Value) (n, per uint64) {
	if _, ok := x.(starlark.Int); ok {
		x, y = y, x
	}
	count, ok := y.(starlark.Int)
	if !ok {
		return 0, 0
	}
	n32, err := starlark.AsInt32(count)
	if err != nil || n32 <= 0 {
		return 0, 0 // the interpreter's own error, or an empty result
	}
	c := uint64(n32)
	switch x := x.(type) {
	case starlark.String:
		return uint64(len(x)) * c, 1
	case starlark.Bytes:
		return uint64(len(x)) * c, 1
	case *starlark.List:
		return uint64(x.Len()) * c, valueBytes
	case starlark.Tuple:
		return uint64(len(x)) * c, valueBytes
	}
	return 0, 0
}

// methodChecked is kplay:method(fn, args…): fn(args…), after checking
// the size of the result when fn is a string method.
func methodChecked(thread *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("%s is kplay's own: do not call it", hiddenMethod)
	}
	fn, rest := args[0], args[1:]
	if m, ok := fn.(*starlark.Builtin); ok {
		if s, ok := m.Receiver().(starlark.String); ok {
			noteCall(thread)
			if err := checkStringMethod(thread, string(s), m.Name(), rest, kwargs); err != nil {
				return nil, err
			}
		}
	}
	return starlark.Call(thread, fn, rest, kwargs)
}

// checkStringMethod checks what s.name(args) would allocate. Arguments
// of the wrong type are left for the method to report.
func checkStringMethod(thread *starlark.Thread, s, name string, args starlark.Tuple, kwargs []starlark.Tuple) error {
	arg := func(i int) (string, bool) {
		if i < len(args) {
			return starlark.AsString(args[i])
		}
		return "", false
	}
	what := name + ": the result"
	switch name {
	case "replace":
		old, ok1 := arg(0)
		repl, ok2 := arg(1)
		if !ok1 || !ok2 || len(repl) <= len(old) {
			return nil
		}
		n := uint64(strings.Count(s, old))
		if old == "" {
			n = uint64(utf8.RuneCountInString(s)) + 1
		}
		if len(args) > 2 {
			if c, err := starlark.AsInt32(args[2]); err == nil && c >= 0 {
				n = min(n, uint64(c))
			}
		}
		return CheckAlloc(thread, uint64(len(s))+n*uint64(len(repl)-len(old)), what)
	case "join":
		if len(args) == 0 {
			return nil
		}
		seq, ok := args[0].(starlark.Iterable)
		if !ok {
			return nil
		}
		var total uint64
		it := seq.Iterate()
		defer it.Done()
		var e starlark.Value
		for it.Next(&e) {
			if e, ok := e.(starlark.String); ok {
				total = satAdd(total, uint64(len(e)))
			}
			total = satAdd(total, uint64(len(s)))
		}
		return CheckAlloc(thread, total, what)
	case "split", "rsplit":
		parts := uint64(len(s))/2 + 1 // split on white space: at most every other byte
		if sep, ok := arg(0); ok && sep != "" {
			parts = uint64(strings.Count(s, sep)) + 1
		}
		return CheckAlloc(thread, parts*boxedBytes, what)
	case "splitlines":
		return CheckAlloc(thread, (uint64(strings.Count(s, "\n"))+1)*boxedBytes, what)
	case "format":
		values := append(starlark.Tuple{}, args...)
		for _, kv := range kwargs {
			values = append(values, kv[1])
		}
		return checkFormat(thread, name, s, "{", values...)
	}
	return nil
}

// checkFormat checks the nesting of what a format string prints, and
// the size of its result: at most each directive (a mark in the format,
// not doubled) printing the largest value; for %, each element of a
// tuple once, or a single value once.
func checkFormat(thread *starlark.Thread, name, format, mark string, values ...starlark.Value) error {
	if len(values) == 0 {
		return nil
	}
	// %% and {{ print one character: they fill nothing.
	directives := uint64(strings.Count(format, mark) - 2*strings.Count(format, mark+mark))
	if mark == "%" {
		switch t := values[0].(type) {
		case starlark.Tuple:
			values, directives = t, 1 // each element fills one directive
		case starlark.Mapping:
			// %(name)s may name one value many times
		default:
			directives = 1
		}
	}
	var largest, total uint64
	w := newValueWalk()
	for _, v := range values {
		size, err := w.measure(v)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		largest, total = max(largest, size), satAdd(total, size)
	}
	printed := total
	if directives > 1 {
		printed = satAdd(0, directives*largest)
		if largest != 0 && printed/largest != directives {
			printed = ^uint64(0)
		}
	}
	return CheckAlloc(thread, satAdd(uint64(len(format)), printed), name+": the text")
}
