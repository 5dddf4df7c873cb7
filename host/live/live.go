// Package live is the systemd of a running machine, over D-Bus: the
// host.Systemd that `kplay run` uses when the target is not an offline
// root. It talks to the system bus through a socket path, so it can drive
// this machine's systemd or one in a container (through
// /proc/<pid>/root/run/dbus/system_bus_socket).
package live

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"github.com/kplay-dev/kplay/host"
)

// SystemBus is the path of this machine's system bus socket, the usual
// argument to Dial.
const SystemBus = "/run/dbus/system_bus_socket"

// PrivateSocket is systemd's own D-Bus socket, which systemctl uses as
// root when there is no system bus (early boot, an image without dbus,
// a container). Only root may talk to systemd through it.
const PrivateSocket = "/run/systemd/private"

// callTimeout bounds every single D-Bus call (a reload of a big machine
// takes a few seconds; one that hangs must not hang kplay).
const callTimeout = 30 * time.Second

var _ host.Systemd = (*Systemd)(nil)

// Systemd is a host.Systemd that drives a running systemd over D-Bus.
// Its methods are safe for concurrent use. Create it with Dial and Close
// it when done.
type Systemd struct {
	// Progress, when not nil, is called by Job about every 2 s while a
	// job runs, with a line such as
	// "restart kubelet.service: waiting 4s (activating/start)". Set it
	// before the first call to Job.
	Progress func(msg string)

	conn   *sddbus.Conn // jobs, unit properties, unit file changes
	bus    *dbus.Conn   // calls go-systemd does not have (GetUnitFileState)
	cancel context.CancelFunc
	// journal says whether journalctl on this machine can read the
	// target's journal, and root is the --root it needs for that.
	journal bool
	root    string
}

// Running reports whether this machine runs systemd as PID 1: whether
// /run/systemd/system exists, the test systemd's own sd_booted() makes.
// Such a machine is never an offline root: DialRunning talks to it.
func Running() bool {
	return running("/")
}

func running(root string) bool {
	fi, err := os.Stat(filepath.Join(root, "run/systemd/system"))
	return err == nil && fi.IsDir()
}

// DialRunning connects to the systemd of this machine, which runs it
// (Running): through the system bus if its socket is there, else, or if
// the bus does not answer, through systemd's private socket, as
// systemctl does. The error says what each answered.
func DialRunning(ctx context.Context) (*Systemd, error) {
	return dialRunning(ctx, "/")
}

func dialRunning(ctx context.Context, root string) (*Systemd, error) {
	var errs []string
	bus := filepath.Join(root, SystemBus)
	if fi, err := os.Stat(bus); err == nil && fi.Mode().Type() == fs.ModeSocket {
		sd, err := Dial(ctx, bus)
		if err == nil {
			return sd, nil
		}
		errs = append(errs, err.Error())
	} else {
		errs = append(errs, "no system bus socket at "+bus)
	}
	private := filepath.Join(root, PrivateSocket)
	sd, err := Dial(ctx, private)
	if err == nil {
		return sd, nil
	}
	errs = append(errs, err.Error())
	return nil, fmt.Errorf("this machine runs systemd (%s exists), but kplay cannot talk to it: %s (run kplay as root, or give --root DIR for an offline root)",
		filepath.Join(root, "run/systemd/system"), strings.Join(errs, "; "))
}

// Dial connects to the systemd on the system bus whose socket is at the
// path socket (SystemBus, or a container's
// /proc/<pid>/root/run/dbus/system_bus_socket), or directly to systemd
// through its private socket (a path ending in PrivateSocket), authenticating as this
// process's uid, and checks that systemd answers. Connecting takes at
// most 30 s. Job's journal lines come from journalctl on this machine:
// for a socket under /proc/<pid>/root (any path ending in
// /run/dbus/system_bus_socket) it reads that root's journal
// (journalctl --root), for any other path none.
func Dial(ctx context.Context, socket string) (*Systemd, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	// The connections live until Close, not until ctx ends: godbus
	// closes a connection when its context is done.
	connCtx, closeConns := context.WithCancel(context.Background())
	type dialed struct {
		conn *sddbus.Conn
		bus  *dbus.Conn
		err  error
	}
	done := make(chan dialed, 1)
	go func() {
		var d dialed
		defer func() {
			// A panic in the D-Bus library is an error of the dial, not
			// the end of the process (exit 2 means "changes found").
			if p := recover(); p != nil {
				d.err = fmt.Errorf("internal error in the D-Bus client: %v", p)
				done <- d
			}
		}()
		d.conn, d.err = sddbus.NewConnection(func() (*dbus.Conn, error) { return dialBus(connCtx, socket) })
		if d.err == nil {
			d.bus, d.err = dialBus(connCtx, socket)
		}
		done <- d
	}()
	var d dialed
	select {
	case d = <-done:
	case <-ctx.Done():
		closeConns() // unblocks the dial, which then fails
		d = <-done
		d.err = ctx.Err()
	}
	if d.err != nil {
		closeConns()
		return nil, fmt.Errorf("connect to systemd at %s: %w", socket, cleanBusError(d.err))
	}
	s := &Systemd{conn: d.conn, bus: d.bus, cancel: closeConns}
	s.root, s.journal = journalRoot(socket)
	if _, err := s.conn.SystemStateContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("connect to systemd at %s: %w", socket, cleanBusError(err))
	}
	return s, nil
}

