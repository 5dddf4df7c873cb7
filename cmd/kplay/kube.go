//go:build !kplay_demo

package main

import (
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/kube"
)

// kubeClient makes the Kubernetes API clients of kube_create steps. The
// demo's build (-tags kplay_demo, see cmd/kplay/demo.go) has none.
var kubeClient host.KubeFactory = kube.New
