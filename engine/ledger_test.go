package engine

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestLedgerTextIsTheDocsJSON: the ledger kplay writes by hand, one
// object a line, is encoding/json's text of the same ledgerDoc but for
// white space, with each object on a line of its own.
func TestLedgerTextIsTheDocsJSON(t *testing.T) {
	for _, objs := range [][]Object{
		nil,
		{{Kind: "file", Target: "/etc/a<b>&\"c\"", Hash: "ab12", Sensitive: true}},
		{{Kind: "file", Target: "/etc/z"}, {Kind: "directory", Target: "/etc/é\u2028", Created: true}, {Kind: "enable", Target: "kubelet.service", Absent: true}, {Kind: "file", Target: "/k", Hash: "ff", Created: true, Sensitive: true}},
	} {
		got, err := marshalLedger("master", objs)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(ledgerDoc{Version: ledgerVersion, Name: "master", Objects: append([]Object{}, objs...)})
		if err != nil {
			t.Fatal(err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, got); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, got)
		}
		if compact.String() != string(want) {
			t.Errorf("ledger text compacts to\n%s\nwant encoding/json's\n%s", compact.String(), want)
		}
		if lines := strings.Count(string(got), "\n"); lines != 5+len(objs)+min(len(objs), 1) {
			t.Errorf("ledger of %d objects has %d lines, want one an object:\n%s", len(objs), lines, got)
		}
	}
}
