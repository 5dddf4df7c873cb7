package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// update rewrites the `cmp stdout want` files inside the scripts:
// go test ./cmd/kplay/ -run TestScripts -update, then review the diff.
var update = flag.Bool("update", false, "rewrite the expected output in testdata/script/*.txtar, and docs/man")

// TestMain makes the test binary double as the kplay command, so that
// scripts run the real main path (flags, exit code) as a subprocess.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "agent" {
		// A fleet run started this binary on a "host" under another name
		// than kplay: it is kplay there too, never the test suite again.
		noCrashExit2()
		os.Exit(runWithSignals(os.Args[1:], os.Stdout, os.Stderr))
	}
	testscript.Main(m, map[string]func(){
		"kplay": func() { noCrashExit2(); os.Exit(runWithSignals(os.Args[1:], os.Stdout, os.Stderr)) },
		// kplay-fatal is kplay's start followed by a fatal error of the
		// Go runtime, which recover() cannot catch (TestFatalErrorIsNotExit2).
		"kplay-fatal": func() {
			noCrashExit2()
			var mu sync.Mutex
			mu.Unlock() // fatal error: sync: unlock of unlocked mutex
		},
	})
}

// TestScripts runs testdata/script/*.txtar. Besides testscript's own
// commands, scripts may use exitcode, jsonget, treehash and httpserve
// (below), the condition [root] (the test runs as uid 0), and $UID, $GID
// and $REPO (this repository's top directory).
func TestScripts(t *testing.T) {
	t.Parallel()
	p := scriptParams()
	p.Dir = "../../testdata/script"
	p.UpdateScripts = *update
	testscript.Run(t, p)
}

// scriptParams are the settings every script runs with.
func scriptParams() testscript.Params {
	return testscript.Params{
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("NO_COLOR", "1")
			// For playbooks that take their owner as a var, so that a run
			// works without root.
			env.Setenv("UID", strconv.Itoa(os.Getuid()))
			env.Setenv("GID", strconv.Itoa(os.Getgid()))
			// The repository, for scripts that use its playbooks.
			repo, err := filepath.Abs("../..")
			env.Setenv("REPO", repo)
			return err
		},
		Condition: func(cond string) (bool, error) {
			if cond == "root" {
				// run chowns what it writes to root:root by default.
				return os.Geteuid() == 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode":  cmdExitcode,
			"jsonget":   cmdJSONGet,
			"treehash":  cmdTreeHash,
			"httpserve": cmdHTTPServe,
		},
	}
}

// cmdExitcode implements
//
//	exitcode [-within DURATION] N PROGRAM [ARGS...]
//
// It runs PROGRAM like exec does (its stdout and stderr are then what the
// stdout and stderr commands look at) and fails unless it exits with
// status N, and, with -within, unless it ends within DURATION.
func cmdExitcode(ts *testscript.TestScript, neg bool, args []string) {
	const usage = "usage: exitcode [-within DURATION] N PROGRAM [ARGS...]"
	if neg {
		ts.Fatalf("exitcode does not take !: give the status you want")
	}
	var within time.Duration
	if len(args) > 0 && args[0] == "-within" {
		if len(args) < 2 {
			ts.Fatalf(usage)
		}
		d, err := time.ParseDuration(args[1])
		if err != nil {
			ts.Fatalf("exitcode -within %q: %v", args[1], err)
		}
		within, args = d, args[2:]
	}
	if len(args) < 2 {
		ts.Fatalf(usage)
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode %q: want a number; %s", args[0], usage)
	}
	start := time.Now()
	err = ts.Exec(args[1], args[2:]...)
	took := time.Since(start)
	got := 0
	if err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			ts.Fatalf("%s: %v", args[1], err)
		}
		got = exitErr.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
	if within > 0 && took > within {
		ts.Fatalf("%s took %v, want at most %v", args[1], took.Round(time.Millisecond), within)
	}
}

