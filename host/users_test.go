package host

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/kplay-dev/kplay/host/roottest"
)

func TestFindID(t *testing.T) {
	t.Parallel()
	const passwd = `root:x:0:0:root:/root:/bin/bash
# core:x:1:1:commented out
+nis::::::
-blocked:x:7:7::/:/bin/false
broken:x
badid:x:abc:1::/:/bin/false
badid:x:77:1::/:/bin/false
  	indented:x:232:232::/:/bin/false
maxid:x:4294967295:1::/:/bin/false
core:x:500:500:CoreOS Admin:/home/core:/bin/bash
core:x:501:501:second entry:/:/bin/false
etcd:x:232:232:etcd user:/var/lib/etcd:/sbin/nologin
nolf:x:4000:4000::/:/bin/false`
	const group = "wheel:x:10:root,core\nsystemd-journal:x:190:core\n\n"
	tests := map[string]struct {
		data    string
		name    string
		want    int
		wantOK  bool
		wantErr string
	}{
		"root":                {data: passwd, name: "root", want: 0, wantOK: true},
		"user":                {data: passwd, name: "etcd", want: 232, wantOK: true},
		"first_entry_wins":    {data: passwd, name: "core", want: 500, wantOK: true},
		"last_line_no_lf":     {data: passwd, name: "nolf", want: 4000, wantOK: true},
		"skips_bad_id":        {data: passwd, name: "badid", want: 77, wantOK: true},
		"absent":              {data: passwd, name: "nobody"},
		"prefix_is_not_match": {data: passwd, name: "cor"},
		"comment_skipped":     {data: passwd, name: "# core"},
		"nis_minus_skipped":   {data: passwd, name: "-blocked"},
		"too_few_fields":      {data: passwd, name: "broken"},
		"group":               {data: group, name: "systemd-journal", want: 190, wantOK: true},
		"member_is_not_group": {data: group, name: "core"},
		"empty_file":          {data: "", name: "root"},
		"leading_blanks":      {data: passwd, name: "indented", want: 232, wantOK: true},
		"max_id":              {data: passwd, name: "maxid", wantErr: "its id is 4294967295, which chown takes as -1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, ok, err := findID([]byte(tc.data), tc.name)
			if got != tc.want || ok != tc.wantOK || (err != nil) != (tc.wantErr != "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got %d, %v, %v; want %d, %v, %q", got, ok, err, tc.want, tc.wantOK, tc.wantErr)
			}
		})
	}
}

