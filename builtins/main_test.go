package builtins

import (
	"os"
	"testing"

	"github.com/kplay-dev/kplay/host/etcdtest"
)

// sharedEtcd is the real etcd of this package's tests, started on first
// use and stopped by TestMain. Tests keep apart by using their own keys.
var sharedEtcd etcdtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	sharedEtcd.Stop()
	os.Exit(code)
}

// etcdURL returns the client URL of the shared etcd, starting it on first
// use; it skips the test when etcd is not installed.
func etcdURL(t *testing.T) string { return sharedEtcd.URL(t) }