// cmdJSONGet implements
//
//	jsonget FILE PATH [WANT]
//
// FILE (or stdout, stderr) must hold exactly one JSON document. PATH is a
// dotted path into it: object keys, and decimal indexes into arrays, as in
// counts.create or steps.0.tags.0; "." is the whole document. With WANT,
// a JSON value such as '"create"', 3, true or '["net"]', the value must
// equal WANT (both are compared as compact JSON with sorted object keys);
// with ! it must exist and differ. Without WANT, the path must exist (with
// !, it must not).
func cmdJSONGet(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 && len(args) != 3 {
		ts.Fatalf("usage: jsonget FILE PATH [WANT]")
	}
	file, path := args[0], args[1]
	doc, err := decodeJSON(ts.ReadFile(file))
	if err != nil {
		ts.Fatalf("%s: %v", file, err)
	}
	v, err := jsonLookup(doc, path)
	if len(args) == 2 {
		switch {
		case err == nil && neg:
			ts.Fatalf("%s: %s is present, want it absent", file, path)
		case err != nil && !neg:
			ts.Fatalf("%s: %v", file, err)
		}
		return
	}
	if err != nil {
		ts.Fatalf("%s: %v", file, err)
	}
	got, err := compactJSON(v)
	if err != nil {
		ts.Fatalf("%s: %s: %v", file, path, err)
	}
	wantDoc, err := decodeJSON(args[2])
	if err != nil {
		ts.Fatalf("jsonget: WANT %q: %v", args[2], err)
	}
	want, err := compactJSON(wantDoc)
	if err != nil {
		ts.Fatalf("jsonget: WANT %q: %v", args[2], err)
	}
	if neg && got == want {
		ts.Fatalf("%s: %s is %s, want anything else", file, path, got)
	}
	if !neg && got != want {
		ts.Fatalf("%s: %s is %s, want %s", file, path, got, want)
	}
}

// cmdTreeHash implements
//
//	treehash [-x PATH]... DIR FILE
//
// It writes to FILE a listing of the tree at DIR, DIR itself included as
// ".": one line per entry in lexical order, with its path, type and
// permission bits, owner uid:gid, size, modification time in nanoseconds,
// and the symlink's target or the SHA-256 of the file's content; then a
// last line with the SHA-256 of the lines before, the tree's hash. Two
// listings of one tree taken before and after a command are equal (cmp
// them) only if the command changed nothing there, and cmp's diff shows
// what changed. Symlinks are listed, not followed. -x leaves out PATH,
// relative to DIR, and whatever is under it.
func cmdTreeHash(ts *testscript.TestScript, neg bool, args []string) {
	const usage = "usage: treehash [-x PATH]... DIR FILE"
	if neg {
		ts.Fatalf("treehash does not take !: cmp two listings instead")
	}
	skip := map[string]bool{}
	for len(args) > 0 && args[0] == "-x" {
		if len(args) < 2 {
			ts.Fatalf(usage)
		}
		skip[filepath.Clean(args[1])] = true
		args = args[2:]
	}
	if len(args) != 2 {
		ts.Fatalf(usage)
	}
	listing, err := treeListing(ts.MkAbs(args[0]), skip)
	if err != nil {
		ts.Fatalf("treehash: %v", err)
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(listing), 0o644))
}

// treeListing lists the tree at dir for treehash, leaving out the paths
// in skip (relative to dir).
func treeListing(dir string, skip map[string]bool) (string, error) {
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if skip[rel] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		owner := "?:?"
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			owner = fmt.Sprintf("%d:%d", st.Uid, st.Gid)
		}
		var what string
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			what = "-> " + strconv.Quote(target)
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			what = fmt.Sprintf("sha256:%x", sha256.Sum256(data))
		}
		line := fmt.Sprintf("%s %s %s %d %d", strconv.Quote(filepath.ToSlash(rel)), info.Mode(), owner, info.Size(), info.ModTime().UnixNano())
		if what != "" {
			line += " " + what
		}
		b.WriteString(line + "\n")
		return nil
	})
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&b, "tree sha256:%x\n", sha256.Sum256([]byte(b.String())))
	return b.String(), nil
}

// cmdHTTPServe implements
//
//	httpserve STATUS NAME
//
// It starts an HTTP server on loopback that answers every request with
// STATUS and the body "status STATUS", sets the variable NAME to its URL
// (such as http://127.0.0.1:41234), and stops it when the script ends.
func cmdHTTPServe(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("httpserve does not take !")
	}
	if len(args) != 2 {
		ts.Fatalf("usage: httpserve STATUS NAME")
	}
	status, err := strconv.Atoi(args[0])
	if err != nil || status < 100 || status > 599 {
		ts.Fatalf("httpserve %q: want an HTTP status from 100 to 599", args[0])
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		fmt.Fprintf(w, "status %d", status)
	}))
	ts.Defer(srv.Close)
	ts.Setenv(args[1], srv.URL)
}

// decodeJSON parses s, which must hold exactly one JSON value. Numbers
// keep their text, so 3 stays 3 and not 3e+00.
func decodeJSON(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("more than one JSON value (or trailing text)")
	}
	return v, nil
}

