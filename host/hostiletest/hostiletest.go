// Package hostiletest has the parts of hostile servers that tests of
// several packages share, the way net/http/httptest has servers: a body
// without end.
package hostiletest

import (
	"bytes"
	"net/http"
	"sync/atomic"
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
