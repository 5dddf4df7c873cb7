package builtins

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/kplay-dev/kplay/host/etcdtest"
)

// sharedEtcd is the real etcd of this package's tests, started on first
// use and stopped by TestMain. Tests keep apart by using their own keys.
var sharedEtcd struct {
	once sync.Once
	dir  string
	s    *etcdtest.Server
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedEtcd.s != nil {
		sharedEtcd.s.Stop()
	}
	if sharedEtcd.dir != "" {
		os.RemoveAll(sharedEtcd.dir)
	}
	os.Exit(code)
}

// etcdURL returns the client URL of the shared etcd, starting it on first
// use; it skips the test when etcd is not installed.
func etcdURL(t *testing.T) string {
	t.Helper()
	if etcdtest.Binary() == "" {
		t.Skip("etcd is not installed (apt-get install etcd-server)")
	}
	sharedEtcd.once.Do(func() {
		sharedEtcd.dir, sharedEtcd.err = os.MkdirTemp("", "kplay-builtins-etcd-")
		if sharedEtcd.err == nil {
			sharedEtcd.s, sharedEtcd.err = etcdtest.StartShared(sharedEtcd.dir)
		}
		if sharedEtcd.err != nil {
			fmt.Fprintln(os.Stderr, sharedEtcd.err)
		}
	})
	if sharedEtcd.err != nil {
		t.Fatal("no etcd: ", sharedEtcd.err)
	}
	return sharedEtcd.s.URL
}
