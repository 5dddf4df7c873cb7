package host

import (
	"context"
	"errors"
	"time"
)

// ErrNotApplicable is wrapped by a systemd operation that an offline root
// cannot do: start, stop, restart, reload, try-restart, daemon-reload and
// reading a unit's active state. The engine reports such a step as
// skipped ("offline root"), never as an error.
var ErrNotApplicable = errors.New("not applicable to an offline root")

// Link is one symlink that enabling, disabling or masking a unit creates
// or removes: Name is its path inside the root, Target what it points to
// (an absolute path as seen inside the root, as systemctl writes it).
type Link struct {
	Name   string
	Target string
}

// Systemd is the service manager of the target: over D-Bus on a live
// machine, or the unit files of an offline root. Unit names are full
// names with their suffix ("kubelet.service").
type Systemd interface {
	// Live reports whether this is a running systemd (D-Bus) rather
	// than an offline root.
	Live() bool

	// UnitFileState returns what `systemctl is-enabled` says: "enabled",
	// "enabled-runtime", "disabled", "static", "masked",
	// "masked-runtime", "alias", "linked", "linked-runtime", "indirect",
	// "generated", "transient", or "not-found" for a unit with no file.
	UnitFileState(ctx context.Context, unit string) (string, error)
	// ActiveState returns the unit's ActiveState ("active", "inactive",
	// "failed", ...). Offline: ErrNotApplicable.
	ActiveState(ctx context.Context, unit string) (string, error)

	// EnableLinks returns the symlinks that enabling unit would create
	// and that do not exist yet, sorted by name; none when it is
	// enabled already (or static). Live: nil, and Enable does the work.
	EnableLinks(ctx context.Context, unit string) ([]Link, error)
	// DisableLinks returns the existing symlinks that disabling unit
	// would remove, sorted by name; links of other units are never
	// among them.
	DisableLinks(ctx context.Context, unit string) ([]Link, error)

	// Enable creates the symlinks the [Install] section of unit asks
	// for (systemctl enable). Enabling an enabled or static unit is not
	// an error and changes nothing; a unit without a unit file, or a
	// masked one, is an error.
	Enable(ctx context.Context, unit string) error
	// Disable removes the symlinks that enable unit (systemctl
	// disable). Disabling a disabled unit changes nothing.
	Disable(ctx context.Context, unit string) error
	// Mask links /etc/systemd/system/<unit> to /dev/null (systemctl
	// mask); another file at that name is an error.
	Mask(ctx context.Context, unit string) error
	// Unmask removes /etc/systemd/system/<unit> if it is a mask
	// (systemctl unmask); otherwise it does nothing.
	Unmask(ctx context.Context, unit string) error

	// Job runs a job ("start", "stop", "restart", "reload",
	// "try-restart") and waits for its result up to timeout. A failed
	// job's error names the unit and shows its state and, when
	// available, its last journal lines. Offline: ErrNotApplicable.
	Job(ctx context.Context, action, unit string, timeout time.Duration) error
	// DaemonReload makes systemd re-read its unit files. Offline:
	// ErrNotApplicable.
	DaemonReload(ctx context.Context) error
}
