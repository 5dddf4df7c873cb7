package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"go.starlark.net/starlark"
)

// Once is a step's once= argument: "" (every host runs the step) or
// OnceCluster.
type Once string

// OnceCluster is once = "cluster": across a fleet run, one host applies
// the step and the others report it done by that host.
const OnceCluster Once = "cluster"

// Unpack implements starlark.Unpacker: None or "cluster".
func (o *Once) Unpack(v starlark.Value) error {
	if v == starlark.None {
		*o = ""
		return nil
	}
	s, ok := starlark.AsString(v)
	if !ok || (s != string(OnceCluster) && s != "") {
		return fmt.Errorf("want \"cluster\" (run on one host of a fleet run) or None, got %s", v)
	}
	*o = Once(s)
	return nil
}

// Coordinator makes the hosts of a fleet run take turns (fleet's etcd
// coordinator, or its "first host" one without etcd). A run calls it
// only in its real pass, just before Apply, when Diff found a change:
// never in check, which changes nothing.
type Coordinator interface {
	// Once is called before a once = "cluster" step applies. doneBy,
	// when not "", names the host that applied it (or is applying it
	// and succeeded): this host skips it. Otherwise this host applies it
	// and must then call finish with the outcome; a failure lets another
	// host try.
	Once(ctx context.Context, key string) (doneBy string, finish func(failed bool) error, err error)
	// Lock takes the cluster-wide lock name, waiting while another host
	// holds it, for a rolling restart; unlock releases it. A holder that
	// loses the lock (its lease ran out) gets an error from unlock.
	Lock(ctx context.Context, name string) (unlock func() error, err error)
}

type coordinatorKey struct{}

// WithCoordinator returns a ctx whose run coordinates its once and
// rolling steps through c.
func WithCoordinator(ctx context.Context, c Coordinator) context.Context {
	return context.WithValue(ctx, coordinatorKey{}, c)
}

func coordinatorOf(ctx context.Context) Coordinator {
	c, _ := ctx.Value(coordinatorKey{}).(Coordinator)
	return c
}

// OnceKey names a once step among the run's: the same on every host of
// a fleet run (the same playbook), a name safe in an etcd key, and no
// part of the step's resource (a URL may hold a password): its kind and
// a hash of its position and Key.
func OnceKey(m *StepMeta) string {
	sum := sha256.Sum256([]byte(m.Pos.String() + "\x00" + m.Key()))
	return m.Kind + "-" + hex.EncodeToString(sum[:8])
}

// RollingLockName is the name of the lock a rolling restart of unit
// ("kubelet.service") takes: one per unit, whether the step restarts or
// try-restarts it.
func RollingLockName(unit string) string { return "restart-" + unit }

// coordinate applies s with c through the coordinator of ctx, if the
// step asks for it: a once step runs on one host, a rolling restart
// holds the unit's lock. done reports that another host applied it.
func (a *applier) coordinate(ctx context.Context, s Step, c Change) (doneBy string, err error) {
	m := s.Meta()
	co := coordinatorOf(ctx)
	if co == nil || !a.makeKey || a.h != a.real {
		return "", s.Apply(ctx, a.h, c)
	}
	switch {
	case m.Once == OnceCluster:
		by, finish, err := co.Once(ctx, OnceKey(m))
		if err != nil {
			return "", fmt.Errorf("once = \"cluster\": %w", err)
		}
		if by != "" {
			return by, nil
		}
		err = s.Apply(ctx, a.h, c)
		var nc *NoChange
		failed := err != nil && !errors.As(err, &nc)
		if ferr := finish(failed); ferr != nil && err == nil {
			err = fmt.Errorf("once = \"cluster\": %w", ferr)
		}
		return "", err
	case m.Rolling:
		unit := m.resource()
		if u, ok := s.(UnitStep); ok && u.Unit() != "" {
			unit = u.Unit()
		}
		unlock, err := co.Lock(ctx, RollingLockName(unit))
		if err != nil {
			return "", fmt.Errorf("rolling: %w", err)
		}
		err = s.Apply(ctx, a.h, c)
		if uerr := unlock(); uerr != nil && err == nil {
			err = fmt.Errorf("rolling: %w", uerr)
		}
		return "", err
	}
	return "", s.Apply(ctx, a.h, c)
}
