//go:build kplay_demo

// The demo's build of kplay (.ci/demo: go build -tags kplay_demo) leaves
// out what the demo does not use and costs the most to compile, so that a
// fresh machine with empty Go caches shows the demo within a minute: the
// Kubernetes API client (client-go; the demo skips the API steps) and fmt
// and lint (buildtools). Everything else is the same code.

package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/kplay-dev/kplay/host"
)

// fullBuild is what to do to get what the demo's build leaves out.
const fullBuild = "this kplay is the demo's build (-tags kplay_demo); CGO_ENABLED=0 go install ./cmd/kplay builds the full one"

// kubeClient is nil: a kube_create step fails with Real.Kube's "this build
// of kplay cannot talk to API servers".
var kubeClient host.KubeFactory

func newFmtCmd(_, _ io.Writer) *cobra.Command { return notInDemo("fmt", "Format playbooks") }

func newLintCmd(_ *options, _, _ io.Writer) *cobra.Command {
	return notInDemo("lint", "Report likely mistakes in playbooks")
}

// notInDemo is a command the demo's build leaves out: it says so and
// fails.
func notInDemo(name, short string) *cobra.Command {
	return &cobra.Command{
		Use:                name,
		Short:              short + " (not in the demo's build)",
		DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error {
			return fmt.Errorf("%s: %s", name, fullBuild)
		},
	}
}
