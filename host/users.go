package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// LookupUser returns the uid of the user name in the target root: name
// itself if it is a decimal number, else its entry in the first of the
// files that hold it, among those the root's /etc/nsswitch.conf lists for
// passwd (see nssDir; /etc/passwd alone without nsswitch.conf), all read
// through h (so a dry host sees a file written by an earlier step, and
// reads each name once). "root" is 0 even without an entry. Any other
// name that is not there gives an error that names the files searched
// and says to use a numeric id.
func LookupUser(ctx context.Context, h Host, name string) (int, error) {
	return lookupID(ctx, h, name, "owner", "passwd", "user")
}

// LookupGroup returns the gid of the group name in the target root, as
// LookupUser does for users but from the sources of group (/etc/group
// without nsswitch.conf).
func LookupGroup(ctx context.Context, h Host, name string) (int, error) {
	return lookupID(ctx, h, name, "group", "group", "group")
}

// nsswitchConf is where glibc reads which sources serve each database.
// On CoreOS it is a symlink to ../usr/share/baselayout/nsswitch.conf
// (coreos/baselayout tmpfiles.d/baselayout-etc.conf); h follows it.
const nsswitchConf = "/etc/nsswitch.conf"

// nssDir returns the directory whose passwd and group files the NSS
// module reads, for the modules that read files in the root; ok is false
// for the others (systemd, sss, ldap, nis, db, ...), which kplay skips.
func nssDir(module string) (dir string, ok bool) {
	switch module {
	case "files", "compat":
		// glibc's nss_files; nss_compat reads the same files, and its
		// "+" and "-" NIS lines are skipped (see findID).
		return "/etc", true
	case "usrfiles":
		// nss-altfiles as CoreOS and Flatcar build it: coreos-overlay's
		// sys-libs/nss-usrfiles configures it with
		// --datadir=/usr/share/baselayout --with-module-name=usrfiles.
		return "/usr/share/baselayout", true
	case "altfiles":
		// nss-altfiles (github.com/aperezdc/nss-altfiles) as Fedora
		// packages it for rpm-ostree systems: ./configure --prefix=/usr,
		// so its data files are /usr/lib/passwd and /usr/lib/group. Built
		// with no option it reads /lib (ALTFILES_DATADIR in src/compat.h),
		// the same directory where /usr is merged.
		return "/usr/lib", true
	}
	return "", false
}

// lookupID resolves name through the sources of the database db ("passwd",
// "group"); kind names the value in messages ("owner", "group") and noun
// what to add ("user", "group").
func lookupID(ctx context.Context, h Host, name, kind, db, noun string) (int, error) {
	if name == "" {
		return 0, fmt.Errorf(`%s "" is empty (use a %s name or a numeric id)`, kind, noun)
	}
	if id, ok := parseID(name); ok {
		return id, nil
	}
	conf, err := h.ReadFile(ctx, nsswitchConf)
	hasConf := err == nil
	if err != nil && !noConf(err) {
		return 0, fmt.Errorf("%s %q: %w", kind, name, err)
	}
	sources, listed, err := nssSources(conf, db)
	if err != nil {
		return 0, fmt.Errorf("%s %q: %w", kind, name, err)
	}
	if !listed {
		// glibc's default for passwd and group (nss_database.c) when
		// nsswitch.conf is missing or has no line for them.
		sources = []nssSource{{module: "files", text: "files"}}
	}
	var searched, skipped []string
	stop := ""
	for _, s := range sources {
		dir, ok := nssDir(s.module)
		if !ok {
			// Its status is unknown, so its actions are not applied.
			skipped = append(skipped, s.module)
			continue
		}
		file := dir + "/" + db
		data, err := h.ReadFile(ctx, file)
		status := nssNotFound
		switch {
		case errors.Is(err, fs.ErrNotExist):
			status = nssUnavail // as nss_files when it cannot open the file
		case err != nil:
			return 0, fmt.Errorf("%s %q: %w", kind, name, err)
		}
		if !slices.Contains(searched, file) {
			searched = append(searched, file)
		}
		id, ok, err := findID(data, name)
		if err != nil {
			return 0, fmt.Errorf("%s %q in %s: %w", kind, name, file, err)
		}
		if ok {
			return id, nil
		}
		if s.stop[status] {
			stop = s.text
			break
		}
	}
	if name == "root" {
		return 0, nil
	}
	return 0, idNotFound(kind, name, noun, db, h.Root(), hasConf, listed, searched, skipped, stop)
}

