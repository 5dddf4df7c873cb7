package host

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestSplitUnitName(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		name                  string
		prefix, instance, typ string
		kind                  nameKind
		invalid               bool
	}{
		"plain":              {name: "kubelet.service", prefix: "kubelet", typ: "service", kind: namePlain},
		"template":           {name: "getty@.service", prefix: "getty", typ: "service", kind: nameTemplate},
		"instance":           {name: "getty@tty1.service", prefix: "getty", instance: "tty1", typ: "service", kind: nameInstance},
		"instance_with_dots": {name: "foo@a.b.timer", prefix: "foo", instance: "a.b", typ: "timer", kind: nameInstance},
		"instance_with_at":   {name: "foo@a@b.socket", prefix: "foo", instance: "a@b", typ: "socket", kind: nameInstance},
		"escaped":            {name: `dev-disk-by\x2dlabel.device`, prefix: `dev-disk-by\x2dlabel`, typ: "device", kind: namePlain},
		"no_suffix":          {name: "kubelet", invalid: true},
		"unknown_suffix":     {name: "kubelet.conf", invalid: true},
		"empty_prefix":       {name: ".service", invalid: true},
		"empty_template":     {name: "@.service", invalid: true},
		"slash":              {name: "a/b.service", invalid: true},
		"space":              {name: "a b.service", invalid: true},
		"too_long":           {name: strings.Repeat("a", 250) + ".service", invalid: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			prefix, instance, typ, kind, ok := splitUnitName(tc.name)
			if ok == tc.invalid {
				t.Fatalf("valid: got %v, want %v", ok, !tc.invalid)
			}
			if prefix != tc.prefix || instance != tc.instance || typ != tc.typ || kind != tc.kind {
				t.Errorf("got %q %q %q %v, want %q %q %q %v", prefix, instance, typ, kind, tc.prefix, tc.instance, tc.typ, tc.kind)
			}
		})
	}
}

func TestUnitNameHelpers(t *testing.T) {
	t.Parallel()
	if got, ok := unitTemplate("getty@tty1.service"); !ok || got != "getty@.service" {
		t.Errorf("unitTemplate: got %q, %v", got, ok)
	}
	if _, ok := unitTemplate("kubelet.service"); ok {
		t.Error("unitTemplate of a plain name: got ok")
	}
	if got, ok := replaceInstance("getty@.service", "tty2"); !ok || got != "getty@tty2.service" {
		t.Errorf("replaceInstance: got %q, %v", got, ok)
	}
	if !mayTemplate("service") || mayTemplate("mount") || !mayAlias("timer") || mayAlias("slice") {
		t.Error("mayTemplate or mayAlias disagrees with systemd")
	}
	for name, want := range map[string]bool{
		".hidden.conf": true, "x.conf~": true, "x.dpkg-old": true, "x.conf.bak": true,
		"x.conf": false, "kubelet.service": false, "lost+found": true,
	} {
		if got := hiddenOrBackup(name); got != want {
			t.Errorf("hiddenOrBackup(%q): got %v, want %v", name, got, want)
		}
	}
	for p, want := range map[string]bool{
		"/etc/systemd/system/foo.service":         true,
		"/usr/lib/systemd/system/foo.service":     true,
		"/etc/systemd/system/a.wants/foo.service": false,
		"/opt/foo.service":                        false,
	} {
		if got := inSearchPath(p); got != want {
			t.Errorf("inSearchPath(%q): got %v, want %v", p, got, want)
		}
	}
	if !underSearchPath("/etc/systemd/system/a.wants/foo.service") || underSearchPath("/etc/systemd/systemx/foo.service") {
		t.Error("underSearchPath compares strings, not path elements")
	}
}

