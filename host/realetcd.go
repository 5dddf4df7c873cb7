package host

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// EtcdFactory makes a client of the etcd cluster cfg names. The real one
// is host/etcdv2.New, which the CLI gives OpenReal with WithEtcd; host
// itself does not depend on an etcd client library.
type EtcdFactory func(cfg EtcdConfig) (Etcd, error)

// Etcd returns what the factory given to WithEtcd makes of cfg, its error
// as it is. A client is made once per configuration (endpoints in their
// order, TLS files) and kept, so that the steps of a run share its
// connections; Close closes them. A fleet host's cfg.TLS names the copies
// the controller shipped (WithLocalSources). Without a factory it returns
// an error: this Real has no etcd client.
func (r *Real) Etcd(cfg EtcdConfig) (Etcd, error) {
	if r.etcd == nil {
		return nil, fmt.Errorf("etcd %s: no etcd client (this build of kplay cannot talk to etcd)", RedactURLs(strings.Join(cfg.Endpoints, ",")))
	}
	r.etcdMu.Lock()
	defer r.etcdMu.Unlock()
	cfg.TLS = r.local.TLS(cfg.TLS)
	return keepOne(&r.etcdClients, etcdConfigKey(cfg), func() (Etcd, error) { return r.etcd(cfg) })
}

// etcdConfigKey tells configurations apart: endpoints in their order (the
// client tries them in turn) and TLS files.
func etcdConfigKey(cfg EtcdConfig) string {
	return strings.Join(append(slices.Clone(cfg.Endpoints), cfg.TLS.CAFile, cfg.TLS.CertFile, cfg.TLS.KeyFile), "\x00")
}

// closeEtcdClients closes the kept clients that can be closed (their idle
// connections).
func (r *Real) closeEtcdClients() {
	r.etcdMu.Lock()
	defer r.etcdMu.Unlock()
	for _, c := range r.etcdClients {
		if c, ok := c.(io.Closer); ok {
			c.Close()
		}
	}
}

// CheckEtcdKey refuses a key the v2 API would misread: one that does not
// start with "/" or is "/" itself. what names the call in the error
// ("get key \"x\"").
func CheckEtcdKey(what, key string) error {
	if !strings.HasPrefix(key, "/") || key == "/" {
		return fmt.Errorf("%s: an etcd key starts with \"/\" and names something below it (write %q)", what, "/"+strings.TrimLeft(key, "/"))
	}
	return nil
}
