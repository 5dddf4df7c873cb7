// Package etcdtest starts a real etcd server for tests, the way
// net/http/httptest starts HTTP servers: on free ports of 127.0.0.1, with
// the v2 keys API enabled and its data in a temp dir, stopped at cleanup.
// It uses the etcd binary of Debian's etcd-server package (3.4), or the
// one named by $KPLAY_ETCD.
package etcdtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is a running etcd.
type Server struct {
	URL  string // client URL, such as http://127.0.0.1:40123
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

// notInstalled says why a test that needs etcd cannot run.
const notInstalled = "etcd is not installed: install etcd 3.4 or 3.5 (Debian: apt-get install etcd-server), or set KPLAY_ETCD"

// Binary returns the etcd binary to use, or "" if there is none.
func Binary() string {
	if b := os.Getenv("KPLAY_ETCD"); b != "" {
		return b
	}
	if b, err := exec.LookPath("etcd"); err == nil {
		return b
	}
	return ""
}

// Start starts an etcd for the test and stops it when the test ends. It
// skips the test when no etcd binary is installed. For a server shared by
// a package's tests, use StartShared from TestMain.
func Start(t testing.TB) *Server {
	t.Helper()
	if Binary() == "" {
		t.Skip(notInstalled)
	}
	s, err := StartShared(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartShared starts an etcd with its data under dir and waits until its
// v2 keys API answers. It tries three times, in case another process takes
// a port between our probe and etcd's bind. The caller stops it with Stop.
func StartShared(dir string) (*Server, error) {
	bin := Binary()
	if bin == "" {
		return nil, errors.New(notInstalled)
	}
	var errs []error
	for attempt := range 3 {
		s, err := start(bin, filepath.Join(dir, strconv.Itoa(attempt)))
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// Shared is an etcd that the tests of one package share, so that they
// pay for one start: the first test that asks for its URL starts it, and
// the package's TestMain stops it with Stop after m.Run. The zero value
// is ready to use.
type Shared struct {
	once sync.Once
	dir  string
	srv  *Server
	err  error
}

// URL returns the client URL of the shared etcd, starting it at the first
// call (and saying on stderr how long that took). It skips the test when
// no etcd binary is installed, and fails it when etcd did not start.
func (s *Shared) URL(t testing.TB) string {
	t.Helper()
	if Binary() == "" {
		t.Skip(notInstalled)
	}
	s.once.Do(func() {
		start := time.Now()
		s.dir, s.err = os.MkdirTemp("", "kplay-etcd-")
		if s.err == nil {
			s.srv, s.err = StartShared(s.dir)
		}
		if s.err == nil {
			fmt.Fprintf(os.Stderr, "etcd %s ready in %s\n", s.srv.URL, time.Since(start).Round(time.Millisecond))
		}
	})
	if s.err != nil {
		t.Fatal("no etcd: ", s.err)
	}
	return s.srv.URL
}

// Stop stops the shared etcd, if it was started, and removes its data.
func (s *Shared) Stop() {
	if s.srv != nil {
		s.srv.Stop()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

func start(bin, dir string) (*Server, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	s := &Server{URL: client, log: &syncBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(bin,
		"--name=kplaytest",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=kplaytest="+peer,
		"--enable-v2=true",
	)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	// If the test binary dies, etcd goes with it.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	go func() {
		s.cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(30 * time.Second); err != nil {
		s.Stop()
		return nil, fmt.Errorf("%w (etcd 3.6 has no --enable-v2: use 3.4 or 3.5); etcd said:\n%s", err, tail(s.log.String()))
	}
	return s, nil
}

// waitReady polls the v2 keys API until it answers.
func (s *Server) waitReady(limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/v2/keys/", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("etcd exited before it answered")
		case <-ctx.Done():
			return fmt.Errorf("etcd did not answer on %s within %s", s.URL, limit)
		case <-tick.C:
		}
	}
}

// Stop stops the server and waits for it to exit.
func (s *Server) Stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// tail returns the end of a log, for messages.
func tail(log string) string {
	if len(log) > 2000 {
		return log[len(log)-2000:]
	}
	return log
}

// freePorts returns n ports that were free on 127.0.0.1 a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// syncBuffer is a bytes.Buffer safe for etcd's writes and our reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Get reads key from the etcd at url with the v2 HTTP API, not through
// kplay's client: its value, whether it exists, and its modifiedIndex.
func Get(tb testing.TB, url, key string) (value string, exists bool, modifiedIndex uint64) {
	tb.Helper()
	resp, err := http.Get(url + "/v2/keys" + key)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return "", false, 0
	}
	var body struct {
		Node struct {
			Value         string `json:"value"`
			ModifiedIndex uint64 `json:"modifiedIndex"`
		} `json:"node"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		tb.Fatalf("GET %s/v2/keys%s: %v", url, key, err)
	}
	return body.Node.Value, true, body.Node.ModifiedIndex
}

// Put sets key to value in the etcd at url with the v2 HTTP API.
func Put(tb testing.TB, url, key, value string) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPut, url+"/v2/keys"+key, strings.NewReader(neturl.Values{"value": {value}}.Encode()))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		tb.Fatalf("PUT %s/v2/keys%s: %s", url, key, resp.Status)
	}
}
