package playtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	starjson "go.starlark.net/lib/json"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"

	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/ui"
)

// maxShown bounds a value quoted in an assertion's message, in bytes.
const maxShown = 400

// goldenDiffLines bounds the diff a failed golden prints.
const goldenDiffLines = 60

// assertModule is the assert module of test files: eq, ne, true,
// contains, fails and golden. Each fails the test, at the position of
// its call, when what it asserts does not hold; an optional msg is
// printed before the reason.
func (r *runner) assertModule() starlark.Value {
	fn := func(name string, f func(thread *starlark.Thread, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error)) *starlark.Builtin {
		return starlark.NewBuiltin("assert."+name, func(thread *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			return f(thread, args, kwargs)
		})
	}
	return &starlarkstruct.Module{Name: "assert", Members: starlark.StringDict{
		"eq": fn("eq", func(thread *starlark.Thread, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var got, want starlark.Value
			var msg string
			if err := starlark.UnpackArgs("assert.eq", args, kwargs, "got", &got, "want", &want, "msg?", &msg); err != nil {
				return nil, err
			}
			if ok, err := starlark.Equal(got, want); err != nil || !ok {
				return nil, failure(thread, prefix(msg)+fmt.Sprintf("got %s, want %s", show(got), show(want)))
			}
			return starlark.None, nil
		}),
		"ne": fn("ne", func(thread *starlark.Thread, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var got, other starlark.Value
			var msg string
			if err := starlark.UnpackArgs("assert.ne", args, kwargs, "got", &got, "other", &other, "msg?", &msg); err != nil {
				return nil, err
			}
			if ok, err := starlark.Equal(got, other); err != nil || ok {
				return nil, failure(thread, prefix(msg)+fmt.Sprintf("got %s, want any other value", show(got)))
			}
			return starlark.None, nil
		}),
		"true": fn("true", func(thread *starlark.Thread, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var cond starlark.Value
			var msg string
			if err := starlark.UnpackArgs("assert.true", args, kwargs, "cond", &cond, "msg?", &msg); err != nil {
				return nil, err
			}
			if !cond.Truth() {
				return nil, failure(thread, prefix(msg)+fmt.Sprintf("got %s, want a true value", show(cond)))
			}
			return starlark.None, nil
		}),
		"contains": fn("contains", func(thread *starlark.Thread, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var container, item starlark.Value
			var msg string
			if err := starlark.UnpackArgs("assert.contains", args, kwargs, "container", &container, "item", &item, "msg?", &msg); err != nil {
				return nil, err
			}
			in, err := starlark.Binary(syntax.IN, item, container)
			if err != nil {
				return nil, err
			}
			if !in.Truth() {
				return nil, failure(thread, prefix(msg)+fmt.Sprintf("%s does not contain %s", show(container), show(item)))
			}
			return starlark.None, nil
		}),
		"fails": fn("fails", func(thread *starlark.Thread, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var f starlark.Callable
			var pattern, msg string
			if err := starlark.UnpackArgs("assert.fails", args, kwargs, "fn", &f, "regexp", &pattern, "msg?", &msg); err != nil {
				return nil, err
			}
			re, err := regexp.Compile(pattern)
			if err != nil {
				return nil, fmt.Errorf("assert.fails: regexp %q: %v", pattern, err)
			}
			_, err = starlark.Call(thread, f, nil, nil)
			var ae *assertError
			switch {
			case err == nil:
				return nil, failure(thread, prefix(msg)+fmt.Sprintf("%s did not fail; want an error matching %q", f.Name(), pattern))
			case errors.As(err, &ae):
				return nil, err // an assertion inside fn failed
			}
			text := errorMessage(err)
			if !re.MatchString(text) {
				return nil, failure(thread, prefix(msg)+fmt.Sprintf("%s failed with %s, want an error matching %q", f.Name(), show(starlark.String(text)), pattern))
			}
			return starlark.String(text), nil
		}),
		"golden": fn("golden", func(thread *starlark.Thread, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var v starlark.Value
			var p, msg string
			if err := starlark.UnpackArgs("assert.golden", args, kwargs, "value", &v, "path", &p, "msg?", &msg); err != nil {
				return nil, err
			}
			return starlark.None, r.golden(thread, v, p, msg)
		}),
	}}
}

// maxGolden bounds a golden file, in bytes.
const maxGolden = 64 << 20

