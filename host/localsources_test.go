package host_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/etcdv2"
	"github.com/kplay-dev/kplay/host/tlstest"
)

// On a fleet host, the TLS files the controller named are read from
// their shipped copies: the etcd and HTTP clients are made from them, and
// from nothing on this machine at those paths.
func TestTLSFilesFromLocalSources(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	shipped := t.TempDir()
	const ctlDir = "/nonexistent-controller/pb" // the controller's working directory
	data, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{ctlDir + "/tls/ca.pem", "/etc/ctl-ca.pem"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(shipped, name)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shipped, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	real, err := host.OpenReal(t.TempDir(), false, host.WithEtcd(etcdv2.New))
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close()
	// Without the shipped files, the names lead nowhere.
	if _, err := real.Etcd(host.EtcdConfig{Endpoints: []string{"https://127.0.0.1:1"}, TLS: host.TLSFiles{CAFile: "tls/ca.pem"}}); err == nil {
		t.Fatal("tls/ca.pem was read here, where it does not exist")
	}
	l, err := host.OpenLocalSources(shipped, ctlDir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	real, err = host.OpenReal(t.TempDir(), false, host.WithEtcd(etcdv2.New), host.WithLocalSources(l))
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close()
	for _, name := range []string{"tls/ca.pem", "/etc/ctl-ca.pem"} {
		if _, err := real.Etcd(host.EtcdConfig{Endpoints: []string{"https://127.0.0.1:1"}, TLS: host.TLSFiles{CAFile: name}}); err != nil {
			t.Errorf("etcd with ca %s: %v", name, err)
		}
		if _, err := real.HTTP().WithTLS(host.TLSFiles{CAFile: name}); err != nil {
			t.Errorf("HTTP with ca %s: %v", name, err)
		}
	}
}