// dialBus opens one authenticated connection to the bus at socket; it
// closes when ctx is done.
func dialBus(ctx context.Context, socket string) (*dbus.Conn, error) {
	c, err := dbus.Dial("unix:path="+dbus.EscapeBusAddressValue(socket), dbus.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	// EXTERNAL with the numeric uid: no user name lookup, and the
	// container's bus sees the same uid through the socket credentials.
	if err := c.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		c.Close()
		return nil, err
	}
	if isPrivate(socket) {
		return c, nil // systemd itself, not a bus: no Hello
	}
	if err := c.Hello(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// isPrivate reports whether socket is systemd's private socket, of this
// machine or under a container's root.
func isPrivate(socket string) bool {
	return strings.HasSuffix(filepath.Clean(socket), PrivateSocket)
}

// journalRoot says how journalctl on this machine reads the journal of the
// machine whose bus socket is socket: ok is false when it cannot (an
// unknown socket layout), root is the --root to give ("" for this machine).
func journalRoot(socket string) (root string, ok bool) {
	s := filepath.Clean(socket)
	if s == SystemBus || s == "/var/run/dbus/system_bus_socket" || s == PrivateSocket {
		return "", true
	}
	for _, suffix := range []string{SystemBus, PrivateSocket} {
		if root, ok = strings.CutSuffix(s, suffix); ok && root != "" {
			return root, true
		}
	}
	return "", false
}

// Close closes the connections to the bus. Jobs queued in systemd go on;
// a Job call waiting at that moment gets no result and ends at its timeout.
func (s *Systemd) Close() {
	s.conn.Close()
	s.bus.Close()
	s.cancel()
}

// Live reports true: this is a running systemd.
func (s *Systemd) Live() bool { return true }

// UnitFileState returns what `systemctl is-enabled unit` says ("enabled",
// "disabled", "static", "masked", ...), read from the unit files on disk
// through the manager's GetUnitFileState (as systemctl does), so it is
// current right after Enable, Disable, Mask and Unmask without a
// DaemonReload. The unit's UnitFileState property is not used: it is a
// cache that can lag (systemd 252: still "enabled" after Enable,
// daemon-reload, Disable). A unit with no unit file is "not-found"; a
// name without a unit type suffix is an error ("invalid argument").
func (s *Systemd) UnitFileState(ctx context.Context, unit string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var state string
	err := s.bus.Object("org.freedesktop.systemd1", "/org/freedesktop/systemd1").
		CallWithContext(ctx, "org.freedesktop.systemd1.Manager.GetUnitFileState", 0, unit).Store(&state)
	var be dbus.Error
	if errors.As(err, &be) && be.Name == "org.freedesktop.DBus.Error.FileNotFound" {
		return "not-found", nil
	}
	if err != nil {
		return "", fmt.Errorf("read unit file state of %s: %w", unit, cleanBusError(err))
	}
	return state, nil
}

// ActiveState returns the unit's ActiveState property ("active",
// "inactive", "failed", "activating", "deactivating", "reloading").
// A unit unknown to systemd is "inactive".
func (s *Systemd) ActiveState(ctx context.Context, unit string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	state, err := s.unitProperty(ctx, unit, "ActiveState")
	if err != nil {
		return "", fmt.Errorf("read active state of %s: %w", unit, err)
	}
	return state, nil
}

// unitProperty reads a string property of the org.freedesktop.systemd1.Unit
// interface.
func (s *Systemd) unitProperty(ctx context.Context, unit, name string) (string, error) {
	p, err := s.conn.GetUnitPropertyContext(ctx, unit, name)
	if err != nil {
		return "", cleanBusError(err)
	}
	v, ok := p.Value.Value().(string)
	if !ok {
		return "", fmt.Errorf("property %s is %s, not a string", name, p.Value.Signature())
	}
	return v, nil
}

// EnableLinks returns nil: on a live machine Enable does the work and
// callers diff by UnitFileState.
func (s *Systemd) EnableLinks(ctx context.Context, unit string) ([]host.Link, error) {
	return nil, nil
}

// DisableLinks returns nil: on a live machine Disable does the work and
// callers diff by UnitFileState.
func (s *Systemd) DisableLinks(ctx context.Context, unit string) ([]host.Link, error) {
	return nil, nil
}

// Enable creates the unit's [Install] symlinks under /etc/systemd/system
// (EnableUnitFiles, persistent, not forced), like
// `systemctl enable --no-reload`: UnitFileState says "enabled" at once,
// but the running manager learns the new dependencies (WantedBy=) only at
// the next DaemonReload, which `systemctl enable` would do (measured: no
// change to multi-user.target's Wants before it). Enabling an enabled or
// static unit changes nothing and is not an error.
func (s *Systemd) Enable(ctx context.Context, unit string) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, _, err := s.conn.EnableUnitFilesContext(ctx, []string{unit}, false, false); err != nil {
		return fmt.Errorf("enable %s: %w", unit, cleanBusError(err))
	}
	return nil
}

// Disable removes the unit's [Install] symlinks (DisableUnitFiles,
// persistent), like `systemctl disable --no-reload`; see Enable for what
// needs a DaemonReload. Disabling a disabled unit is not an error.
func (s *Systemd) Disable(ctx context.Context, unit string) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := s.conn.DisableUnitFilesContext(ctx, []string{unit}, false); err != nil {
		return fmt.Errorf("disable %s: %w", unit, cleanBusError(err))
	}
	return nil
}

