package host

import "testing"

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
