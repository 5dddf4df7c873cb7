package fleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	client "go.etcd.io/etcd/client/v2"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/host/etcdv2"
)

// Coordination is how the hosts of a fleet run take turns, part of the
// Job: the etcd that holds the keys (none: the controller picked
// OnceHost), the cluster's name in the keys, and the run's id.
type Coordination struct {
	// Endpoints are etcd client URLs (the v2 keys API); empty means no
	// etcd: once steps run on OnceHost, rolling restarts take no lock.
	Endpoints []string `json:"endpoints,omitempty"`
	// Cluster names the cluster in the keys: /kplay/<cluster>/...
	Cluster string `json:"cluster"`
	// Run is the fleet run's id: once keys are per run.
	Run string `json:"run"`
	// OnceHost is the host that runs once steps when there is no etcd.
	OnceHost string `json:"once_host,omitempty"`
	// TTL is the lease of a key kplay holds, refreshed every TTL/3 while
	// it runs: a host that dies holding one releases it after TTL.
	TTL time.Duration `json:"ttl"`
}

// DefaultTTL is the lease of a once or lock key.
const DefaultTTL = 30 * time.Second

// doneTTL is how long a once key says "done:<host>": longer than any run,
// after which the key goes (a later run's diff finds the step done).
const doneTTL = 24 * time.Hour

// Key prefixes, under /kplay/<cluster>/.
const (
	onceDir  = "once"
	locksDir = "locks"
)

// CheckCluster accepts a cluster name: letters, digits, '-', '_' and '.',
// as one etcd key segment.
func CheckCluster(name string) error {
	if name == "" || name == "." || name == ".." || strings.IndexFunc(name, notNameChar) >= 0 {
		return fmt.Errorf("cluster name %q: want letters, digits, '-', '_' or '.', such as prod", name)
	}
	return nil
}

// CheckEtcdURL accepts an etcd client URL for coordination: http or
// https, a host, no path, no password (it would travel in every job).
func CheckEtcdURL(ep string) error {
	u, err := url.Parse(ep)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("etcd %q: want a client URL without a password, such as http://10.0.0.2:2379", host.RedactURLs(ep))
	}
	return nil
}

// Coordinator returns the engine.Coordinator of host in a run
// coordinated by c.
func (c Coordination) Coordinator(host string) (engine.Coordinator, error) {
	if len(c.Endpoints) == 0 {
		return firstHost{host: host, first: c.OnceHost}, nil
	}
	return NewEtcdCoordinator(c, host)
}

// firstHost coordinates without etcd: the controller's pick runs once
// steps, and rolling restarts take no lock (--serial keeps them apart
// within one kplay run).
type firstHost struct{ host, first string }

func (f firstHost) Once(context.Context, string) (string, func(bool) error, error) {
	if f.host != f.first {
		return f.first, nil, nil
	}
	return "", func(bool) error { return nil }, nil
}

func (f firstHost) Lock(context.Context, string) (func() error, error) {
	return func() error { return nil }, nil
}

// EtcdCoordinator coordinates through the etcd v2 keys API, with leases
// (TTL) refreshed while held. v2 leases have no fencing: a holder whose
// refresh fails learns it when it releases, and says so.
type EtcdCoordinator struct {
	keys client.KeysAPI
	c    Coordination
	host string
}

// etcdCallTimeout bounds one etcd call (not a watch).
const etcdCallTimeout = 10 * time.Second

// NewEtcdCoordinator returns the coordinator of host; it does not
// connect yet.
func NewEtcdCoordinator(c Coordination, host string) (*EtcdCoordinator, error) {
	if err := CheckCluster(c.Cluster); err != nil {
		return nil, err
	}
	for _, ep := range c.Endpoints {
		if err := CheckEtcdURL(ep); err != nil {
			return nil, err
		}
	}
	if c.TTL < time.Second {
		c.TTL = DefaultTTL
	}
	cl, err := client.New(client.Config{
		Endpoints: c.Endpoints,
		// etcdv2's rules: no redirect followed, bounded answers.
		Transport: etcdv2.Transport(&http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			TLSHandshakeTimeout: 5 * time.Second,
		}),
		// etcd flushes a watch's header at once, so this bounds watches
		// too without cutting them.
		HeaderTimeoutPerRequest: 5 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("coordination etcd: %w", err)
	}
	return &EtcdCoordinator{keys: client.NewKeysAPI(cl), c: c, host: host}, nil
}

func (e *EtcdCoordinator) key(dir, name string) string {
	return "/kplay/" + e.c.Cluster + "/" + dir + "/" + name
}

func (e *EtcdCoordinator) ttlSeconds() time.Duration {
	return e.c.TTL.Round(time.Second)
}