// Mask links /etc/systemd/system/<unit> to /dev/null (MaskUnitFiles,
// persistent, not forced), like `systemctl mask --no-reload`. A unit file
// of that name in /etc/systemd/system is not replaced: that is an error.
// Masking a masked unit is not an error. (systemd 252 refuses to start
// the unit at once, before any DaemonReload.)
func (s *Systemd) Mask(ctx context.Context, unit string) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := s.conn.MaskUnitFilesContext(ctx, []string{unit}, false, false); err != nil {
		return fmt.Errorf("mask %s: %w", unit, cleanBusError(err))
	}
	return nil
}

// Unmask removes the /dev/null link of Mask, like
// `systemctl unmask --no-reload`. Unmasking an unmasked unit is not an
// error. (systemd 252 can start the unit again at once.)
func (s *Systemd) Unmask(ctx context.Context, unit string) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := s.conn.UnmaskUnitFilesContext(ctx, []string{unit}, false); err != nil {
		return fmt.Errorf("unmask %s: %w", unit, cleanBusError(err))
	}
	return nil
}

// DaemonReload makes systemd re-read all unit files and waits until it
// has (systemctl daemon-reload).
func (s *Systemd) DaemonReload(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := s.conn.ReloadContext(ctx); err != nil {
		return fmt.Errorf("daemon-reload: %w", cleanBusError(err))
	}
	return nil
}

// busError is a D-Bus error from systemd, worded like our messages:
// systemd writes sentences ("Unit foo.service not found."), we write
// "unit foo.service not found". errors.As still finds the dbus.Error.
type busError struct {
	err dbus.Error
}

func (e busError) Error() string {
	msg := strings.TrimSuffix(e.err.Error(), ".")
	r, n := utf8.DecodeRuneInString(msg)
	// Keep "D-Bus ..." and such: lower only a capitalised word.
	if n < len(msg) {
		if r2, _ := utf8.DecodeRuneInString(msg[n:]); unicode.IsLower(r2) {
			msg = string(unicode.ToLower(r)) + msg[n:]
		}
	}
	return msg
}

func (e busError) Unwrap() error { return e.err }

// cleanBusError rewords a D-Bus error as godbus returns it (see
// busError); other errors, wrapped ones included, are returned as they are.
func cleanBusError(err error) error {
	if be, ok := err.(dbus.Error); ok {
		return busError{be}
	}
	return err
}
