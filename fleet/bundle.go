package fleet

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
)

// Job is what a host is asked to do, the bundle's job.json: the same
// check or run a person would start there, with the controller's vars.
type Job struct {
	// Version is the bundle format, JobVersion.
	Version int `json:"version"`
	// Mode is "check" or "run".
	Mode string `json:"mode"`
	// Host is the host's name in the fleet.
	Host string `json:"host"`
	// Root is the root directory to converge on the host.
	Root string `json:"root"`
	// WorkDir is the controller's working directory (absolute); Playbook
	// is relative to it, as are relative path vars and src= files.
	WorkDir  string            `json:"work_dir"`
	Playbook string            `json:"playbook"`
	Vars     map[string]string `json:"vars"`
	Tags     []string          `json:"tags,omitempty"`
	SkipTags []string          `json:"skip_tags,omitempty"`
	// Ledger and Prune are run's --ledger and --prune.
	Ledger string `json:"ledger,omitempty"`
	Prune  bool   `json:"prune"`
	// LockTimeout, MaxMemory and EvalTimeout are the flags of the same
	// names.
	LockTimeout time.Duration `json:"lock_timeout"`
	MaxMemory   uint64        `json:"max_memory"`
	EvalTimeout time.Duration `json:"eval_timeout"`
	// Coordination is how once steps and rolling restarts take turns.
	Coordination Coordination `json:"coordination"`
}

// JobVersion is the bundle format this kplay writes and reads.
const JobVersion = 1

// Bundle layout: job.json, and under fs/ every shipped file at its
// absolute path on the controller.
const (
	jobFile  = "job.json"
	filesDir = "fs"
)

// BundleLimit bounds what an agent unpacks: the playbook files and every
// src= file (each at most host.SrcLimit).
const BundleLimit = 1 << 30

// Sources are the files a plan needs on the host: the playbook and its
// loaded modules, and every step's local sources (a file's src), as
// absolute paths on the controller, sorted, each once.
func Sources(plan *engine.Plan, workDir string) []string {
	var files []string
	add := func(name string) {
		if !filepath.IsAbs(name) {
			name = filepath.Join(workDir, name)
		}
		name = filepath.Clean(name)
		if !slices.Contains(files, name) {
			files = append(files, name)
		}
	}
	for _, s := range plan.Sources {
		add(s)
	}
	for _, st := range plan.Steps {
		if ls, ok := st.(engine.LocalSourcer); ok {
			for _, s := range ls.LocalSources() {
				add(s)
			}
		}
	}
	slices.Sort(files)
	return files
}

// WriteBundle writes job and the files (absolute paths on this machine)
// to w as a tar stream. A file that is missing or not regular is an
// error: the check on the controller has read them all already.
func WriteBundle(w io.Writer, job *Job, files []string) error {
	tw := tar.NewWriter(w)
	data, err := json.Marshal(job)
	if err != nil {
		return err
	}
	if err := writeEntry(tw, jobFile, data); err != nil {
		return err
	}
	for _, f := range files {
		data, err := host.ReadRegular(nil, f, host.SrcLimit)
		if err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		if err := writeEntry(tw, path.Join(filesDir, filepath.ToSlash(f)), data); err != nil {
			return err
		}
	}
	return tw.Close()
}

func writeEntry(tw *tar.Writer, name string, data []byte) error {
	// No owner, time or mode from the controller: the agent makes every
	// file 0600 and every directory 0700, owned by whoever it runs as.
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// ReadBundle unpacks a bundle from r into dir (which exists, and which
// only this process writes) and returns its job. It takes regular files
// only, each under a clean relative name (no "..", no absolute name), at
// most BundleLimit bytes in all.
func ReadBundle(r io.Reader, dir string) (*Job, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	var total int64
	var job *Job
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		name := hdr.Name
		if hdr.Typeflag != tar.TypeReg || !fs.ValidPath(name) || name == "." || (name != jobFile && !strings.HasPrefix(name, filesDir+"/")) {
			return nil, fmt.Errorf("bundle: entry %q: want job.json or a regular file under fs/", name)
		}
		total += hdr.Size
		if hdr.Size < 0 || total > BundleLimit {
			return nil, fmt.Errorf("bundle: larger than %d bytes", BundleLimit)
		}
		if name == jobFile {
			// Kept in memory only: it holds the vars, secrets among them.
			data, err := io.ReadAll(io.LimitReader(tr, hdr.Size))
			if err != nil {
				return nil, fmt.Errorf("bundle: job.json: %w", err)
			}
			job = &Job{}
			if err := json.Unmarshal(data, job); err != nil {
				return nil, fmt.Errorf("bundle: job.json: %w", err)
			}
			continue
		}
		if err := root.MkdirAll(path.Dir(name), 0o700); err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		n, err := io.Copy(f, io.LimitReader(tr, hdr.Size))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil && n != hdr.Size {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return nil, fmt.Errorf("bundle: %s: %w", name, err)
		}
	}
	switch {
	case job == nil:
		return nil, errors.New("bundle: no job.json")
	case job.Version != JobVersion:
		return nil, fmt.Errorf("bundle: format %d, but this kplay reads %d: run the same kplay on both ends", job.Version, JobVersion)
	case job.Mode != "check" && job.Mode != "run":
		return nil, fmt.Errorf("bundle: mode %q", job.Mode)
	case !filepath.IsAbs(job.WorkDir) || !filepath.IsAbs(job.Root):
		return nil, errors.New("bundle: work_dir and root must be absolute")
	}
	return job, nil
}

// FilesDir is where ReadBundle put the shipped files in dir: the
// directory host.OpenLocalSources takes.
func FilesDir(dir string) string { return filepath.Join(dir, filesDir) }
