package builtins

import (
	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
)

// The steps that touch only files of the root (engine.Batchable): a run
// commits a series of them at once, with one sync of the file system
// before their renames and one after.
var (
	_ engine.Batchable = (*fileStep)(nil)
	_ engine.Batchable = (*directoryStep)(nil)
	_ engine.Batchable = (*requireFileStep)(nil)
	_ engine.Batchable = (*removedStep)(nil)
	_ engine.Batchable = (*leftStep)(nil)
	_ engine.Batchable = (*pruneFileStep)(nil)
	_ engine.Batchable = (*pruneDirStep)(nil)
	_ engine.Batchable = (*systemctlStep)(nil)
)

func (s *fileStep) Batchable(host.Host) bool        { return true }
func (s *directoryStep) Batchable(host.Host) bool   { return true }
func (s *requireFileStep) Batchable(host.Host) bool { return true }
func (s *removedStep) Batchable(host.Host) bool     { return true }
func (s *leftStep) Batchable(host.Host) bool        { return true }
func (s *pruneDirStep) Batchable(host.Host) bool    { return true }

// Batchable: removing a unit stops it first on a live system.
func (s *pruneFileStep) Batchable(h host.Host) bool {
	return s.obj.Kind != "unit" || !h.Systemd().Live()
}

// Batchable: offline, systemctl enables, disables and masks with links
// in the root (as systemctl --root) and starts nothing; live, it talks
// to systemd.
func (s *systemctlStep) Batchable(h host.Host) bool { return !h.Systemd().Live() }
