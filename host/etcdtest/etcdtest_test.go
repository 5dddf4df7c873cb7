package etcdtest

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestStartServesV2Keys(t *testing.T) {
	t.Parallel()
	s := Start(t)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, s.URL+"/v2/keys/probe", strings.NewReader("value=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || !strings.Contains(string(body), `"value":"x"`) {
		t.Fatalf("PUT /v2/keys/probe: %d %s", resp.StatusCode, body)
	}
	s.Stop()
	if _, err := http.Get(s.URL + "/v2/keys/"); err == nil {
		t.Error("etcd still answers after Stop")
	}
}
