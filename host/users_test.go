package host

import (
	"fmt"
	"path/filepath"
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
core:x:500:500:CoreOS Admin:/home/core:/bin/bash
core:x:501:501:second entry:/:/bin/false
etcd:x:232:232:etcd user:/var/lib/etcd:/sbin/nologin
nolf:x:4000:4000::/:/bin/false`
	const group = "wheel:x:10:root,core\nsystemd-journal:x:190:core\n\n"
	tests := map[string]struct {
		data   string
		name   string
		want   int
		wantOK bool
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
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, ok := findID([]byte(tc.data), tc.name)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("got %d, %v; want %d, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestParseID(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in     string
		want   int
		wantOK bool
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
