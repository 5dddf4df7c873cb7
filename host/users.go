package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strconv"
	"strings"
)

// LookupUser returns the uid of the user name in the target root: name
// itself if it is a decimal number, else its entry in the root's
// /etc/passwd, read through h (so a dry host sees a passwd written by an
// earlier step). "root" is 0 even without a passwd entry. Any other name
// that is not there gives an error that says to use a numeric id.
func LookupUser(ctx context.Context, h Host, name string) (int, error) {
	return lookupID(ctx, h, name, "owner", "/etc/passwd", "user")
}

// LookupGroup returns the gid of the group name in the target root, as
// LookupUser does for users but from the root's /etc/group.
func LookupGroup(ctx context.Context, h Host, name string) (int, error) {
	return lookupID(ctx, h, name, "group", "/etc/group", "group")
}

// lookupID resolves name through file; kind names the value in messages
// ("owner", "group") and noun what to add ("user", "group").
func lookupID(ctx context.Context, h Host, name, kind, file, noun string) (int, error) {
	if name == "" {
		return 0, fmt.Errorf(`%s "" is empty (use a %s name or a numeric id)`, kind, noun)
	}
	if id, ok := parseID(name); ok {
		return id, nil
	}
	data, err := h.ReadFile(ctx, file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("%s %q: %w", kind, name, err)
	}
	if id, ok := findID(data, name); ok {
		return id, nil
	}
	if name == "root" {
		return 0, nil
	}
	return 0, fmt.Errorf("%s %q is not in %s of root %s (use a numeric id, or add the %s first)",
		kind, name, file, h.Root(), noun)
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
// does, the first valid entry wins; blank, comment, NIS ("+", "-") and
// malformed lines are skipped.
func findID(data []byte, name string) (int, bool) {
	for line := range strings.SplitSeq(string(data), "\n") {
		if strings.HasPrefix(line, "#") || strings.HasPrefix(line, "+") || strings.HasPrefix(line, "-") {
			continue
		}
		fields := strings.Split(line, ":")
		if len(fields) < 3 || fields[0] != name {
			continue
		}
		if id, ok := parseID(fields[2]); ok {
			return id, true
		}
	}
	return 0, false
}
