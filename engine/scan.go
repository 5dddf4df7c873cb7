package engine

import (
	"fmt"
	"strconv"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// scanVars finds the var() calls of a file by reading its syntax tree,
// without running it. When evaluation stops early (a missing var's
// placeholder divides by zero, a fail() check rejects it), the vars that
// were never reached are still known this way, so every missing var is
// reported at once. Only calls whose name (and type, if given) are string
// literals are found.
func scanVars(f *syntax.File) []*VarDecl {
	var decls []*VarDecl
	syntax.Walk(f, func(n syntax.Node) bool {
		call, ok := n.(*syntax.CallExpr)
		if !ok {
			return true
		}
		if fn, ok := call.Fn.(*syntax.Ident); !ok || fn.Name != "var" {
			return true
		}
		d := &VarDecl{Type: "string", Required: true, Pos: posOf(call.Lparen)}
		for i, arg := range call.Args {
			name, value := positionalName(i), arg
			if bin, ok := arg.(*syntax.BinaryExpr); ok && bin.Op == syntax.EQ {
				id, _ := bin.X.(*syntax.Ident)
				if id == nil {
					return true
				}
				name, value = id.Name, bin.Y
			}
			text, literal := literalText(value)
			switch name {
			case "name":
				d.Name = text
			case "type":
				d.Type = text
			case "default":
				d.Required = false
				d.Default = text
			case "doc":
				d.Doc = text
			case "sensitive":
				d.Sensitive = text == "true"
			}
			if !literal && (name == "name" || name == "type") {
				return true
			}
		}
		if d.Name != "" {
			decls = append(decls, d)
		}
		return true
	})
	return decls
}

func positionalName(i int) string {
	names := []string{"name", "type", "default", "doc"}
	if i < len(names) {
		return names[i]
	}
	return ""
}

// literalText returns the text of a string, int or True/False literal.
func literalText(e syntax.Expr) (string, bool) {
	switch e := e.(type) {
	case *syntax.Literal:
		switch v := e.Value.(type) {
		case string:
			return v, true
		case int64:
			return strconv.FormatInt(v, 10), true
		}
	case *syntax.Ident:
		switch e.Name {
		case "True":
			return "true", true
		case "False":
			return "false", true
		}
	}
	return "", false
}

// scanModes checks the mode= arguments in a file's syntax tree. An
// integer literal given as mode= must be written in octal: Starlark
// refuses 0644, but reads mode=644 as the decimal 644, which is 0o1204
// (sticky, --w----r-T). It returns the positions of the calls whose
// mode= is an octal literal: only such a call may ask for setuid, setgid
// or sticky bits (see OctalModeLiteral).
func scanModes(f *syntax.File) (map[Pos]bool, error) {
	octal := map[Pos]bool{}
	var err error
	syntax.Walk(f, func(n syntax.Node) bool {
		call, ok := n.(*syntax.CallExpr)
		if !ok || err != nil {
			return err == nil
		}
		if fn, ok := call.Fn.(*syntax.Ident); ok && fn.Name == "dict" {
			return true // a Kubernetes field such as KeyToPath's mode is decimal
		}
		for _, arg := range call.Args {
			bin, ok := arg.(*syntax.BinaryExpr)
			if !ok || bin.Op != syntax.EQ {
				continue
			}
			if id, ok := bin.X.(*syntax.Ident); !ok || id.Name != "mode" {
				continue
			}
			lit, ok := literalIn(bin.Y)
			if !ok || lit.Token != syntax.INT {
				continue
			}
			if isOctalLiteral(lit.Raw) {
				octal[posOf(call.Lparen)] = true
				continue
			}
			if err = decimalModeError(lit); err != nil {
				return false
			}
		}
		return true
	})
	return octal, err
}

// literalIn returns the literal x is, inside parentheses and a plus.
func literalIn(x syntax.Expr) (*syntax.Literal, bool) {
	for {
		switch y := x.(type) {
		case *syntax.ParenExpr:
			x = y.X
		case *syntax.UnaryExpr:
			if y.Op != syntax.PLUS {
				return nil, false // -1 is no mode in any base: the builtin says so
			}
			x = y.X
		case *syntax.Literal:
			return y, true
		default:
			return nil, false
		}
	}
}

func isOctalLiteral(raw string) bool {
	return len(raw) > 2 && raw[0] == '0' && (raw[1] == 'o' || raw[1] == 'O')
}

// decimalModeError is the error of mode=<lit> not written in octal, or
// nil for 0 to 7, which mean the same in any base.
func decimalModeError(lit *syntax.Literal) error {
	v, ok := lit.Value.(int64)
	if !ok {
		return &Error{Pos: posOf(lit.TokenPos), Err: fmt.Errorf("mode=%s is not a file mode: write it in octal, such as 0o644", lit.Raw)}
	}
	if v < 8 {
		return nil // the same in any base
	}
	asMode := fmt.Sprintf("0o%o", v)
	if strings.Trim(lit.Raw, "01234567") != "" || v > 0o7777 {
		return &Error{Pos: posOf(lit.TokenPos), Err: fmt.Errorf("write %s, not %s: a mode is written in octal", asMode, lit.Raw)}
	}
	digits := "0o" + lit.Raw // the octal digits, written as decimal
	if v > 0o777 {
		// 644 is 0o1204: no one means that; the digits are the mode.
		return &Error{Pos: posOf(lit.TokenPos), Err: fmt.Errorf("write %s, not %s: a mode is written in octal (%s is %s)", digits, lit.Raw, lit.Raw, asMode)}
	}
	// 420 is 0o644, a mode some write in decimal: either may be meant.
	return &Error{Pos: posOf(lit.TokenPos), Err: fmt.Errorf("write %s, or %s if you meant the decimal %s, not %s: a mode is written in octal", digits, asMode, lit.Raw, lit.Raw)}
}

// OctalModeLiteral reports whether the builtin call running in thread
// was given mode= as an octal literal (mode=0o4755), which a builtin
// requires of a mode with setuid, setgid or sticky bits: a computed mode
// could come from a decimal slip (MODE = 644 is 0o1204, sticky).
func OctalModeLiteral(thread *starlark.Thread) bool {
	e, err := evaluationOf(thread)
	return err == nil && e.octalModes[callerPos(thread)]
}
