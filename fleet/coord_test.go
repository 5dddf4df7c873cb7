package fleet

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	client "go.etcd.io/etcd/client/v2"

	"github.com/kplay-dev/kplay/host/etcdtest"
)

// Three hosts race for one once key: exactly one runs the step, the
// others report it done by the winner, and the key says done:<winner>.
func TestOnceRunsOnOneHost(t *testing.T) {
	srv := etcdtest.Start(t)
	c := Coordination{Endpoints: []string{srv.URL}, Cluster: "test", Run: "r1", TTL: 3 * time.Second}
	var ran atomic.Int32
	doneBy := make([]string, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			co, err := NewEtcdCoordinator(c, fmt.Sprintf("m%d", i+1))
			if err != nil {
				t.Error(err)
				return
			}
			by, finish, err := co.Once(context.Background(), "kube_create-abc")
			if err != nil {
				t.Error(err)
				return
			}
			if by != "" {
				doneBy[i] = by
				return
			}
			ran.Add(1)
			doneBy[i] = fmt.Sprintf("m%d", i+1)
			if err := finish(false); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ran.Load() != 1 {
		t.Fatalf("%d hosts ran the once step, want 1", ran.Load())
	}
	if doneBy[0] != doneBy[1] || doneBy[1] != doneBy[2] {
		t.Fatalf("hosts disagree on who ran it: %q", doneBy)
	}
	keys := etcdKeys(t, srv.URL)
	resp, err := keys.Get(context.Background(), "/kplay/test/once/r1/kube_create-abc", nil)
	if err != nil || resp.Node.Value != "done:"+doneBy[0] {
		t.Fatalf("once key: %v %v, want done:%s", resp, err, doneBy[0])
	}
}

// A host whose once step failed deletes the key: the next host runs it.
func TestOnceFailedLetsAnotherTry(t *testing.T) {
	srv := etcdtest.Start(t)
	c := Coordination{Endpoints: []string{srv.URL}, Cluster: "test", Run: "r1", TTL: 3 * time.Second}
	a, _ := NewEtcdCoordinator(c, "m1")
	b, _ := NewEtcdCoordinator(c, "m2")
	ctx := context.Background()
	by, finish, err := a.Once(ctx, "k")
	if err != nil || by != "" {
		t.Fatal(by, err)
	}
	got := make(chan string, 1)
	go func() {
		by, finish, err := b.Once(ctx, "k")
		if err != nil {
			t.Error(err)
		}
		if by == "" {
			_ = finish(false)
			by = "m2 itself"
		}
		got <- by
	}()
	if err := finish(true); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != "m2 itself" {
		t.Fatalf("after m1 failed, m2 got %q, want to run it itself", g)
	}
}

// Two coordinators (as two separate fleet runs) restart in turn: each
// records when it holds the lock; no two holds overlap.
func TestLockHoldsNeverOverlap(t *testing.T) {
	srv := etcdtest.Start(t)
	var holders, most atomic.Int32
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := Coordination{Endpoints: []string{srv.URL}, Cluster: "test", Run: fmt.Sprintf("run%d", i%2), TTL: 3 * time.Second}
			co, err := NewEtcdCoordinator(c, fmt.Sprintf("m%d", i))
			if err != nil {
				t.Error(err)
				return
			}
			for range 3 {
				unlock, err := co.Lock(context.Background(), "restart-kubelet.service")
				if err != nil {
					t.Error(err)
					return
				}
				n := holders.Add(1)
				for {
					m := most.Load()
					if n <= m || most.CompareAndSwap(m, n) {
						break
					}
				}
				// Another holder would see the count at 2 while this
				// one reads etcd.
				keys := etcdKeys(t, srv.URL)
				if _, err := keys.Get(context.Background(), "/kplay/test/locks/restart-kubelet.service", nil); err != nil {
					t.Error(err)
				}
				holders.Add(-1)
				if err := unlock(); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if most.Load() != 1 {
		t.Fatalf("%d holders held the lock at once, want 1", most.Load())
	}
}

// A holder that dies (never unlocks, never refreshes) loses the lock
// when its lease runs out; a waiter then takes it.
func TestLockOfDeadHolderExpires(t *testing.T) {
	srv := etcdtest.Start(t)
	keys := etcdKeys(t, srv.URL)
	// The dead holder: a key with a 1 s lease that no one refreshes.
	if _, err := keys.Set(context.Background(), "/kplay/test/locks/restart-kubelet.service", "m9 gone", &client.SetOptions{TTL: time.Second, PrevExist: client.PrevNoExist}); err != nil {
		t.Fatal(err)
	}
	co, _ := NewEtcdCoordinator(Coordination{Endpoints: []string{srv.URL}, Cluster: "test", Run: "r", TTL: 3 * time.Second}, "m1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	unlock, err := co.Lock(ctx, "restart-kubelet.service")
	if err != nil {
		t.Fatalf("waiting for an expired holder: %v", err)
	}
	resp, err := keys.Get(ctx, "/kplay/test/locks/restart-kubelet.service", nil)
	if err != nil || resp.Node.Value != "m1 r" {
		t.Fatalf("lock key: %v %v, want m1's", resp, err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
}

// A lease that outlives its TTL while held: the holder refreshes it.
func TestLockIsRefreshedWhileHeld(t *testing.T) {
	srv := etcdtest.Start(t)
	co, _ := NewEtcdCoordinator(Coordination{Endpoints: []string{srv.URL}, Cluster: "test", Run: "r", TTL: 1500 * time.Millisecond}, "m1")
	unlock, err := co.Lock(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	keys := etcdKeys(t, srv.URL)
	// Watch the key for 3 TTLs: it must neither expire nor be deleted.
	ctx, cancel := context.WithTimeout(context.Background(), 4500*time.Millisecond)
	defer cancel()
	w := keys.Watcher("/kplay/test/locks/x", nil)
	for {
		resp, err := w.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				t.Fatal(err)
			}
			break // the time is up: only refreshes came
		}
		if resp.Action != "update" && resp.Action != "compareAndSwap" && resp.Action != "set" {
			t.Fatalf("held lock: %s", resp.Action)
		}
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
}

func etcdKeys(t *testing.T, url string) client.KeysAPI {
	t.Helper()
	c, err := client.New(client.Config{Endpoints: []string{url}})
	if err != nil {
		t.Fatal(err)
	}
	return client.NewKeysAPI(c)
}

// An endpoint that redirects gets an error, and the server it redirects
// to hears nothing: the coordinator's client follows host/etcdv2's
// rules, as the etcd_put client does.
func TestCoordinatorFollowsNoRedirect(t *testing.T) {
	t.Parallel()
	var heard atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { heard.Add(1) }))
	t.Cleanup(other.Close)
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirecting.Close)
	co, err := NewEtcdCoordinator(Coordination{Endpoints: []string{redirecting.URL}, Cluster: "test", Run: "r", TTL: 3 * time.Second}, "m1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, _, err = co.Once(ctx, "k")
	if err == nil || !strings.Contains(err.Error(), "a redirect to") {
		t.Errorf("got %v, want the redirect refused", err)
	}
	if n := heard.Load(); n != 0 {
		t.Errorf("the server redirected to heard %d requests, want none", n)
	}
}
