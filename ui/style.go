package ui

import (
	"strings"

	"github.com/charmbracelet/lipgloss"

	"github.com/kplay-dev/kplay/engine"
)

// styles holds the lipgloss styles of a terminal; the zero value prints
// plain text.
type styles struct {
	on     bool
	faint  lipgloss.Style
	bold   lipgloss.Style
	action map[engine.Action]lipgloss.Style
	add    lipgloss.Style
	del    lipgloss.Style
	hunk   lipgloss.Style
}

func newStyles(r *lipgloss.Renderer) styles {
	return styles{
		on:    true,
		faint: r.NewStyle().Faint(true),
		bold:  r.NewStyle().Bold(true),
		action: map[engine.Action]lipgloss.Style{
			engine.Create: r.NewStyle().Foreground(lipgloss.Color("2")).Bold(true),
			engine.Update: r.NewStyle().Foreground(lipgloss.Color("3")).Bold(true),
			engine.Delete: r.NewStyle().Foreground(lipgloss.Color("1")).Bold(true),
			engine.Run:    r.NewStyle().Foreground(lipgloss.Color("6")).Bold(true),
		},
		add:  r.NewStyle().Foreground(lipgloss.Color("2")),
		del:  r.NewStyle().Foreground(lipgloss.Color("1")),
		hunk: r.NewStyle().Foreground(lipgloss.Color("6")),
	}
}

func (s styles) render(st lipgloss.Style, text string) string {
	if !s.on {
		return text
	}
	return st.Render(text)
}

// styleDiff colors the lines of a unified diff.
func (p *Printer) styleDiff(d string) string {
	if !p.styles.on {
		return d
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(d, "\n") {
		text := strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(text, "+++"), strings.HasPrefix(text, "---"):
			text = p.styles.render(p.styles.bold, text)
		case strings.HasPrefix(text, "+"):
			text = p.styles.render(p.styles.add, text)
		case strings.HasPrefix(text, "-"):
			text = p.styles.render(p.styles.del, text)
		case strings.HasPrefix(text, "@@"):
			text = p.styles.render(p.styles.hunk, text)
		}
		b.WriteString(text)
		if strings.HasSuffix(line, "\n") {
			b.WriteString("\n")
		}
	}
	return b.String()
}
