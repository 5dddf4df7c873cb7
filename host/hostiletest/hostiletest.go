// Package hostiletest has the parts of hostile servers that tests of
// several packages share, the way net/http/httptest has servers: a body
// without end (Endless, EndlessServer), and an address where nothing
// listens (DeadAddr).
package hostiletest

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// Endless writes prefix to w, then filler without end, until the client
// goes away or max bytes are out, so that a client that reads without
// bound fails its test rather than the machine. It adds what it wrote
// after prefix to sent, if not nil.
func Endless(w http.ResponseWriter, prefix string, filler byte, max int64, sent *atomic.Int64) {
	var wrote atomic.Int64
	if sent == nil {
		sent = &wrote
	}
	if _, err := w.Write([]byte(prefix)); err != nil {
		return
	}
	chunk := bytes.Repeat([]byte{filler}, 64<<10)
	for sent.Load() < max {
		n, err := w.Write(chunk)
		sent.Add(int64(n))
		if err != nil {
			return
		}
	}
}

// EndlessServer serves a body without end: it writes until the client
// goes away, or until it has written max bytes, so that a client that
// reads without bound fails the test rather than the machine. sent tells
// how much it wrote, once the server is closed.
type EndlessServer struct {
	*httptest.Server
	max  int64
	sent atomic.Int64
}

// NewEndlessServer starts a server on 127.0.0.1 that serves a body
// without end, after the headers that header sets, if not nil. The
// server is closed when the test ends, if CheckStopped has not.
func NewEndlessServer(t *testing.T, max int64, header func(w http.ResponseWriter)) *EndlessServer {
	t.Helper()
	e := &EndlessServer{max: max}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if header != nil {
			header(w)
		}
		Endless(w, "", 'x', e.max, &e.sent)
	}))
	t.Cleanup(e.Close)
	return e
}

// CheckStopped closes the server, which waits for its handlers, and
// fails the test if the client read much more than limit: socket buffers
// hold a few MiB that the client never reads.
func (e *EndlessServer) CheckStopped(t *testing.T, limit int64) {
	t.Helper()
	e.Close()
	if sent := e.sent.Load(); sent >= e.max || sent > limit+32<<20 {
		t.Errorf("the server sent %d MiB before the client went away, want about %d MiB", sent>>20, limit>>20)
	}
}

// DeadAddr returns a loopback address, host:port, where nothing listens:
// a port that was free a moment ago, so that connecting is refused.
func DeadAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		tb.Fatal(err)
	}
	return addr
}
