package main

import (
	"context"
	"io"
	"os"
	"testing"

	"github.com/kplay-dev/kplay/host/etcdtest"
)

// BenchmarkCheckMaster measures `kplay check playbooks/master.star` in
// process, as the command runs it but without process start-up: flags,
// evaluation, the diff of every step against a fresh CoreOS-like root,
// the etcd read and the text output. bench/run.sh times the whole command.
func BenchmarkCheckMaster(b *testing.B) {
	etcd := etcdtest.Start(b)
	root := b.TempDir()
	if err := os.CopyFS(root, os.DirFS("../../testdata/roots/coreos")); err != nil {
		b.Fatal(err)
	}
	args := []string{"check", "../../playbooks/master.star", "--root", root, "--skip-tags", "api",
		"--var", "ADVERTISE_IP=10.0.0.10", "--var", "ETCD_ENDPOINTS=" + etcd.URL,
		"--var", "TLS_DIR=../../playbooks/examples/tls"}
	for b.Loop() {
		if code := run(context.Background(), args, io.Discard, io.Discard); code != exitChanges {
			b.Fatalf("check exited %d, want %d (changes found)", code, exitChanges)
		}
	}
}