// Once takes /kplay/<cluster>/once/<run>/<key>: created with
// PrevExist=false as "running:<host>" with a lease, refreshed while the
// step runs, then "done:<host>" (or deleted if the step failed, so that
// another host may try). A host that finds "done:" skips the step; one
// that finds "running:" waits for the key to change.
func (e *EtcdCoordinator) Once(ctx context.Context, key string) (string, func(bool) error, error) {
	k := e.key(onceDir, e.c.Run+"/"+key)
	mine := "running:" + e.host
	for {
		index, err := e.create(ctx, k, mine)
		if err == nil {
			hold := e.hold(ctx, k, mine)
			return "", func(failed bool) error {
				lost := hold.stop()
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), etcdCallTimeout)
				defer cancel()
				if failed {
					_, err := e.keys.Delete(cctx, k, &client.DeleteOptions{PrevValue: mine})
					return etcdErr(k, errors.Join(lost, ignoreMissing(err)))
				}
				_, err := e.keys.Set(cctx, k, "done:"+e.host, &client.SetOptions{PrevValue: mine, TTL: doneTTL})
				if err != nil {
					return etcdErr(k, errors.Join(lost, err))
				}
				return nil
			}, nil
		}
		if index == 0 {
			return "", nil, err
		}
		node, err := e.get(ctx, k)
		switch {
		case err != nil:
			return "", nil, err
		case node == nil:
			continue // expired or deleted meanwhile: try again
		case strings.HasPrefix(node.Value, "done:"):
			return strings.TrimPrefix(node.Value, "done:"), nil, nil
		}
		if err := e.waitChange(ctx, k, node.ModifiedIndex); err != nil {
			return "", nil, err
		}
	}
}

// Lock takes /kplay/<cluster>/locks/<name>: created with PrevExist=false
// as "<host> <run>" with a lease, refreshed while held; unlock deletes it
// if it is still ours. A waiter watches the key until it goes (deleted,
// or its lease ran out) and tries again.
func (e *EtcdCoordinator) Lock(ctx context.Context, name string) (func() error, error) {
	k := e.key(locksDir, name)
	mine := e.host + " " + e.c.Run
	for {
		index, err := e.create(ctx, k, mine)
		if err == nil {
			hold := e.hold(ctx, k, mine)
			return func() error {
				lost := hold.stop()
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), etcdCallTimeout)
				defer cancel()
				_, err := e.keys.Delete(cctx, k, &client.DeleteOptions{PrevValue: mine})
				return etcdErr(k, errors.Join(lost, err))
			}, nil
		}
		if index == 0 {
			return nil, err
		}
		if err := e.waitChange(ctx, k, index); err != nil {
			return nil, err
		}
	}
}

// create makes k with value and a lease if it does not exist. When it
// exists, the error comes with etcd's index (else index is 0).
func (e *EtcdCoordinator) create(ctx context.Context, k, value string) (index uint64, err error) {
	cctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
	defer cancel()
	_, err = e.keys.Set(cctx, k, value, &client.SetOptions{PrevExist: client.PrevNoExist, TTL: e.ttlSeconds()})
	var ee client.Error
	if errors.As(err, &ee) && ee.Code == client.ErrorCodeNodeExist {
		return ee.Index, err
	}
	return 0, etcdErr(k, err)
}

// get reads k; nil when it does not exist.
func (e *EtcdCoordinator) get(ctx context.Context, k string) (*client.Node, error) {
	cctx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
	defer cancel()
	resp, err := e.keys.Get(cctx, k, nil)
	var ee client.Error
	if errors.As(err, &ee) && ee.Code == client.ErrorCodeKeyNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, etcdErr(k, err)
	}
	return resp.Node, nil
}

// waitChange waits for the next change of k after index: a set, a delete
// or an expiry. An index etcd no longer keeps is no error: the caller
// reads the key again.
func (e *EtcdCoordinator) waitChange(ctx context.Context, k string, index uint64) error {
	w := e.keys.Watcher(k, &client.WatcherOptions{AfterIndex: index})
	_, err := w.Next(ctx)
	var ee client.Error
	if errors.As(err, &ee) && ee.Code == client.ErrorCodeEventIndexCleared {
		return nil
	}
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return etcdErr(k, err)
}

// holding refreshes a key's lease until stopped.
type holding struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	lost   error
}

// hold refreshes k (while it holds value) every TTL/3.
func (e *EtcdCoordinator) hold(ctx context.Context, k, value string) *holding {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h := &holding{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		t := time.NewTicker(e.c.TTL / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			cctx, ccancel := context.WithTimeout(ctx, e.c.TTL/3)
			_, err := e.keys.Set(cctx, k, "", &client.SetOptions{Refresh: true, PrevExist: client.PrevExist, PrevValue: value, TTL: e.ttlSeconds()})
			ccancel()
			if err != nil && ctx.Err() == nil {
				h.mu.Lock()
				h.lost = fmt.Errorf("lost %s: its lease could not be renewed (%v); another host may have taken it", k, err)
				h.mu.Unlock()
				return
			}
		}
	}()
	return h
}

// stop ends the refreshes and says whether the lease was lost.
func (h *holding) stop() error {
	h.cancel()
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lost
}

func ignoreMissing(err error) error {
	var ee client.Error
	if errors.As(err, &ee) && ee.Code == client.ErrorCodeKeyNotFound {
		return nil
	}
	return err
}

// etcdErr names the key in an error of etcd.
func etcdErr(k string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("etcd %s: %w", k, err)
}