// golden compares the text of v with the golden file p (relative to the
// test's directory), or writes it with Options.Update. A string is its
// own text; any other value is its JSON, indented, with dict keys in
// their order and struct fields sorted.
//
// A golden is a file named *.golden in the test file's directory tree,
// outside directories whose names start with ".", reached without a
// symlink that leaves the tree (os.Root), and itself no symlink: --update
// runs in reviews of other people's changes, often as root, and must not
// become a way to write .git/config, a playbook or /etc/cron.d.
func (r *runner) golden(thread *starlark.Thread, v starlark.Value, p, msg string) error {
	name, err := r.goldenName(p)
	if err != nil {
		return fmt.Errorf("assert.golden: %w", err)
	}
	text, err := goldenText(thread, v)
	if err != nil {
		return fmt.Errorf("assert.golden: %w", err)
	}
	root, err := os.OpenRoot(r.dir)
	if err != nil {
		return fmt.Errorf("assert.golden: %w", err)
	}
	defer root.Close()
	shown := filepath.Join(r.dir, name)
	if fi, err := root.Lstat(name); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("assert.golden: %s is not a regular file (a golden is one)", shown)
	}
	if r.opts.Update {
		return writeGolden(root, name, text)
	}
	want, err := host.ReadRegular(root, name, maxGolden)
	if errors.Is(err, fs.ErrNotExist) {
		return failure(thread, prefix(msg)+fmt.Sprintf("golden %s does not exist (kplay test --update writes it)", shown))
	}
	if err != nil {
		return fmt.Errorf("assert.golden: %s: %w", shown, err)
	}
	if !bytes.Equal(want, text) {
		diff := ui.CutDiff(ui.ContentDiff(want, text, shown+" (before)", shown+" (after)"), goldenDiffLines)
		return failure(thread, prefix(msg)+fmt.Sprintf("differs from golden %s (kplay test --update rewrites it):\n%s", shown, strings.TrimSuffix(diff, "\n")))
	}
	return nil
}

// goldenName checks the path of a golden (see golden) and returns it
// clean, relative to the test file's directory.
func (r *runner) goldenName(p string) (string, error) {
	if p == "" || filepath.IsAbs(p) {
		return "", fmt.Errorf("%q: want a path relative to the test file's directory, such as testdata/x.golden", p)
	}
	clean := filepath.Clean(p)
	if clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("%q leaves the test file's directory %s (keep goldens beside the test, such as testdata/x.golden)", p, r.dir)
	}
	if !strings.HasSuffix(clean, ".golden") {
		return "", fmt.Errorf("%q: a golden's name ends in .golden (such as testdata/x.golden)", p)
	}
	for _, part := range strings.Split(clean, string(filepath.Separator)) {
		if strings.HasPrefix(part, ".") {
			return "", fmt.Errorf("%q: a golden is not in a directory whose name starts with \".\"", p)
		}
	}
	return clean, nil
}

// writeGolden replaces the golden name in root with text: a new file,
// then a rename over the old one, which replaces a symlink rather than
// follow it.
func writeGolden(root *os.Root, name string, text []byte) error {
	if err := root.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return fmt.Errorf("assert.golden: %w", err)
	}
	tmp := filepath.Join(filepath.Dir(name), fmt.Sprintf(".%s.%d.tmp", filepath.Base(name), os.Getpid()))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("assert.golden: %w", err)
	}
	_, werr := f.Write(text)
	if err := errors.Join(werr, f.Close()); err != nil {
		_ = root.Remove(tmp)
		return fmt.Errorf("assert.golden: %w", err)
	}
	if err := root.Rename(tmp, name); err != nil {
		_ = root.Remove(tmp)
		return fmt.Errorf("assert.golden: %w", err)
	}
	return nil
}

// goldenText is the text a golden holds for v.
func goldenText(thread *starlark.Thread, v starlark.Value) ([]byte, error) {
	if s, ok := v.(starlark.String); ok {
		return []byte(string(s)), nil
	}
	enc, err := starlark.Call(thread, starjson.Module.Members["encode"], starlark.Tuple{v}, nil)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, []byte(string(enc.(starlark.String))), "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

func prefix(msg string) string {
	if msg == "" {
		return ""
	}
	return msg + ": "
}

// show quotes v for a message, cut to maxShown bytes.
func show(v starlark.Value) string {
	s := v.String()
	if len(s) > maxShown {
		s = strings.ToValidUTF8(s[:maxShown], "") + fmt.Sprintf("… (%d bytes)", len(s))
	}
	return s
}
