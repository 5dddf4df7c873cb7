package host

import (
	"context"
	"fmt"
	"sync"
	"time"
)

var _ Systemd = (*dryLive)(nil)

// dryLive is the Systemd of a Dry over a live machine: reads go to the
// live manager, changes are kept in memory and never reach it, and later
// reads see them. It is safe for concurrent use.
type dryLive struct {
	live Systemd

	mu     sync.Mutex
	file   map[string]string // unit -> "enabled" or "disabled", by Enable and Disable
	masked map[string]bool   // unit -> masked (true) or unmasked (false) in memory
	active map[string]string // unit -> ActiveState after a job
}

func newDryLive(live Systemd) *dryLive {
	return &dryLive{live: live, file: map[string]string{}, masked: map[string]bool{}, active: map[string]string{}}
}

// Live reports true: the unit files and jobs are those of a live manager.
func (s *dryLive) Live() bool { return true }

// UnitFileState returns "masked" after Mask, "enabled" after Enable,
// "disabled" after Disable, else the live state. After Unmask of a unit
// that is masked on the machine, the state behind the mask is unknown
// until the mask is gone: it reads as "disabled".
func (s *dryLive) UnitFileState(ctx context.Context, unit string) (string, error) {
	s.mu.Lock()
	masked, maskKnown := s.masked[unit]
	state, stateKnown := s.file[unit]
	s.mu.Unlock()
	switch {
	case maskKnown && masked:
		return "masked", nil
	case stateKnown:
		return state, nil
	}
	state, err := s.live.UnitFileState(ctx, unit)
	if err != nil {
		return "", err
	}
	if maskKnown && state == "masked" {
		return "disabled", nil
	}
	return state, nil
}

// ActiveState returns the state a job left in memory, else the live one.
func (s *dryLive) ActiveState(ctx context.Context, unit string) (string, error) {
	s.mu.Lock()
	state, ok := s.active[unit]
	s.mu.Unlock()
	if ok {
		return state, nil
	}
	return s.live.ActiveState(ctx, unit)
}

// EnableLinks returns what the live manager returns.
func (s *dryLive) EnableLinks(ctx context.Context, unit string) ([]Link, error) {
	return s.live.EnableLinks(ctx, unit)
}

// DisableLinks returns what the live manager returns.
func (s *dryLive) DisableLinks(ctx context.Context, unit string) ([]Link, error) {
	return s.live.DisableLinks(ctx, unit)
}

// Enable records unit as enabled. A unit masked (on the machine or in
// memory) is refused, as the live manager would.
func (s *dryLive) Enable(ctx context.Context, unit string) error {
	state, err := s.UnitFileState(ctx, unit)
	if err != nil {
		return fmt.Errorf("enable %s: %w", unit, err)
	}
	if state == "masked" || state == "masked-runtime" {
		return fmt.Errorf("enable %s: unit is masked (unmask it first)", unit)
	}
	s.set(s.file, unit, "enabled")
	return nil
}

// Disable records unit as disabled.
func (s *dryLive) Disable(ctx context.Context, unit string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("disable %s: %w", unit, err)
	}
	s.set(s.file, unit, "disabled")
	return nil
}

// Mask records unit as masked.
func (s *dryLive) Mask(ctx context.Context, unit string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mask %s: %w", unit, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.masked[unit] = true
	return nil
}

// Unmask records that unit's mask is gone.
func (s *dryLive) Unmask(ctx context.Context, unit string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("unmask %s: %w", unit, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.masked[unit] = false
	return nil
}

// Job records the ActiveState the job leaves: "active" after start,
// restart and reload, "inactive" after stop; try-restart changes nothing
// (it restarts only an active unit). An unknown action is an error.
func (s *dryLive) Job(ctx context.Context, action, unit string, _ time.Duration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s: %w", action, unit, err)
	}
	switch action {
	case "start", "restart", "reload":
		s.set(s.active, unit, "active")
	case "stop":
		s.set(s.active, unit, "inactive")
	case "try-restart":
	default:
		return fmt.Errorf("%s %s: unknown job (use start, stop, restart, reload or try-restart)", action, unit)
	}
	return nil
}

// DaemonReload does nothing: the live manager has not seen the dry
// files, and reads of unit state come from memory first.
func (s *dryLive) DaemonReload(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("daemon-reload: %w", err)
	}
	return nil
}

func (s *dryLive) set(m map[string]string, unit, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m[unit] = value
}
