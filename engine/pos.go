package engine

import (
	"errors"
	"fmt"
	"strings"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Pos is a position in a playbook: the file as the user named it (or as
// load() reached it), line and column, both counted from 1.
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string {
	if p.File == "" {
		return ""
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// IsValid reports whether p names a place.
func (p Pos) IsValid() bool { return p.File != "" }

func posOf(p syntax.Position) Pos {
	return Pos{File: p.Filename(), Line: int(p.Line), Col: int(p.Col)}
}

// Error is an error at a position in a playbook. Its message starts with
// "file:line:col: " when the position is known.
type Error struct {
	Pos Pos
	Err error
}

func (e *Error) Error() string {
	if !e.Pos.IsValid() {
		return e.Err.Error()
	}
	return e.Pos.String() + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// callerPos returns the position of the innermost Starlark frame of the
// thread, skipping the builtin that is running.
func callerPos(thread *starlark.Thread) Pos {
	for i := 0; i < thread.CallStackDepth(); i++ {
		fr := thread.CallFrame(i)
		if fr.Pos.Filename() != "<builtin>" {
			return posOf(fr.Pos)
		}
	}
	return Pos{}
}

// evalError turns an error from Starlark into an *Error at the innermost
// playbook position: the deepest EvalError in the chain (a load() wraps the
// loaded module's error) and its deepest frame that is not a builtin.
func evalError(err error) error {
	var inner *starlark.EvalError
	for e := err; e != nil; e = errors.Unwrap(e) {
		if ee, ok := e.(*starlark.EvalError); ok {
			inner = ee
		}
	}
	var serr syntax.Error
	if errors.As(err, &serr) {
		return &Error{Pos: posOf(serr.Pos), Err: errors.New(serr.Msg)}
	}
	var rerrs resolve.ErrorList
	if errors.As(err, &rerrs) && len(rerrs) > 0 {
		// Report the first: later ones are often its consequences.
		return &Error{Pos: posOf(rerrs[0].Pos), Err: errors.New(rerrs[0].Msg)}
	}
	if inner == nil {
		return err
	}
	var pos Pos
	for i := len(inner.CallStack) - 1; i >= 0; i-- {
		if fr := inner.CallStack[i]; fr.Pos.Filename() != "<builtin>" {
			pos = posOf(fr.Pos)
			break
		}
	}
	msg := inner.Msg
	if cause := errors.Unwrap(inner); cause != nil {
		var perr *Error
		if errors.As(cause, &perr) {
			return perr
		}
	}
	msg = strings.TrimPrefix(msg, "Starlark computation cancelled: ")
	return &Error{Pos: pos, Err: errors.New(msg)}
}
