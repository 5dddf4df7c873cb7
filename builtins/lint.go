package builtins

import (
	"fmt"
	"path"
	"strings"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host/unitfile"
)

// LintFinding is a problem kplay lint finds in an evaluated plan: the
// position of the call at fault, the rule's name and what to do.
type LintFinding struct {
	Pos     engine.Pos
	Rule    string
	Message string
}

// TLSDir is the directory of the cluster's TLS assets, where a file's
// mode must be given rather than left to a default.
const TLSDir = "/etc/kubernetes/ssl"

// Lint applies kplay's rules for playbooks to the steps of an evaluated
// plan, in plan order:
//
//   - tls-mode: a file() of a path under /etc/kubernetes/ssl without
//     mode=. Whether a key ends up 0600 should be read in the playbook,
//     not worked out from the secret rule.
//   - restart-on-change: a restart, try-restart or reload of a unit whose
//     unit file the plan declares, with an on_change that names a file
//     which does not reach the unit: not its unit file or a drop-in of it
//     (or of its template, web@.service for web@a.service), and not named
//     (it or its directory) in their text or in the text of a file they
//     name, and so on (a key named by a kubeconfig that the unit names).
//     A change to such a file most likely does not need the restart, or
//     the restart names the wrong unit.
//
// A unit whose unit file the plan does not declare (a vendor's
// docker.service, with or without drop-ins of the playbook's) is not
// judged: what it reads is unknown.
func Lint(p *engine.Plan) []LintFinding {
	var out []LintFinding
	files := fileSteps(p.Steps)
	for _, s := range p.Steps {
		switch s := s.(type) {
		case *fileStep:
			if s.meta.Kind == "file" && !s.modeGiven && strings.HasPrefix(s.path, TLSDir+"/") {
				out = append(out, LintFinding{Pos: s.meta.Pos, Rule: "tls-mode",
					Message: fmt.Sprintf("file %s has no mode=: give the mode of TLS assets in the playbook, such as mode = 0o600 for a key and 0o644 for a certificate", s.path)})
			}
		case *systemctlStep:
			if s.action != "restart" && s.action != "try-restart" && s.action != "reload" || len(s.meta.OnChange) == 0 {
				continue
			}
			reached, known := reachedFrom(s.unit, files)
			if !known {
				continue
			}
			for _, id := range s.meta.OnChange {
				if id < 0 || id >= len(p.Steps) {
					continue
				}
				h, ok := p.Steps[id].(*fileStep)
				if !ok || reached[h.path] {
					continue
				}
				out = append(out, LintFinding{Pos: s.meta.Pos, Rule: "restart-on-change",
					Message: fmt.Sprintf("systemctl %s %s: on_change names %s %s (%s), which %s does not read: it is not its unit file or a drop-in, and neither they nor a file they name name it or its directory; name the steps whose change %s needs",
						s.action, s.unit, h.meta.Kind, h.path, h.meta.Pos, s.unit, s.unit)})
			}
		}
	}
	return out
}

// fileSteps are the steps that write a file: file(), unit(), dropin(),
// manifest().
func fileSteps(steps []engine.Step) []*fileStep {
	var out []*fileStep
	for _, s := range steps {
		if f, ok := s.(*fileStep); ok {
			out = append(out, f)
		}
	}
	return out
}

// reachedFrom returns the paths of files that a change to reaches unit:
// its unit file and drop-ins among files (those of its template too, and
// drop-ins for every unit of its type), then every file whose path or
// directory the text of a reached file names, until no more are. known
// is false when files hold no unit file of unit or its template.
func reachedFrom(unit string, files []*fileStep) (reached map[string]bool, known bool) {
	template, instance := unitfile.SplitInstance(unit)
	reached = map[string]bool{}
	var texts []string
	for _, f := range files {
		if unitTypeOf(f.path) == "" || !strings.HasPrefix(f.path, "/etc/systemd/") {
			continue
		}
		u := configuredUnit(f.path)
		isFile := !strings.HasSuffix(path.Dir(f.path), ".d")
		if u == unit || u == template || !isFile && strings.HasSuffix(unit, "."+u) {
			known = known || isFile
			reached[f.path] = true
			texts = append(texts, expandInstance(string(f.content), instance))
		}
	}
	for len(texts) > 0 {
		t := texts[0]
		texts = texts[1:]
		for _, f := range files {
			if reached[f.path] {
				continue
			}
			dir := path.Dir(f.path)
			// A directory right under / (/etc) names too much to count.
			if names(t, f.path) || strings.Count(dir, "/") >= 2 && names(t, dir) {
				reached[f.path] = true
				texts = append(texts, string(f.content))
			}
		}
	}
	return reached, known
}

// expandInstance replaces the specifiers %i and %I of a template's text
// with the instance, so that the paths it names can be matched.
func expandInstance(text, instance string) string {
	if instance == "" {
		return text
	}
	return strings.NewReplacer("%%", "%%", "%i", instance, "%I", instance).Replace(text)
}

// names reports whether text names the path p as a whole: p not within a
// longer path, such as /etc/app in /etc/app/env or /x/etc/app. What may
// come before it is anything but a letter, digit, "_", "." or "/" (so
// EnvironmentFile=-/etc/x names /etc/x); after it, anything but those,
// "-", "@" or "/".
func names(text, p string) bool {
	for i := 0; ; {
		j := strings.Index(text[i:], p)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(p)
		before := start == 0 || !isNameByte(text[start-1]) && text[start-1] != '/'
		after := end == len(text) || !isNameByte(text[end]) && !strings.ContainsRune("-@/", rune(text[end]))
		if before && after {
			return true
		}
		i = start + 1
	}
}

// isNameByte reports whether c is a letter, a digit, "_" or ".".
func isNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_'
}
