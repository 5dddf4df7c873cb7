package engine

import (
	"strconv"

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
