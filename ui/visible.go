package ui

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Visible returns s as one line a terminal cannot be made to misread:
// every character that could move the cursor, erase, set a title, change
// the terminal's state or make the line read in another order is written
// as an escape instead. ASCII controls and DEL print as Go escapes (`\n`,
// `\r`, `\t`, `\a`, `\x1b`, `\x7f`), C1 controls, bidi overrides and isolates,
// zero-width and other invisible format characters as `\u009b`, `\u202e`,
// `\U000e0041`, and each byte that is not UTF-8 as `\xff`. Everything else,
// backslashes included, is kept, so a string with nothing to escape comes
// back unchanged and without a copy. The escaping is for people, not
// programs: a literal `\x1b` reads the same as an escaped ESC byte (JSON
// output is exact).
func Visible(s string) string { return visible(s, "") }

// VisibleText is Visible for text of several lines, such as a diff or a
// builtin's reference: it keeps "\n" and "\t" and escapes the rest. A tab
// only moves the cursor forward over blank cells, so once every other
// control is escaped it cannot hide or overwrite anything.
func VisibleText(s string) string { return visible(s, "\n\t") }

// VisibleMessage is VisibleText for a message that starts a line of its own
// on stderr and may span lines, such as a playbook's print() or an error
// of the command line (cobra's "Did you mean this?"): a line after the
// first that starts with neither a space nor a tab is indented by two
// spaces, so that text inside a message (a server's answer, a path with a
// newline in it, a string from the playbook) cannot start a line that
// reads like one of kplay's own, such as a step or another error.
func VisibleMessage(s string) string {
	s = VisibleText(s)
	if !strings.Contains(s, "\n") {
		return s
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines[1:] {
		if l != "" && l[0] != ' ' && l[0] != '\t' {
			lines[i+1] = "  " + l
		}
	}
	return strings.Join(lines, "\n")
}

// visible escapes s as Visible does, except for the ASCII controls in keep.
func visible(s, keep string) string {
	i := firstHidden(s, keep)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if isPlainASCII(c) || strings.IndexByte(keep, c) >= 0 {
				b.WriteByte(c)
			} else {
				writeEscapedByte(&b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			writeEscapedByte(&b, c)
		case isHidden(r):
			writeEscapedRune(&b, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// firstHidden returns the index of the first byte of s that visible
// escapes, or -1. It is the fast path: most strings are printable ASCII.
func firstHidden(s, keep string) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if !isPlainASCII(c) && strings.IndexByte(keep, c) < 0 {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || isHidden(r) {
			return i
		}
		i += n
	}
	return -1
}

func isPlainASCII(c byte) bool { return c >= 0x20 && c < 0x7f }

// isHidden reports whether a non-ASCII rune is a control or changes how a
// line reads without showing itself: C1 controls (U+009B is a CSI of its
// own on some terminals), format characters (bidi embeddings, overrides
// and isolates, marks, zero-width spaces and joiners, the BOM, tag
// characters), the line and paragraph separators, variation selectors and
// the other default-ignorable code points (such as the Hangul fillers).
func isHidden(r rune) bool {
	if r < 0xa0 {
		return r >= 0x80
	}
	return unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp,
		unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)
}

// writeEscapedByte writes c as Go quotes it: \n, \x1b, \xff.
func writeEscapedByte(b *strings.Builder, c byte) {
	q := strconv.Quote(string([]byte{c}))
	b.WriteString(q[1 : len(q)-1])
}

// writeEscapedRune writes r as Go quotes it in ASCII: \u202e, \U000e0041.
func writeEscapedRune(b *strings.Builder, r rune) {
	q := strconv.QuoteToASCII(string(r))
	b.WriteString(q[1 : len(q)-1])
}
