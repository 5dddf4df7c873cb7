package builtins

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/unitfile"
)

// verifyService checks the service name as systemd 252's manager loads it
// from h's root, its unit file and every drop-in merged (see
// host.UnitConfigFiles), with the rules of its service_verify: the unit
// that breaks one is refused at load ("… Refusing."), so it never starts.
// A service with no unit file, or a masked one, passes. The error names
// the files read.
//
// unit() and dropin() call it once every step has run on the dry host,
// so it sees what the whole plan leaves, drop-ins declared after the unit
// included. TestServiceRulesAgreeWithSystemd holds it to systemd-analyze
// verify.
func verifyService(ctx context.Context, h host.Host, name string) error {
	files, err := host.UnitConfigFiles(ctx, h, name)
	if err != nil || files == nil {
		return err
	}
	var s serviceSettings
	for _, f := range files {
		text, err := h.ReadFile(ctx, f)
		var nr *host.NotRegularError
		if errors.Is(err, fs.ErrNotExist) || errors.As(err, &nr) {
			continue // a drop-in linked to /dev/null
		}
		if err != nil {
			return err
		}
		s.read(string(text))
	}
	if msg := s.verify(); msg != "" {
		return fmt.Errorf("systemd would refuse to load %s: %s (read from %s)", name, msg, strings.Join(files, ", "))
	}
	return nil
}

// serviceSettings are the settings of a service that service_verify
// looks at, after every file is read in order.
type serviceSettings struct {
	execStart, execStop   int    // commands; an empty assignment resets
	successAction         bool   // [Unit] SuccessAction= other than none
	typ, restart, busName string // last assignment, "" for the default
	remainAfterExit       bool
	pam                   bool // PAMName= set
	killMode, exitType    string
	restartForce          bool // RestartForceExitStatus= holds a status
}