func TestParseID(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in      string
		want    int
		wantOK  bool
		wantErr string
	}{
		"zero":       {in: "0", want: 0, wantOK: true},
		"number":     {in: "1000", want: 1000, wantOK: true},
		"max":        {in: "4294967294", want: 4294967294, wantOK: true},
		"minus_one":  {in: "4294967295"},
		"too_big":    {in: "4294967296"},
		"negative":   {in: "-1"},
		"plus":       {in: "+5"},
		"name":       {in: "core"},
		"mixed":      {in: "12ab"},
		"empty":      {in: ""},
		"whitespace": {in: " 5"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, ok := parseID(tc.in)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("got %d, %v; want %d, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestLookupUserAndGroup(t *testing.T) {
	t.Parallel()
	withFiles := t.TempDir()
	roottest.WriteFile(t, filepath.Join(withFiles, "etc/passwd"), "root:x:0:0::/root:/bin/sh\ncore:x:500:501::/home/core:/bin/sh\n", 0o644)
	roottest.WriteFile(t, filepath.Join(withFiles, "etc/group"), "root:x:0:\ncore:x:501:\ndocker:x:233:core\n", 0o644)
	without := t.TempDir()

	tests := map[string]struct {
		root    string
		group   bool
		name    string
		want    int
		wantErr string // %s is the root
	}{
		"user_from_passwd":        {root: withFiles, name: "core", want: 500},
		"group_from_group":        {root: withFiles, group: true, name: "docker", want: 233},
		"user_root":               {root: withFiles, name: "root", want: 0},
		"numeric_user":            {root: withFiles, name: "1234", want: 1234},
		"numeric_group":           {root: withFiles, group: true, name: "42", want: 42},
		"numeric_without_files":   {root: without, name: "1000", want: 1000},
		"root_without_passwd":     {root: without, name: "root", want: 0},
		"root_group_without_file": {root: without, group: true, name: "root", want: 0},
		"unknown_user": {
			root: withFiles, name: "etcd",
			wantErr: `owner "etcd" is not in /etc/passwd of root %s (use a numeric id, or add the user first)`,
		},
		"unknown_group": {
			root: withFiles, group: true, name: "etcd",
			wantErr: `group "etcd" is not in /etc/group of root %s (use a numeric id, or add the group first)`,
		},
		"user_without_passwd": {
			root: without, name: "core",
			wantErr: `owner "core" is not in /etc/passwd of root %s (use a numeric id, or add the user first)`,
		},
		"not_quite_numeric": {
			root: withFiles, group: true, name: "2x",
			wantErr: `group "2x" is not in /etc/group of root %s (use a numeric id, or add the group first)`,
		},
		"empty_name": {
			root: withFiles, name: "",
			wantErr: `owner "" is empty (use a user name or a numeric id)`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := openReal(t, tc.root)
			lookup := LookupUser
			if tc.group {
				lookup = LookupGroup
			}
			got, err := lookup(t.Context(), h, tc.name)
			if tc.wantErr != "" {
				want := tc.wantErr
				if tc.name != "" {
					want = fmt.Sprintf(tc.wantErr, tc.root)
				}
				if err == nil || err.Error() != want {
					t.Errorf("got %d, %v; want error %q", got, err, want)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestLookupUserSeesDryWrites(t *testing.T) {
	t.Parallel()
	d := NewDry(openReal(t, t.TempDir()))
	ctx := t.Context()
	if _, err := LookupUser(ctx, d, "etcd"); err == nil {
		t.Fatal("etcd before it was added: got nil error")
	}
	if err := d.WriteFile(ctx, "/etc/passwd", []byte("etcd:x:232:232::/var/lib/etcd:/sbin/nologin\n"), 0o644, -1, -1); err != nil {
		t.Fatal(err)
	}
	if got, err := LookupUser(ctx, d, "etcd"); err != nil || got != 232 {
		t.Errorf("got %d, %v; want 232", got, err)
	}
}

func TestLookupReadError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	roottest.WriteFile(t, filepath.Join(dir, "etc"), "a file, not a directory\n", 0o644)
	_, err := LookupGroup(t.Context(), openReal(t, dir), "docker")
	if want := `group "docker": read /etc/group: not a directory`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

func TestNssSources(t *testing.T) {
	t.Parallel()
	stops := func(statuses ...nssStatus) (s [nssStatuses]bool) {
		for _, st := range statuses {
			s[st] = true
		}
		return s
	}
	plain := func(module string) nssSource {
		return nssSource{module: module, text: module, stop: stops(nssSuccess)}
	}
	tests := map[string]struct {
		conf       string
		want       []nssSource
		wantListed bool
		wantErr    string
	}{
		// coreos/baselayout baselayout/nsswitch.conf at 81d44f6, the last
		// Container Linux one.
		"coreos": {
			conf:       "# /etc/nsswitch.conf:\n\npasswd:      files usrfiles sss systemd\nshadow:      files usrfiles sss\ngroup:       files usrfiles sss systemd\n",
			want:       []nssSource{plain("files"), plain("usrfiles"), plain("sss"), plain("systemd")},
			wantListed: true,
		},
		"no_line":            {conf: "group: files\nhosts: files dns\n"},
		"empty_file":         {conf: ""},
		"prefix_is_not_db":   {conf: "passwd_compat: nis\npasswdx: files\n"},
		"commented_out":      {conf: "#passwd: altfiles\n  # passwd: altfiles\n"},
		"name_alone_skipped": {conf: "passwd\n"},
		"no_sources": {
			conf: "passwd:\n", wantListed: true,
		},
		"last_line_wins": {
			conf: "passwd: altfiles\npasswd: files\n", want: []nssSource{plain("files")}, wantListed: true,
		},
		"blanks_no_colon_crlf_comment": {
			conf:       "\t passwd\tfiles  compat # altfiles\r\n",
			want:       []nssSource{plain("files"), plain("compat")},
			wantListed: true,
		},
		"double_colon": {conf: "passwd:: files\n", want: []nssSource{plain("files")}, wantListed: true},
		"actions": {
			conf: "passwd: files [NOTFOUND=return] usrfiles[ unavail = RETURN  tryagain=continue ] sss [!SUCCESS=return] systemd [SUCCESS=merge]\n",
			want: []nssSource{
				{module: "files", text: "files [NOTFOUND=return]", stop: stops(nssSuccess, nssNotFound)},
				{module: "usrfiles", text: "usrfiles [unavail = RETURN  tryagain=continue]", stop: stops(nssSuccess, nssUnavail)},
				{module: "sss", text: "sss [!SUCCESS=return]", stop: stops(nssSuccess, nssNotFound, nssUnavail, nssTryAgain)},
				{module: "systemd", text: "systemd [SUCCESS=merge]"},
			},
			wantListed: true,
		},
		"not_continue": {
			conf:       "passwd: files [!NOTFOUND=continue]\n",
			want:       []nssSource{{module: "files", text: "files [!NOTFOUND=continue]"}},
			wantListed: true,
		},
		"bracket_without_source_ends_list": {
			conf: "passwd: files [NOTFOUND=return] [UNAVAIL=return] altfiles\n",
			want: []nssSource{{module: "files", text: "files [NOTFOUND=return]", stop: stops(nssSuccess, nssNotFound)}}, wantListed: true,
		},
		"bad_status": {
			conf:    "hosts: files\npasswd: files [NOTFOND=return] usrfiles\n",
			wantErr: `/etc/nsswitch.conf line 2: files [NOTFOND=return]: status "NOTFOND" is not SUCCESS, NOTFOUND, UNAVAIL or TRYAGAIN (glibc then resolves no passwd; fix the line)`,
		},
		"bad_action": {
			conf:    "passwd: files [NOTFOUND=stop]\n",
			wantErr: `/etc/nsswitch.conf line 1: files [NOTFOUND=stop]: action "stop" is not return, continue or merge (glibc then resolves no passwd; fix the line)`,
		},
		"no_equals": {
			conf:    "passwd: files [NOTFOUND]\n",
			wantErr: `/etc/nsswitch.conf line 1: files [NOTFOUND]: status NOTFOUND has no "=action" (glibc then resolves no passwd; fix the line)`,
		},
		"empty_brackets": {
			conf:    "passwd: files []\n",
			wantErr: `/etc/nsswitch.conf line 1: files []: status "" is not SUCCESS, NOTFOUND, UNAVAIL or TRYAGAIN (glibc then resolves no passwd; fix the line)`,
		},
		"unclosed": {
			conf:    "passwd: files [NOTFOUND=return usrfiles\n",
			wantErr: `/etc/nsswitch.conf line 1: "[NOTFOUND=return usrfiles" after "files" has no closing "]" (glibc then resolves no passwd; fix the line)`,
		},
		"bad_line_of_other_db_ignored": {
			conf: "hosts: files [BAD=x]\npasswd: files\n", want: []nssSource{plain("files")}, wantListed: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, listed, err := nssSources([]byte(tc.conf), "passwd")
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Errorf("got %v, want error %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if listed != tc.wantListed || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, listed %v; want %v, listed %v", got, listed, tc.want, tc.wantListed)
			}
		})
	}
}

// The fake CoreOS root resolves as a CoreOS machine does: root and core
// from /etc, etcd and the other system users and groups from
// /usr/share/baselayout through usrfiles (coreos/baselayout at 81d44f6).
func TestLookupCoreOSRoot(t *testing.T) {
	t.Parallel()
	h := openReal(t, "../testdata/roots/coreos")
	tests := map[string]struct {
		group   bool
		name    string
		want    int
		wantErr string // %s is the root
	}{
		"etcd_user":    {name: "etcd", want: 232},
		"etcd_group":   {group: true, name: "etcd", want: 232},
		"core_user":    {name: "core", want: 500},
		"docker_group": {group: true, name: "docker", want: 233},
		"journal":      {group: true, name: "systemd-journal", want: 248},
		"nobody":       {name: "nobody", want: 65534},
		"unknown_user": {
			name:    "kube",
			wantErr: `owner "kube" is not in /etc/passwd or /usr/share/baselayout/passwd of root %s (the sources of passwd in /etc/nsswitch.conf; kplay skips "sss" and "systemd"; use a numeric id, or add the user first)`,
		},
		"unknown_group": {
			group: true, name: "kube",
			wantErr: `group "kube" is not in /etc/group or /usr/share/baselayout/group of root %s (the sources of group in /etc/nsswitch.conf; kplay skips "sss" and "systemd"; use a numeric id, or add the group first)`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			checkLookup(t, h, tc.group, tc.name, tc.want, tc.wantErr)
		})
	}
}

func TestLookupThroughNsswitch(t *testing.T) {
	t.Parallel()
	// root makes a root with these files, in the order given (a value
	// starting with "->" is a symlink's target; "|" is a named pipe).
	root := func(files ...string) string {
		dir := t.TempDir()
		for i := 0; i < len(files); i += 2 {
			name, content := filepath.Join(dir, files[i]), files[i+1]
			switch {
			case strings.HasPrefix(content, "->"):
				roottest.Symlink(t, strings.TrimPrefix(content, "->"), name)
			case content == "|":
				if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := syscall.Mkfifo(name, 0o644); err != nil {
					t.Fatal(err)
				}
			default:
				roottest.WriteFile(t, name, content, 0o644)
			}
		}
		return dir
	}
	const (
		etcPasswd = "root:x:0:0::/root:/bin/sh\ncore:x:500:500::/home/core:/bin/sh\n"
		usrPasswd = "root:x:0:0::/root:/bin/sh\netcd:x:232:232::/dev/null:/sbin/nologin\ncore:x:999:999::/:/bin/sh\n"
		libPasswd = "etcd:x:1232:1232::/dev/null:/sbin/nologin\nflannel:x:240:240::/:/sbin/nologin\n"
	)
	tests := map[string]struct {
		root    string
		group   bool
		name    string
		want    int
		wantErr string // %s is the root
	}{
		"usrfiles": {
			root: root("etc/nsswitch.conf", "passwd: files usrfiles\n", "etc/passwd", etcPasswd, "usr/share/baselayout/passwd", usrPasswd),
			name: "etcd", want: 232,
		},
		"first_source_wins": {
			root: root("etc/nsswitch.conf", "passwd: files usrfiles\n", "etc/passwd", etcPasswd, "usr/share/baselayout/passwd", usrPasswd),
			name: "core", want: 500,
		},
		"order_as_listed": {
			root: root("etc/nsswitch.conf", "passwd: usrfiles files\n", "etc/passwd", etcPasswd, "usr/share/baselayout/passwd", usrPasswd),
			name: "core", want: 999,
		},
		"altfiles_reads_usr_lib": {
			root: root("etc/nsswitch.conf", "passwd: sss files altfiles systemd\n", "etc/passwd", etcPasswd, "usr/lib/passwd", libPasswd),
			name: "flannel", want: 240,
		},
		"compat_reads_etc": {
			root: root("etc/nsswitch.conf", "passwd: compat\n", "etc/passwd", "+::::::\n"+etcPasswd),
			name: "core", want: 500,
		},
		"symlinked_conf_is_followed": {
			root: root("usr/share/baselayout/nsswitch.conf", "passwd: files usrfiles\n", "etc/nsswitch.conf", "->../usr/share/baselayout/nsswitch.conf",
				"etc/passwd", etcPasswd, "usr/share/baselayout/passwd", usrPasswd),
			name: "etcd", want: 232,
		},
		"missing_file_is_unavail": {
			root: root("etc/nsswitch.conf", "passwd: files [NOTFOUND=return] usrfiles\n", "usr/share/baselayout/passwd", usrPasswd),
			name: "etcd", want: 232,
		},
		"notfound_return_stops": {
			root:    root("etc/nsswitch.conf", "passwd: files [NOTFOUND=return] usrfiles\n", "etc/passwd", etcPasswd, "usr/share/baselayout/passwd", usrPasswd),
			name:    "etcd",
			wantErr: `owner "etcd" is not in /etc/passwd of root %s (the sources of passwd in /etc/nsswitch.conf, which stop at "files [NOTFOUND=return]"; use a numeric id, or add the user first)`,
		},
		"three_files": {
			root:    root("etc/nsswitch.conf", "passwd: files usrfiles altfiles ldap\n", "etc/passwd", etcPasswd),
			name:    "kube",
			wantErr: `owner "kube" is not in /etc/passwd, /usr/share/baselayout/passwd or /usr/lib/passwd of root %s (the sources of passwd in /etc/nsswitch.conf; kplay skips "ldap"; use a numeric id, or add the user first)`,
		},
		"no_passwd_line_means_files": {
			root:    root("etc/nsswitch.conf", "group: files usrfiles\n", "usr/share/baselayout/passwd", usrPasswd),
			name:    "etcd",
			wantErr: `owner "etcd" is not in /etc/passwd of root %s (the default source of passwd: /etc/nsswitch.conf has no passwd line; use a numeric id, or add the user first)`,
		},
		"only_skipped_sources": {
			root:    root("etc/nsswitch.conf", "passwd: sss systemd\n", "etc/passwd", etcPasswd),
			name:    "core",
			wantErr: `owner "core": kplay reads none of the sources of passwd in /etc/nsswitch.conf, "sss" and "systemd" (use a numeric id)`,
		},
		"only_skipped_sources_root": {
			root: root("etc/nsswitch.conf", "passwd: sss\n"),
			name: "root", want: 0,
		},
		"empty_line": {
			root:    root("etc/nsswitch.conf", "passwd:\n", "etc/passwd", etcPasswd),
			name:    "core",
			wantErr: `owner "core": /etc/nsswitch.conf lists no source for passwd (use a numeric id)`,
		},
		"bad_action": {
			root: root("etc/nsswitch.conf", "group: files [NOTFOUND=retrun]\n"), group: true,
			name:    "etcd",
			wantErr: `group "etcd": /etc/nsswitch.conf line 1: files [NOTFOUND=retrun]: action "retrun" is not return, continue or merge (glibc then resolves no group; fix the line)`,
		},
		"conf_is_a_directory": {
			root: root("etc/nsswitch.conf/x", "", "etc/passwd", etcPasswd),
			name: "core", want: 500,
		},
		"conf_is_a_pipe": {
			root:    root("etc/nsswitch.conf", "|"),
			name:    "core",
			wantErr: `owner "core": read /etc/nsswitch.conf: a named pipe, not a regular file (kplay reads only regular files in the root; remove it)`,
		},
		"source_is_a_pipe": {
			root:    root("etc/nsswitch.conf", "passwd: files usrfiles\n", "usr/share/baselayout/passwd", "|"),
			name:    "core",
			wantErr: `owner "core": read /usr/share/baselayout/passwd: a named pipe, not a regular file (kplay reads only regular files in the root; remove it)`,
		},
		"escaping_symlink_refused": {
			root:    root("etc/nsswitch.conf", "passwd: usrfiles\n", "usr/share/baselayout", "->../../../../../../etc"),
			name:    "core",
			wantErr: `owner "core": read /usr/share/baselayout/passwd: path leaves the root %s (a symlink or ".." points outside it)`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			checkLookup(t, openReal(t, tc.root), tc.group, tc.name, tc.want, tc.wantErr)
		})
	}
}

// checkLookup looks name up as a user or a group and compares the result
// with want, or the error with wantErr (its %s is the root).
func checkLookup(t *testing.T, h Host, group bool, name string, want int, wantErr string) {
	t.Helper()
	lookup := LookupUser
	if group {
		lookup = LookupGroup
	}
	got, err := lookup(t.Context(), h, name)
	if wantErr == "" {
		if err != nil || got != want {
			t.Errorf("got %d, %v; want %d", got, err, want)
		}
		return
	}
	w := wantErr
	if strings.Contains(w, "%s") {
		w = fmt.Sprintf(w, h.Root())
	}
	switch {
	case err == nil:
		t.Errorf("got %d, nil; want error %q", got, w)
	case err.Error() != w:
		t.Errorf("got  %q\nwant %q", err, w)
	}
}

// readCounter counts the reads of each name that reach it.
type readCounter struct {
	Host
	mu    sync.Mutex
	reads map[string]int
}

func (c *readCounter) ReadFile(ctx context.Context, name string) ([]byte, error) {
	c.mu.Lock()
	c.reads[name]++
	c.mu.Unlock()
	return c.Host.ReadFile(ctx, name)
}

// A check looks up an owner and a group for every step: the dry host
// reads nsswitch.conf and each passwd and group file of the base once.
func TestLookupDryReadsEachFileOnce(t *testing.T) {
	t.Parallel()
	base := &readCounter{Host: openReal(t, "../testdata/roots/coreos"), reads: map[string]int{}}
	d := NewDry(base)
	for range 5 {
		for _, user := range []string{"etcd", "core", "root", "kube"} {
			_, _ = LookupUser(t.Context(), d, user)
			_, _ = LookupGroup(t.Context(), d, user)
		}
	}
	want := map[string]int{
		"/etc/nsswitch.conf": 1, "/etc/passwd": 1, "/etc/group": 1,
		"/usr/share/baselayout/passwd": 1, "/usr/share/baselayout/group": 1,
	}
	if fmt.Sprint(base.reads) != fmt.Sprint(want) {
		t.Errorf("reads of the base: got %v, want %v", base.reads, want)
	}
}
