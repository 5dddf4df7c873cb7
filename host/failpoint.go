package host

// failpoint is called at each point of a Commit where a crash leaves the
// root in a different state: after each temp file is staged, after the
// sync before the renames, after each rename, after the last sync. It is
// nil in kplay as built; the crash test builds kplay with the tag
// kplay_failpoints (failpoint_on.go), which sets it so that a run kills
// itself at a chosen point (playbooks/crash_test.go).
var failpoint func(where string)

// reach calls failpoint, if set, with what and at ("staged /etc/x").
func reach(what, at string) {
	if failpoint != nil {
		failpoint(what + " " + at)
	}
}