// read applies the assignments of one unit file or drop-in. Lines the
// text checker refuses do not reach here: the plan's own texts were
// checked at evaluation, and a line of another file that systemd drops
// is dropped here too (it is not key=value).
func (s *serviceSettings) read(text string) {
	section := ""
	for l, err := range unitfile.LogicalLines(text) {
		if err != nil {
			return
		}
		line := strings.Trim(l.Text, unitWhitespace)
		if strings.HasPrefix(line, "[") {
			section = strings.TrimSuffix(line[1:], "]")
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		key, value = strings.Trim(key, unitWhitespace), strings.Trim(value, unitWhitespace)
		// An empty or malformed value of an enumeration, boolean or bus
		// name is ignored by systemd ("Failed to parse …, ignoring"):
		// the earlier value stays. Empty resets lists and strings.
		switch section + "." + key {
		case "Unit.SuccessAction":
			if slices.Contains(emergencyActions, value) {
				s.successAction = value != "none"
			}
		case "Service.ExecStart":
			s.execStart = countCommand(s.execStart, value)
		case "Service.ExecStop":
			s.execStop = countCommand(s.execStop, value)
		case "Service.Type":
			if slices.Contains(serviceTypes, value) {
				s.typ = value
			}
		case "Service.Restart":
			if slices.Contains(restartModes, value) {
				s.restart = value
			}
		case "Service.BusName":
			if validBusName(value) {
				s.busName = value
			}
		case "Service.RemainAfterExit":
			if b, ok := parseBoolean(value); ok {
				s.remainAfterExit = b
			}
		case "Service.PAMName":
			s.pam = value != ""
		case "Service.KillMode":
			if value == "" || slices.Contains(killModes, value) {
				s.killMode = value
			}
		case "Service.ExitType":
			if value == "main" || value == "cgroup" {
				s.exitType = value
			}
		case "Service.RestartForceExitStatus":
			if value == "" {
				s.restartForce = false
			} else if exitStatusesValid(value) {
				s.restartForce = true
			}
		}
	}
}

// The values systemd 252 takes for the settings service_verify reads;
// any other is ignored with a warning.
var (
	serviceTypes     = []string{"simple", "exec", "forking", "oneshot", "dbus", "notify", "idle"}
	restartModes     = []string{"no", "on-success", "on-failure", "on-abnormal", "on-watchdog", "on-abort", "always"}
	killModes        = []string{"control-group", "process", "mixed", "none"}
	emergencyActions = []string{"none", "reboot", "reboot-force", "reboot-immediate", "poweroff", "poweroff-force", "poweroff-immediate", "exit", "exit-force", "kexec", "kexec-force", "halt", "halt-force", "halt-immediate"}
)

// exitStatusesValid reports whether every word of value is an exit
// status systemd takes for RestartForceExitStatus=: a number up to 255,
// a signal name or an exit status name of its own. A value it cannot
// parse is ignored.
func exitStatusesValid(value string) bool {
	for _, w := range strings.Fields(value) {
		if n, err := strconv.Atoi(w); err == nil && n >= 0 && n <= 255 {
			continue
		}
		if sig, ok := strings.CutPrefix(w, "SIG"); ok && slices.Contains(signalNames, sig) {
			continue
		}
		if slices.Contains(exitStatusNames, w) {
			continue
		}
		return false
	}
	return true
}

// signalNames are the signals Linux names (without "SIG"), and
// exitStatusNames some of systemd's and LSB's exit status names, as
// RestartForceExitStatus= takes them.
var (
	signalNames     = []string{"HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS"}
	exitStatusNames = []string{"SUCCESS", "FAILURE", "INVALIDARGUMENT", "NOTIMPLEMENTED", "NOPERMISSION", "NOTINSTALLED", "NOTCONFIGURED", "NOTRUNNING"}
)

// validBusName reports whether name is a D-Bus well-known or unique bus
// name, as sd-bus's service_name_is_valid: at most 255 bytes, two or more
// dot-separated elements of letters, digits, "_" and "-", none starting
// with a digit (except in a unique name, which starts with ":").
func validBusName(name string) bool {
	if strings.Contains(name, "%") {
		return true // a specifier, expanded when the unit loads
	}
	unique := strings.HasPrefix(name, ":")
	elems := strings.Split(strings.TrimPrefix(name, ":"), ".")
	if len(name) > 255 || len(elems) < 2 {
		return false
	}
	for _, e := range elems {
		if e == "" || !unique && e[0] >= '0' && e[0] <= '9' {
			return false
		}
		for _, c := range e {
			if !(c == '_' || c == '-' || c < 128 && isASCIIAlnum(byte(c))) {
				return false
			}
		}
	}
	return true
}

// countCommand is the number of commands after an Exec…= assignment:
// an empty value resets the list; a value with no command (a prefix such
// as "-" alone), which systemd drops, changes nothing; any other adds
// one, and one more for each ";" word outside quotes that another word
// follows, which separates commands on one line.
func countCommand(n int, value string) int {
	if value == "" {
		return 0
	}
	if cmd := strings.TrimLeft(value, "-@:+!"); cmd == "" || strings.IndexAny(cmd[:1], unitWhitespace) == 0 {
		return n // "Empty path in command line, ignoring"
	}
	words := commandWords(value)
	n++
	for i, w := range words {
		if w == ";" && i+1 < len(words) && words[i+1] != ";" {
			n++
		}
	}
	return n
}

// commandWords splits a command line into words as systemd's
// extract_first_word does for the purpose of finding ";": quotes group,
// a backslash escapes the next character, and a quoted or escaped ";" is
// returned as something other than ";".
func commandWords(value string) []string {
	var words []string
	var w strings.Builder
	inWord := false
	var open byte
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch {
		case c == '\\':
			w.WriteString("\\")
			if i+1 < len(value) {
				i++
				w.WriteByte(value[i])
			}
			inWord = true
		case open != 0:
			if c == open {
				open = 0
			}
			w.WriteByte(c)
		case c == '"' || c == '\'':
			open = c
			w.WriteByte(c)
			inWord = true
		case strings.IndexByte(unitWhitespace, c) >= 0:
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// parseBoolean is systemd's parse_boolean: ok is false for a value it
// does not take.
func parseBoolean(v string) (b, ok bool) {
	switch strings.ToLower(v) {
	case "1", "yes", "y", "true", "t", "on":
		return true, true
	case "0", "no", "n", "false", "f", "off":
		return false, true
	}
	return false, false
}

// verify returns what systemd says when it refuses the service, or "":
// the checks of systemd 252's service_verify, in its order and with its
// messages.
func (s *serviceSettings) verify() string {
	typ := s.typ
	if typ == "" {
		// service_add_extras: dbus with a BusName=, simple with an
		// ExecStart=, else oneshot.
		switch {
		case s.busName != "":
			typ = "dbus"
		case s.execStart > 0:
			typ = "simple"
		default:
			typ = "oneshot"
		}
	}
	oneshot := typ == "oneshot"
	switch {
	case s.execStart == 0 && s.execStop == 0 && !s.successAction:
		return "Service has no ExecStart=, ExecStop=, or SuccessAction=. Refusing."
	case !oneshot && s.execStart == 0:
		return "Service has no ExecStart= setting, which is only allowed for Type=oneshot services. Refusing."
	case !s.remainAfterExit && s.execStart == 0 && !s.successAction:
		return "Service has no ExecStart= and no SuccessAction= settings and does not have RemainAfterExit=yes set. Refusing."
	case !oneshot && s.execStart > 1:
		return "Service has more than one ExecStart= setting, which is only allowed for Type=oneshot services. Refusing. " +
			"(A drop-in adds to the unit's ExecStart=; write an empty \"ExecStart=\" line before yours to replace it.)"
	case oneshot && (s.restart == "always" || s.restart == "on-success"):
		return "Service has Restart= set to either always or on-success, which isn't allowed for Type=oneshot services. Refusing."
	case oneshot && s.restartForce:
		return "Service has RestartForceExitStatus= set, which isn't allowed for Type=oneshot services. Refusing."
	case oneshot && s.exitType == "cgroup":
		return "Service has ExitType=cgroup set, which isn't allowed for Type=oneshot services. Refusing."
	case typ == "dbus" && s.busName == "":
		return "Service is of type D-Bus but no D-Bus service name has been specified. Refusing."
	case s.pam && s.killMode != "" && s.killMode != "control-group" && s.killMode != "mixed":
		return "Service has PAM enabled. Kill mode must be set to 'control-group' or 'mixed'. Refusing."
	}
	return ""
}

// Verify checks, once the plan's every step has run on the dry host, the
// service whose configuration this unit file or drop-in is part of
// (serviceOf), as systemd would load it; see verifyService.
func (s *fileStep) Verify(ctx context.Context, h host.Host) error {
	if s.meta.Reload != engine.UnitFile {
		return nil
	}
	name := serviceOf(s.path)
	if name == "" {
		return nil
	}
	return verifyService(ctx, h, name)
}

// serviceOf returns the service that the unit file or drop-in p
// configures ("x.service" for /etc/systemd/system/x.service and for
// x.service.d/10-y.conf), or "" when p is not about one service: a unit
// of another type, a template (systemd loads only its instances), or a
// drop-in for many (service.d, foo-.service.d).
func serviceOf(p string) string {
	name := configuredUnit(p)
	if !strings.HasSuffix(name, ".service") || strings.Contains(name, "@.") || strings.HasSuffix(name, "-.service") || unitfile.NameError(name) != nil {
		return ""
	}
	return name
}