// noConf reports whether a read of nsswitch.conf failed in a way glibc
// takes as no file at all (nss_database_reload ignores ENOENT, ENOTDIR and
// EISDIR, and uses its defaults).
func noConf(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR)
}

// idNotFound says that name is in none of the files searched, and why
// those: the sources of db, those kplay skipped and where an action
// stopped the search.
func idNotFound(kind, name, noun, db, root string, hasConf, listed bool, searched, skipped []string, stop string) error {
	fix := fmt.Sprintf("use a numeric id, or add the %s first", noun)
	if len(searched) == 0 {
		if len(skipped) == 0 {
			return fmt.Errorf("%s %q: %s lists no source for %s (use a numeric id)", kind, name, nsswitchConf, db)
		}
		return fmt.Errorf("%s %q: kplay reads none of the sources of %s in %s, %s (use a numeric id)",
			kind, name, db, nsswitchConf, quoteList(skipped, "and"))
	}
	var why string
	switch {
	case !hasConf:
		why = fix
	case !listed:
		why = fmt.Sprintf("the default source of %s: %s has no %s line; %s", db, nsswitchConf, db, fix)
	default:
		why = fmt.Sprintf("the sources of %s in %s", db, nsswitchConf)
		if stop != "" {
			why += fmt.Sprintf(", which stop at %q", stop)
		}
		if len(skipped) > 0 {
			why += fmt.Sprintf("; kplay skips %s", quoteList(skipped, "and"))
		}
		why += "; " + fix
	}
	return fmt.Errorf("%s %q is not in %s of root %s (%s)", kind, name, joinList(searched, "or"), root, why)
}

// nssStatus is what an NSS module answers a lookup with.
type nssStatus int

const (
	nssSuccess nssStatus = iota
	nssNotFound
	nssUnavail
	nssTryAgain
	nssStatuses
)

// nssSource is one source of a database line of nsswitch.conf.
type nssSource struct {
	module string
	text   string            // as written, with its actions: "files [NOTFOUND=return]"
	stop   [nssStatuses]bool // the action for each status is "return"
}

// nssSources returns the sources that the content of an nsswitch.conf
// lists for db, read as glibc 2.33 and later reads it (nss_database.c,
// nss_action_parse.c): leading blanks are skipped; the database name ends
// at a blank or ":" (the colon may be left out); the last line for db
// wins (older glibc took the first); a line with a name and nothing else
// is skipped; a source may be followed by actions such as
// "[NOTFOUND=return]" or "[!UNAVAIL=return]", statuses and actions in any
// case, "merge" taken as "continue". Text from "#" to the end of the line
// is a comment. listed is false when no line names db. Actions glibc
// refuses (it then reads no database at all) are an error naming the line.
// One difference: glibc takes a line that is a name alone as listing no
// source; here it is skipped.
func nssSources(data []byte, db string) (sources []nssSource, listed bool, err error) {
	for i, line := range strings.Split(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		line = strings.TrimLeftFunc(line, isBlank)
		end := strings.IndexFunc(line, func(r rune) bool { return isBlank(r) || r == ':' })
		if end <= 0 || line[:end] != db {
			continue
		}
		rest := strings.TrimLeftFunc(line[end:], func(r rune) bool { return isBlank(r) || r == ':' })
		s, err := parseSources(rest)
		if err != nil {
			return nil, false, fmt.Errorf("%s line %d: %w (glibc then resolves no %s; fix the line)", nsswitchConf, i+1, err, db)
		}
		sources, listed = s, true
	}
	return sources, listed, nil
}