func TestSplitWords(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in   string
		want []string
		bad  bool
	}{
		"one":             {in: "a.target", want: []string{"a.target"}},
		"several":         {in: "a.target  b.target\tc.target", want: []string{"a.target", "b.target", "c.target"}},
		"double_quotes":   {in: `"a b.target" c.target`, want: []string{"a b.target", "c.target"}},
		"single_quotes":   {in: `'a'.target`, want: []string{"a.target"}},
		"escape_retained": {in: `c\x2d.target`, want: []string{`c\x2d.target`}},
		"escaped_quote":   {in: `a\"b`, want: []string{`a\"b`}},
		"unbalanced":      {in: `"a.target`, bad: true},
		"empty_quotes":    {in: `""`, want: []string{""}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, ok := splitWords(tc.in)
			if ok == tc.bad || !slices.Equal(got, tc.want) {
				t.Errorf("got %q, %v; want %q, %v", got, ok, tc.want, !tc.bad)
			}
		})
	}
}

func TestParseInstall(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		name     string
		data     string
		start    installSection
		want     installSection
		wantAlso []string
		wantErr  string
	}{
		"all_keys": {
			name: "foo.service",
			data: "[Unit]\nWantedBy=ignored.target\n[Install]\nWantedBy=a.target b.target\nWantedBy=c.target\n" +
				"RequiredBy=d.target\nAlias=bar.service\nAlso=x.service y.socket\nUnknown=1\n",
			want: installSection{
				wantedBy: []string{"a.target", "b.target", "c.target"}, requiredBy: []string{"d.target"},
				aliases: []string{"bar.service"}, also: []string{"x.service", "y.socket"},
			},
			wantAlso: []string{"x.service", "y.socket"},
		},
		"drop_in_appends": {
			name:  "foo.service",
			data:  "[Install]\nWantedBy=b.target\n",
			start: installSection{wantedBy: []string{"a.target"}},
			want:  installSection{wantedBy: []string{"a.target", "b.target"}},
		},
		"empty_value_resets": {
			name:  "foo.service",
			data:  "[Install]\nWantedBy=\nWantedBy=c.target\n",
			start: installSection{wantedBy: []string{"a.target"}},
			want:  installSection{wantedBy: []string{"c.target"}},
		},
		"continuation_line": {
			name: "foo.service",
			data: "[Install]\nWantedBy=a.target \\\n  b.target\n",
			want: installSection{wantedBy: []string{"a.target", "b.target"}},
		},
		"unbalanced_quote_ignored": {
			name:  "foo.service",
			data:  "[Install]\nWantedBy=\"a.target\n",
			start: installSection{wantedBy: []string{"x.target"}},
			want:  installSection{wantedBy: []string{"x.target"}},
		},
		"default_instance_of_template": {
			name:     "foo@.service",
			data:     "[Install]\nDefaultInstance=bar\nAlso=%p-helper.service\n",
			want:     installSection{defaultInstance: "bar", also: []string{"foo-helper.service"}},
			wantAlso: []string{"foo-helper.service"},
		},
		"default_instance_ignored_for_instance": {
			name: "foo@x.service",
			data: "[Install]\nDefaultInstance=bar\n",
			want: installSection{},
		},
		"alias_not_allowed_for_mount": {
			name: "data.mount",
			data: "[Install]\nAlias=other.mount\nWantedBy=local-fs.target\n",
			want: installSection{wantedBy: []string{"local-fs.target"}},
		},
		"upheld_by_unknown_in_252": {
			name: "foo.service",
			data: "[Install]\nUpheldBy=multi-user.target\n",
			want: installSection{},
		},
		"bad_default_instance": {
			name:    "foo@.service",
			data:    "[Install]\nDefaultInstance=a/b\n",
			wantErr: "/x/foo@.service: DefaultInstance=a/b is not a valid instance name (fix the unit file)",
		},
		"bad_also": {
			name:    "foo.service",
			data:    "[Install]\nAlso=nope\n",
			wantErr: `/x/foo.service: Also=nope: "nope" is not a valid unit name (fix the unit file)`,
		},
		"comment_in_continuation": {
			// systemd.syntax(7): the comment line is skipped, the
			// continuation goes on; go-systemd refused this.
			name: "foo.service",
			data: "[Install]\nWantedBy=a.target \\\n# b.target\n  c.target\n",
			want: installSection{wantedBy: []string{"a.target", "c.target"}},
		},
		"garbage": {
			name:    "foo.service",
			data:    "[Install] x\n",
			wantErr: "parse /x/foo.service: line 1: invalid section header (systemd refuses the file)",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := tc.start
			also, err := parseInstall(&s, tc.name, "/x/"+tc.name, []byte(tc.data))
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Errorf("got %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.wantedBy, tc.want.wantedBy) || !slices.Equal(s.requiredBy, tc.want.requiredBy) ||
				!slices.Equal(s.aliases, tc.want.aliases) || !slices.Equal(s.also, tc.want.also) ||
				s.defaultInstance != tc.want.defaultInstance {
				t.Errorf("got %+v, want %+v", s, tc.want)
			}
			if !slices.Equal(also, tc.wantAlso) {
				t.Errorf("also: got %q, want %q", also, tc.wantAlso)
			}
		})
	}
}

