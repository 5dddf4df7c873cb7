package unitfile

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
		kind                  Kind
		invalid               bool
	}{
		"plain":              {name: "kubelet.service", prefix: "kubelet", typ: "service", kind: Plain},
		"template":           {name: "getty@.service", prefix: "getty", typ: "service", kind: Template},
		"instance":           {name: "getty@tty1.service", prefix: "getty", instance: "tty1", typ: "service", kind: Instance},
		"instance_with_dots": {name: "foo@a.b.timer", prefix: "foo", instance: "a.b", typ: "timer", kind: Instance},
		"instance_with_at":   {name: "foo@a@b.socket", prefix: "foo", instance: "a@b", typ: "socket", kind: Instance},
		"escaped":            {name: `dev-disk-by\x2dlabel.device`, prefix: `dev-disk-by\x2dlabel`, typ: "device", kind: Plain},
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
			prefix, instance, typ, kind, ok := SplitName(tc.name)
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
	if got, ok := TemplateOf("getty@tty1.service"); !ok || got != "getty@.service" {
		t.Errorf("TemplateOf: got %q, %v", got, ok)
	}
	if _, ok := TemplateOf("kubelet.service"); ok {
		t.Error("TemplateOf of a plain name: got ok")
	}
	if got, ok := ReplaceInstance("getty@.service", "tty2"); !ok || got != "getty@tty2.service" {
		t.Errorf("ReplaceInstance: got %q, %v", got, ok)
	}
	if !MayTemplate("service") || MayTemplate("mount") || !MayAlias("timer") || MayAlias("slice") {
		t.Error("MayTemplate or MayAlias disagrees with systemd")
	}
	for name, want := range map[string]bool{
		".hidden.conf": true, "x.conf~": true, "x.dpkg-old": true, "x.conf.bak": true,
		"x.conf": false, "kubelet.service": false, "lost+found": true,
	} {
		if got := HiddenOrBackup(name); got != want {
			t.Errorf("HiddenOrBackup(%q): got %v, want %v", name, got, want)
		}
	}
	for p, want := range map[string]bool{
		"/etc/systemd/system/foo.service":         true,
		"/usr/lib/systemd/system/foo.service":     true,
		"/etc/systemd/system/a.wants/foo.service": false,
		"/opt/foo.service":                        false,
	} {
		if got := InSearchPath(p); got != want {
			t.Errorf("InSearchPath(%q): got %v, want %v", p, got, want)
		}
	}
	if !UnderSearchPath("/etc/systemd/system/a.wants/foo.service") || UnderSearchPath("/etc/systemd/systemx/foo.service") {
		t.Error("UnderSearchPath compares strings, not path elements")
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
		start    Install
		want     Install
		wantAlso []string
		wantErr  string
	}{
		"all_keys": {
			name: "foo.service",
			data: "[Unit]\nWantedBy=ignored.target\n[Install]\nWantedBy=a.target b.target\nWantedBy=c.target\n" +
				"RequiredBy=d.target\nAlias=bar.service\nAlso=x.service y.socket\nUnknown=1\n",
			want: Install{
				WantedBy: []string{"a.target", "b.target", "c.target"}, RequiredBy: []string{"d.target"},
				Aliases: []string{"bar.service"}, Also: []string{"x.service", "y.socket"},
			},
			wantAlso: []string{"x.service", "y.socket"},
		},
		"drop_in_appends": {
			name:  "foo.service",
			data:  "[Install]\nWantedBy=b.target\n",
			start: Install{WantedBy: []string{"a.target"}},
			want:  Install{WantedBy: []string{"a.target", "b.target"}},
		},
		"empty_value_resets": {
			name:  "foo.service",
			data:  "[Install]\nWantedBy=\nWantedBy=c.target\n",
			start: Install{WantedBy: []string{"a.target"}},
			want:  Install{WantedBy: []string{"c.target"}},
		},
		"continuation_line": {
			name: "foo.service",
			data: "[Install]\nWantedBy=a.target \\\n  b.target\n",
			want: Install{WantedBy: []string{"a.target", "b.target"}},
		},
		"unbalanced_quote_ignored": {
			name:  "foo.service",
			data:  "[Install]\nWantedBy=\"a.target\n",
			start: Install{WantedBy: []string{"x.target"}},
			want:  Install{WantedBy: []string{"x.target"}},
		},
		"default_instance_of_template": {
			name:     "foo@.service",
			data:     "[Install]\nDefaultInstance=bar\nAlso=%p-helper.service\n",
			want:     Install{DefaultInstance: "bar", Also: []string{"foo-helper.service"}},
			wantAlso: []string{"foo-helper.service"},
		},
		"default_instance_ignored_for_instance": {
			name: "foo@x.service",
			data: "[Install]\nDefaultInstance=bar\n",
			want: Install{},
		},
		"alias_not_allowed_for_mount": {
			name: "data.mount",
			data: "[Install]\nAlias=other.mount\nWantedBy=local-fs.target\n",
			want: Install{WantedBy: []string{"local-fs.target"}},
		},
		"upheld_by_unknown_in_252": {
			name: "foo.service",
			data: "[Install]\nUpheldBy=multi-user.target\n",
			want: Install{},
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
			want: Install{WantedBy: []string{"a.target", "c.target"}},
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
			also, err := s.Parse(tc.name, "/x/"+tc.name, []byte(tc.data))
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Errorf("got %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.WantedBy, tc.want.WantedBy) || !slices.Equal(s.RequiredBy, tc.want.RequiredBy) ||
				!slices.Equal(s.Aliases, tc.want.Aliases) || !slices.Equal(s.Also, tc.want.Also) ||
				s.DefaultInstance != tc.want.DefaultInstance {
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
			got, err := ExpandSpecifiers(tc.in, tc.name, tc.defaultInstance)
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
			got, err := AliasName(tc.name, tc.alias)
			switch {
			case tc.self:
				if !errors.Is(err, ErrSelfAlias) {
					t.Errorf("got %q, %v; want ErrSelfAlias", got, err)
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
