package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// starPaths returns the .star files that args name, each once: a file as
// it is (whatever its name), a directory's .star files at any depth, in
// lexical order, leaving out directories whose names start with "." or
// "_" and those named testdata, as the go tool does. No args is ".".
func starPaths(args []string) ([]string, error) {
	if len(args) == 0 {
		args = []string{"."}
	}
	var files []string
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[filepath.Clean(p)] {
			seen[filepath.Clean(p)] = true
			files = append(files, p)
		}
	}
	for _, arg := range args {
		fi, err := os.Lstat(arg)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			add(arg)
			continue
		}
		err = filepath.WalkDir(arg, func(p string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case d.IsDir() && p != arg && (strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_") || d.Name() == "testdata"):
				return filepath.SkipDir
			case !d.IsDir() && d.Type().IsRegular() && strings.HasSuffix(d.Name(), ".star"):
				add(p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return files, nil
}

// plural is "1 file is" or "2 files are", with one and many the words
// after the number.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