// parseSources reads `( <source> ( "[" "!"? <status> "=" <action> ... "]" )? )*`.
func parseSources(line string) ([]nssSource, error) {
	var sources []nssSource
	for {
		line = strings.TrimLeftFunc(line, isBlank)
		end := strings.IndexFunc(line, func(r rune) bool { return isBlank(r) || r == '[' })
		if end < 0 {
			end = len(line)
		}
		if end == 0 {
			return sources, nil // the end, or a "[" with no source: glibc stops there
		}
		s := nssSource{module: line[:end], text: line[:end]}
		s.stop[nssSuccess] = true
		line = strings.TrimLeftFunc(line[end:], isBlank)
		if strings.HasPrefix(line, "[") {
			inner, after, ok := strings.Cut(line[1:], "]")
			if !ok {
				return nil, fmt.Errorf("%q after %q has no closing \"]\"", line, s.module)
			}
			if err := s.parseActions(inner); err != nil {
				return nil, fmt.Errorf("%s [%s]: %w", s.module, inner, err)
			}
			s.text += " [" + strings.TrimSpace(inner) + "]"
			line = after
		}
		sources = append(sources, s)
	}
}

// parseActions reads the STATUS=action items between "[" and "]" into
// s.stop; "!STATUS=action" sets every status but STATUS.
func (s *nssSource) parseActions(text string) error {
	word := func() string {
		text = strings.TrimLeftFunc(text, isBlank)
		end := strings.IndexFunc(text, func(r rune) bool { return isBlank(r) || r == '=' })
		if end < 0 {
			end = len(text)
		}
		w := text[:end]
		text = strings.TrimLeftFunc(text[end:], isBlank)
		return w
	}
	for n := 0; n == 0 || text != ""; n++ {
		text = strings.TrimLeftFunc(text, isBlank)
		not := strings.HasPrefix(text, "!")
		text = strings.TrimPrefix(text, "!")
		name := word()
		status, ok := statusNamed(name)
		if !ok {
			return fmt.Errorf("status %q is not SUCCESS, NOTFOUND, UNAVAIL or TRYAGAIN", name)
		}
		if !strings.HasPrefix(text, "=") {
			return fmt.Errorf("status %s has no \"=action\"", name)
		}
		text = text[1:]
		action := word()
		var stop bool
		switch strings.ToLower(action) {
		case "return":
			stop = true
		case "continue", "merge":
		default:
			return fmt.Errorf("action %q is not return, continue or merge", action)
		}
		if !not {
			s.stop[status] = stop
			continue
		}
		for st := range s.stop {
			if nssStatus(st) != status {
				s.stop[st] = stop
			}
		}
	}
	return nil
}

// statusNamed returns the status spelled name, in any case.
func statusNamed(name string) (nssStatus, bool) {
	switch strings.ToUpper(name) {
	case "SUCCESS":
		return nssSuccess, true
	case "NOTFOUND":
		return nssNotFound, true
	case "UNAVAIL":
		return nssUnavail, true
	case "TRYAGAIN":
		return nssTryAgain, true
	}
	return 0, false
}

// isBlank is C's isspace in the C locale.
func isBlank(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\v' || r == '\f' || r == '\r'
}

// joinList joins items as "a", "a or b", "a, b or c" (conj "or").
func joinList(items []string, conj string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " " + conj + " " + items[len(items)-1]
}

// quoteList is joinList of the items quoted.
func quoteList(items []string, conj string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return joinList(q, conj)
}

// parseID reads a decimal uid or gid. 4294967295 is refused: chown takes
// it as -1, "leave as it is".
func parseID(s string) (int, bool) {
	id, err := strconv.ParseUint(s, 10, 32)
	if err != nil || id == math.MaxUint32 {
		return 0, false
	}
	return int(id), true
}

// findID returns the id of name in the content of a passwd or group file,
// both of which keep it in the third field ("name:x:id:..."). As getpwnam
// does (nss_files' internal_getent), leading blanks are skipped and the
// first valid entry wins; blank, comment, NIS ("+", "-") and malformed
// lines are skipped. An entry whose id is 4294967295 is an error: glibc
// returns it, but chown takes it as -1, "leave as it is".
func findID(data []byte, name string) (int, bool, error) {
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimLeftFunc(line, isBlank)
		if strings.HasPrefix(line, "#") || strings.HasPrefix(line, "+") || strings.HasPrefix(line, "-") {
			continue
		}
		fields := strings.Split(line, ":")
		if len(fields) < 3 || fields[0] != name {
			continue
		}
		if fields[2] == strconv.FormatUint(math.MaxUint32, 10) {
			return 0, false, fmt.Errorf("its id is %s, which chown takes as -1, \"leave as it is\" (give it another id)", fields[2])
		}
		if id, ok := parseID(fields[2]); ok {
			return id, true, nil
		}
	}
	return 0, false, nil
}
