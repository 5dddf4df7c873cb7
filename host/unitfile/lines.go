package unitfile

import (
	"fmt"
	"iter"
	"strings"
)

// LineMax is systemd's LONG_LINE_MAX: it refuses a unit file with a
// line of this many bytes or more, or a continued line longer than this.
const LineMax = 1 << 20

// Line is one logical line of a unit file as systemd reads it: the
// physical lines First to Last (counted from 1) joined.
type Line struct {
	First, Last int
	Text        string
}

// LogicalLines yields the logical lines of a unit file or drop-in as
// systemd 252's config_parse reads them: a line ends at \n, \r, a pair of
// them in either order, or NUL; a line whose first non-blank character
// is # or ; is a comment, also inside a continuation, which it neither
// ends nor continues; a line ending in an odd number of backslashes
// continues onto the next, joined with a space in place of the
// backslash; a byte-order mark is dropped the first time it starts a
// line. A line too long for systemd ends the sequence with an error that
// names it. Both the builtins' check of unit text and the [Install]
// parsing of the offline systemd read through it, so that they agree.
//
// go-systemd's parser (unit.DeserializeOptions) is not used: it refuses
// lines over 2048 bytes and a comment inside a continuation, which
// systemd reads.
func LogicalLines(text string) iter.Seq2[Line, error] {
	return func(yield func(Line, error) bool) {
		var joined strings.Builder // the continued line so far
		continued, first, last, bom := false, 0, 0, false
		for n, line := range physicalUnitLines(text) {
			last = n
			if len(line) >= LineMax {
				yield(Line{First: n, Last: n}, fmt.Errorf("line %d is %d bytes, longer than systemd reads (at most %d; keep long data in a file the unit names, such as with EnvironmentFile=)", n, len(line), LineMax-1))
				return
			}
			if t := strings.TrimLeft(line, " \t\n\r"); t != "" && (t[0] == '#' || t[0] == ';') {
				continue
			}
			if !bom {
				if rest, ok := strings.CutPrefix(line, "\uFEFF"); ok {
					line, bom = rest, true
				}
			}
			if continued {
				if joined.Len()+len(line) > LineMax {
					yield(Line{First: first, Last: n}, fmt.Errorf("lines %d-%d are longer than systemd reads in a continued line (at most %d bytes; keep long data in a file the unit names, such as with EnvironmentFile=)", first, n, LineMax))
					return
				}
			} else {
				joined.Reset()
				first = n
			}
			continued = endsInBackslash(line)
			if continued {
				joined.WriteString(line[:len(line)-1])
				joined.WriteByte(' ')
				continue
			}
			joined.WriteString(line)
			if !yield(Line{First: first, Last: n, Text: joined.String()}, nil) {
				return
			}
		}
		if continued {
			yield(Line{First: first, Last: last, Text: joined.String()}, nil)
		}
	}
}

// physicalUnitLines yields the lines of text numbered from 1 as
// systemd's read_line splits them: at \n, \r, or a pair of them in
// either order, and at NUL.
func physicalUnitLines(text string) iter.Seq2[int, string] {
	return func(yield func(int, string) bool) {
		n := 0
		for len(text) > 0 {
			i := strings.IndexAny(text, "\n\r\x00")
			if i < 0 {
				yield(n+1, text)
				return
			}
			n++
			if !yield(n, text[:i]) {
				return
			}
			end := i + 1
			if text[i] != 0 && end < len(text) && (text[end] == '\n' || text[end] == '\r') && text[end] != text[i] {
				end++
				if end < len(text) && text[end] == 0 {
					end++
				}
			} else if text[i] != 0 && end < len(text) && text[end] == 0 {
				end++
			}
			text = text[end:]
		}
	}
}

// endsInBackslash reports whether line ends in an odd number of
// backslashes, which systemd takes as a continuation; an even number is
// escaped backslashes.
func endsInBackslash(line string) bool {
	k := len(line) - len(strings.TrimRight(line, `\`))
	return k%2 == 1
}