func TestExpandSpecifiers(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in, name, defaultInstance string
		want                      string
		wantErr                   string
	}{
		"none":                {in: "multi-user.target", name: "foo.service", want: "multi-user.target"},
		"instance":            {in: "t-%i.target", name: "foo@x.service", want: "t-x.target"},
		"default_instance":    {in: "t-%i.target", name: "foo@.service", defaultInstance: "d", want: "t-d.target"},
		"prefix":              {in: "%p.target", name: "foo@x.service", want: "foo.target"},
		"name":                {in: "%n", name: "foo@.service", defaultInstance: "d", want: "foo@d.service"},
		"name_without_suffix": {in: "%N.target", name: "foo@x.service", want: "foo@x.target"},
		"last_component":      {in: "%j.target", name: "kube-api-server.service", want: "server.target"},
		"percent":             {in: "100%%.target", name: "foo.service", want: "100%.target"},
		"hostname":            {in: "%H.target", name: "foo.service", wantErr: "specifier not supported offline: %H in"},
		"lone_percent":        {in: "a%", name: "foo.service", wantErr: `"a%" ends in a lone %`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := expandSpecifiers(tc.in, tc.name, tc.defaultInstance)
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Errorf("got %q, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestAliasName(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		name, alias string
		want        string
		wantErr     string
		self        bool
	}{
		"plain":                {name: "foo.service", alias: "bar.service", want: "bar.service"},
		"self":                 {name: "foo.service", alias: "foo.service", self: true},
		"other_type":           {name: "foo.service", alias: "bar.socket", wantErr: "cannot alias foo.service as bar.socket: bar.socket and foo.service have different types"},
		"template":             {name: "foo@.service", alias: "bar@.service", want: "bar@.service"},
		"template_to_plain":    {name: "foo@.service", alias: "bar.service", wantErr: "cannot alias foo@.service as bar.service"},
		"instance_propagation": {name: "foo@x.service", alias: "bar@.service", want: "bar@x.service"},
		"instance_mismatch":    {name: "foo@x.service", alias: "bar@y.service", wantErr: "cannot alias foo@x.service as bar@y.service"},
		"not_a_unit":           {name: "foo.service", alias: "bar", wantErr: `cannot alias foo.service as bar: "bar" is not a valid unit name`},
		"wants_path":           {name: "foo.service", alias: "multi-user.target.wants/foo.service", want: "multi-user.target.wants/foo.service"},
		"wants_path_other":     {name: "foo.service", alias: "multi-user.target.wants/bar.service", wantErr: "does not name foo.service"},
		"wants_path_bad_dir":   {name: "foo.service", alias: "x/foo.service", wantErr: "is not a unit name or <unit>.wants/<name>"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := aliasName(tc.name, tc.alias)
			switch {
			case tc.self:
				if !errors.Is(err, errSelfAlias) {
					t.Errorf("got %q, %v; want errSelfAlias", got, err)
				}
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("got %q, %v; want error %q", got, err, tc.wantErr)
				}
			case err != nil || got != tc.want:
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestOfflineResolve(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	buildTree(t, dir, unitTree{
		"/lib":                                  "-> usr/lib",
		"/lib64":                                "-> /usr/lib",
		"/usr/lib/systemd/system/foo.service":   "x",
		"/usr/lib/systemd/system/alias.service": "-> foo.service",
		"/etc/systemd/system/abs.service":       "-> /lib/systemd/system/alias.service",
		"/etc/up":                               "-> ../../../../..",
		"/etc/loop":                             "-> loop",
	})
	o := NewOffline(openReal(t, dir))
	tests := map[string]struct {
		name     string
		keepLast bool
		gone     map[string]bool
		want     string
		wantErr  string
	}{
		"plain":                  {name: "/usr/lib/systemd/system/foo.service", want: "/usr/lib/systemd/system/foo.service"},
		"relative_dir_link":      {name: "/lib/systemd/system/foo.service", want: "/usr/lib/systemd/system/foo.service"},
		"absolute_dir_link":      {name: "/lib64/systemd/system/foo.service", want: "/usr/lib/systemd/system/foo.service"},
		"chain":                  {name: "/etc/systemd/system/abs.service", want: "/usr/lib/systemd/system/foo.service"},
		"keep_last":              {name: "/etc/systemd/system/abs.service", keepLast: true, want: "/etc/systemd/system/abs.service"},
		"keep_last_resolves_dir": {name: "/lib/systemd/system/alias.service", keepLast: true, want: "/usr/lib/systemd/system/alias.service"},
		"dot_dot_stays_in_root":  {name: "/etc/up/etc/systemd", want: "/etc/systemd"},
		"missing_rest_appended":  {name: "/lib/nope/a/b", want: "/usr/lib/nope/a/b"},
		"gone_reads_missing":     {name: "/etc/systemd/system/abs.service", gone: map[string]bool{"/etc/systemd/system/abs.service": true}, want: "/etc/systemd/system/abs.service"},
		"loop":                   {name: "/etc/loop", wantErr: "resolve /etc/loop: too many levels of symbolic links"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := o.resolve(t.Context(), tc.name, tc.keepLast, tc.gone)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Errorf("got %q, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestOfflineEquivalent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	buildTree(t, dir, unitTree{
		"/lib":                                "-> usr/lib",
		"/usr/lib/systemd/system/foo.service": "x",
		"/opt/foo.service":                    "x",
	})
	o := NewOffline(openReal(t, dir))
	const src = "/etc/systemd/system/multi-user.target.wants/foo.service"
	tests := map[string]struct {
		dest, want string
		same       bool
	}{
		"same_path":           {dest: "/usr/lib/systemd/system/foo.service", want: "/usr/lib/systemd/system/foo.service", same: true},
		"same_file":           {dest: "/lib/systemd/system/foo.service", want: "/usr/lib/systemd/system/foo.service", same: true},
		"relative":            {dest: "../../../../usr/lib/systemd/system/foo.service", want: "/usr/lib/systemd/system/foo.service", same: true},
		"same_name_in_search": {dest: "/etc/systemd/system/foo.service", want: "/usr/lib/systemd/system/foo.service", same: true},
		"outside_search_path": {dest: "/opt/foo.service", want: "/usr/lib/systemd/system/foo.service"},
		"other_name":          {dest: "/usr/lib/systemd/system/bar.service", want: "/usr/lib/systemd/system/foo.service"},
		"dev_null":            {dest: "/dev/null", want: "/dev/null", same: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := o.equivalent(t.Context(), src, tc.dest, tc.want)
			if err != nil || got != tc.same {
				t.Errorf("got %v, %v; want %v", got, err, tc.same)
			}
		})
	}
}