// jsonLookup walks a dotted path of object keys and array indexes.
func jsonLookup(v any, path string) (any, error) {
	if path == "." {
		return v, nil
	}
	walked := ""
	for _, key := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			next, ok := x[key]
			if !ok {
				return nil, fmt.Errorf("%s has no key %q", orDoc(walked), key)
			}
			v = next
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(x) {
				return nil, fmt.Errorf("%s is an array of %d, has no index %q", orDoc(walked), len(x), key)
			}
			v = x[i]
		default:
			return nil, fmt.Errorf("%s is not an object or array, cannot take %q", orDoc(walked), key)
		}
		walked = strings.TrimPrefix(walked+"."+key, ".")
	}
	return v, nil
}

func orDoc(path string) string {
	if path == "" {
		return "the document"
	}
	return path
}

// compactJSON renders v on one line, without escaping <, > and &.
func compactJSON(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// TestScriptCommands checks that exitcode, jsonget, treehash and
// httpserve fail when they should, so that a script using them cannot pass
// by accident.
func TestScriptCommands(t *testing.T) {
	t.Parallel()
	const doc = `{"counts": {"create": 3, "update": 0}, "steps": [{"action": "create", "tags": ["a", "b"], "diff": "-x\n+y\n"}], "changed": true}`
	tests := map[string]struct {
		script  string
		wantErr string // regexp for the failure; "" if the script must pass
	}{
		"exitcode_passes":        {script: "exitcode 0 kplay version\nstdout '^kplay '\nexitcode 1 kplay doc nope\nstderr 'no builtin'\nexitcode -within 1m 0 kplay version"},
		"exitcode_wrong_status":  {script: "exitcode 1 kplay version", wantErr: `kplay exited with status 0, want 1`},
		"exitcode_wrong_failure": {script: "exitcode 2 kplay doc nope", wantErr: `kplay exited with status 1, want 2`},
		"exitcode_too_slow":      {script: "exitcode -within 1ns 0 kplay version", wantErr: `kplay took .*, want at most 1ns`},
		"exitcode_negated":       {script: "! exitcode 0 kplay version", wantErr: `exitcode does not take !`},
		"exitcode_no_program":    {script: "exitcode 0 no-such-program-kplay", wantErr: `no-such-program-kplay: .*not found`},
		"exitcode_bad_status":    {script: "exitcode x kplay version", wantErr: `exitcode "x": want a number`},
		"jsonget_passes": {script: `jsonget doc.json counts.create 3
jsonget doc.json counts '{"update":0,"create":3}'
jsonget doc.json steps.0.action '"create"'
jsonget doc.json steps.0.tags '["a", "b"]'
jsonget doc.json steps.0.diff '"-x\n+y\n"'
jsonget doc.json changed true
jsonget doc.json steps.0
! jsonget doc.json counts.delete
! jsonget doc.json steps.1
! jsonget doc.json counts.create 4`},
		"jsonget_stdout":         {script: "exitcode 0 kplay vars v.star -o json\njsonget stdout 0.name '\"A\"'\n! jsonget stdout 0.name '\"B\"'"},
		"jsonget_wrong_number":   {script: "jsonget doc.json counts.create 4", wantErr: `counts.create is 3, want 4`},
		"jsonget_string_not_int": {script: `jsonget doc.json counts.create '"3"'`, wantErr: `counts.create is 3, want "3"`},
		"jsonget_wrong_list":     {script: `jsonget doc.json steps.0.tags '["b", "a"]'`, wantErr: `steps.0.tags is \["a","b"\], want \["b","a"\]`},
		"jsonget_missing_key":    {script: "jsonget doc.json counts.delete 0", wantErr: `counts has no key "delete"`},
		"jsonget_missing_index":  {script: `jsonget doc.json steps.1.action '"create"'`, wantErr: `steps is an array of 1, has no index "1"`},
		"jsonget_into_scalar":    {script: "jsonget doc.json changed.x 1", wantErr: `changed is not an object or array, cannot take "x"`},
		"jsonget_present":        {script: "! jsonget doc.json counts.create", wantErr: `counts.create is present, want it absent`},
		"jsonget_absent":         {script: "jsonget doc.json counts.delete", wantErr: `counts has no key "delete"`},
		"jsonget_negated_equal":  {script: "! jsonget doc.json counts.create 3", wantErr: `counts.create is 3, want anything else`},
		"jsonget_bad_want":       {script: "jsonget doc.json counts.create three", wantErr: `WANT "three": not JSON`},
		"jsonget_not_json":       {script: "jsonget bad.json . 1", wantErr: `bad.json: not JSON`},
		"jsonget_two_documents":  {script: "jsonget two.json . '{}'", wantErr: `two.json: more than one JSON value`},
		"jsonget_no_file":        {script: "jsonget nope.json . 1", wantErr: `nope.json: no such file`},
		"treehash_unchanged":     {script: "treehash tree a\ntreehash tree b\ncmp a b\ngrep '^tree sha256:[0-9a-f]{64}$' a\ngrep '^\"d/l\" L.* -> \"g\"$' a"},
		"treehash_content": {script: `exec touch -d 2020-01-01T00:00:00Z tree/f
treehash tree a
cp tree/h tree/f
exec touch -d 2020-01-01T00:00:00Z tree/f
treehash tree b
cmp a b`, wantErr: `a and b differ`},
		"treehash_mode":     {script: "treehash tree a\nchmod 0600 tree/f\ntreehash tree b\ncmp a b", wantErr: `a and b differ`},
		"treehash_mtime":    {script: "treehash tree a\nexec touch -d 2001-01-01T00:00:00Z tree/f\ntreehash tree b\ncmp a b", wantErr: `a and b differ`},
		"treehash_new_file": {script: "treehash tree a\nmkdir tree/d/e\ntreehash tree b\ncmp a b", wantErr: `a and b differ`},
		"treehash_symlink_target": {script: `exec touch -d 2020-01-01T00:00:00Z tree/d
treehash tree a
rm tree/d/l
symlink tree/d/l -> ../f
exec touch -h -d 2020-01-01T00:00:00Z tree/d tree/d/l
treehash tree b
cmp a b`, wantErr: `a and b differ`},
		"treehash_excludes":    {script: "treehash -x d tree a\nmkdir tree/d/e\ntreehash -x d tree b\ncmp a b"},
		"treehash_negated":     {script: "! treehash tree a", wantErr: `treehash does not take !`},
		"treehash_no_dir":      {script: "treehash nope a", wantErr: `treehash: .*nope: no such file`},
		"httpserve_answers":    {script: "httpserve 500 SRV\nexitcode 1 kplay run post.star --root $WORK/r --var URL=$SRV\nstderr 'answered 500 Internal Server Error \\(want 200 or 201\\): \"status 500\"'\nhttpserve 201 OK\nexitcode 0 kplay run post.star --root $WORK/r --var URL=$OK"},
		"httpserve_bad_status": {script: "httpserve 99 SRV", wantErr: `httpserve "99": want an HTTP status from 100 to 599`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			script := tc.script + "\n-- doc.json --\n" + doc + "\n-- bad.json --\nnot json\n-- two.json --\n{} {}\n" +
				"-- v.star --\nvar(\"A\", default=\"a\")\n" +
				"-- post.star --\nhttp_post(var(\"URL\"), body=\"x\")\n" +
				"-- tree/f --\nf\n-- tree/h --\nh\n-- tree/d/g --\ng\n"
			// The tree for treehash has a symlink, which an archive cannot hold.
			script = "symlink tree/d/l -> g\n" + script
			file := filepath.Join(dir, name+".txtar")
			if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
				t.Fatal(err)
			}
			p := scriptParams()
			p.Files = []string{file}
			ft := &fakeT{}
			testscript.RunT(ft, p)
			log := ft.log.String()
			switch {
			case tc.wantErr == "" && ft.failed:
				t.Errorf("script failed, want it to pass:\n%s", log)
			case tc.wantErr != "" && !ft.failed:
				t.Errorf("script passed, want it to fail with %q:\n%s", tc.wantErr, log)
			case tc.wantErr != "" && !regexp.MustCompile(`FAIL: .*`+tc.wantErr).MatchString(log):
				t.Errorf("script failed without %q:\n%s", tc.wantErr, log)
			}
		})
	}
}

// fakeT runs testscript without failing the real test, recording whether
// a script failed and its log.
type fakeT struct {
	mu     sync.Mutex
	log    strings.Builder
	failed bool
}

func (f *fakeT) Skip(args ...any) { f.Log(args...); runtime.Goexit() }
func (f *fakeT) Fatal(args ...any) {
	f.Log(args...)
	f.FailNow()
}
func (f *fakeT) Parallel() {}
func (f *fakeT) Log(args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fmt.Fprintln(&f.log, args...)
}
func (f *fakeT) FailNow() {
	f.mu.Lock()
	f.failed = true
	f.mu.Unlock()
	runtime.Goexit()
}

// Run runs fn on its own goroutine, so that FailNow ends only it.
func (f *fakeT) Run(name string, fn func(testscript.T)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
}
func (f *fakeT) Verbose() bool { return false }
