package builtins

import (
	"fmt"
	"path"
	"strings"

	"github.com/kplay-dev/kplay/engine"
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
//   - restart-on-change: a restart or reload whose on_change names a file
//     that is neither a unit file nor a drop-in of that unit, nor named
//     (it or its directory) in the text of one the plan declares: a
//     change to it most likely does not need the restart, or the restart
//     names the wrong unit.
//
// Unit files the plan does not declare (a vendor's docker.service) are
// not read: what they name is unknown, so only the handle's own path is
// judged against the unit's name.
func Lint(p *engine.Plan) []LintFinding {
	var out []LintFinding
	texts := unitTexts(p.Steps)
	for _, s := range p.Steps {
		switch s := s.(type) {
		case *fileStep:
			if s.meta.Kind == "file" && !s.modeGiven && strings.HasPrefix(s.path, TLSDir+"/") {
				out = append(out, LintFinding{Pos: s.meta.Pos, Rule: "tls-mode",
					Message: fmt.Sprintf("file %s has no mode=: give the mode of TLS assets in the playbook, such as mode = 0o600 for a key and 0o644 for a certificate", s.path)})
			}
		case *systemctlStep:
			if s.action != "restart" && s.action != "try-restart" && s.action != "reload" {
				continue
			}
			for _, id := range s.meta.OnChange {
				if id < 0 || id >= len(p.Steps) {
					continue
				}
				h, ok := p.Steps[id].(*fileStep)
				if !ok || affects(h.path, s.unit, texts[s.unit]) {
					continue
				}
				hm := h.meta
				out = append(out, LintFinding{Pos: s.meta.Pos, Rule: "restart-on-change",
					Message: fmt.Sprintf("systemctl %s %s: on_change names %s %s (%s), which is not a unit file or drop-in of %s and is not named in one: a change to it does not reach %s; name the steps %s reads",
						s.action, s.unit, hm.Kind, h.path, hm.Pos, s.unit, s.unit, s.unit)})
			}
		}
	}
	return out
}

// unitTexts maps each unit name to the text of its unit file and
// drop-ins that steps declare.
func unitTexts(steps []engine.Step) map[string][]string {
	texts := map[string][]string{}
	for _, s := range steps {
		f, ok := s.(*fileStep)
		if !ok || unitTypeOf(f.path) == "" || !strings.HasPrefix(f.path, "/etc/systemd/") {
			continue
		}
		u := configuredUnit(f.path)
		texts[u] = append(texts[u], string(f.content))
	}
	return texts
}

// affects reports whether a change to the file at p reaches unit: p is
// its unit file or one of its drop-ins (or a drop-in of every unit of
// its type, such as service.d/x.conf), or the text of one of them names
// p or p's directory (not a directory right under /, such as /etc).
func affects(p, unit string, texts []string) bool {
	if unitTypeOf(p) != "" {
		u := configuredUnit(p)
		if u == unit || strings.HasSuffix(unit, "."+u) {
			return true
		}
	}
	dir := path.Dir(p)
	for _, t := range texts {
		// A directory right under / (/etc) names too much to count.
		if names(t, p) || strings.Count(dir, "/") >= 2 && names(t, dir) {
			return true
		}
	}
	return false
}

// names reports whether text names the path p as a whole: p not within a
// longer path, such as /etc/app in /etc/app/env or /x/etc/app.
func names(text, p string) bool {
	for i := 0; ; {
		j := strings.Index(text[i:], p)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(p)
		if (start == 0 || !isPathByte(text[start-1])) && (end == len(text) || !isPathByte(text[end]) && text[end] != '/') {
			return true
		}
		i = start + 1
	}
}

// isPathByte reports whether c can be part of a path's name in a unit
// file's text: a letter, a digit, or one of . _ - and @.
func isPathByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == '@'
}
