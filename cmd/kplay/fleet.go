package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/fleet"
	"github.com/kplay-dev/kplay/host"
	"github.com/kplay-dev/kplay/ui"
)

// fleetFlags are the flags of check and run that make them a fleet run:
// the playbook goes to every host over SSH (package fleet).
type fleetFlags struct {
	inventory  string
	hosts      []string
	identity   string
	knownHosts string
	acceptNew  bool
	forks      int
	serial     string
	maxFail    string
	binary     string
	etcd       []string
	cluster    string
	// set are the fleet flags given, for "needs --inventory or --hosts".
	set []string
	// given: --inventory or --hosts was given, even empty (an empty list
	// is an error, never a run on this machine).
	given bool
	// reported: the fleet's report was written (after the hosts ran).
	reported bool
}

func (f *fleetFlags) on() bool { return f.given || f.inventory != "" || len(f.hosts) > 0 }

// fleetOnly are the flags that mean something only in a fleet run.
var fleetOnly = []string{"ssh-identity", "ssh-known-hosts", "ssh-insecure-accept-new", "forks", "serial", "max-fail", "remote-binary", "coordination-etcd", "cluster"}

func addFleetFlags(cmd *cobra.Command, o *options) {
	f := &o.fleet
	fl := cmd.Flags()
	fl.StringVarP(&f.inventory, "inventory", "i", "", "converge every host of this inventory file over SSH (see docs/fleet.md)")
	fl.StringSliceVar(&f.hosts, "hosts", nil, "converge these hosts over SSH: user@address[:port], comma-separated")
	fl.StringVar(&f.identity, "ssh-identity", "", "the private key file to log in with (default: ssh-agent only); wins over the inventory's")
	fl.StringVar(&f.knownHosts, "ssh-known-hosts", "", "the known_hosts file that vouches for each host's key (default ~/.ssh/known_hosts); wins over the inventory's")
	fl.BoolVar(&f.acceptNew, "ssh-insecure-accept-new", false, "trust and record the key of a host known_hosts does not list (never a changed key)")
	fl.IntVar(&f.forks, "forks", fleet.DefaultForks, "how many hosts to work on at once")
	fl.StringVar(&f.serial, "serial", "", "converge the hosts in batches of N or N% (rolling), each batch finished before the next")
	fl.StringVar(&f.maxFail, "max-fail", "", "start no more hosts once more than N (or N%) failed or were unreachable (default: go on)")
	fl.StringVar(&f.binary, "remote-binary", "", "the kplay executable to send to the hosts, for another architecture (default: this one)")
	fl.StringSliceVar(&f.etcd, "coordination-etcd", nil, "etcd client URLs (v2 API) where once steps and rolling restarts take turns; wins over the inventory's")
	fl.StringVar(&f.cluster, "cluster", "", "the cluster's name in the coordination keys, /kplay/<cluster>/... (default: default)")
	cmd.MarkFlagsMutuallyExclusive("inventory", "hosts")
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		f.given = cmd.Flags().Changed("inventory") || cmd.Flags().Changed("hosts")
		switch {
		case cmd.Flags().Changed("inventory") && f.inventory == "":
			return errors.New("--inventory: empty; give an inventory file (see docs/fleet.md)")
		case cmd.Flags().Changed("hosts") && len(f.hosts) == 0:
			return errors.New("--hosts: no hosts; give user@address[:port],… (an empty --hosts never runs on this machine)")
		}
		f.set = nil
		for _, name := range fleetOnly {
			if cmd.Flags().Changed(name) {
				f.set = append(f.set, "--"+name)
			}
		}
		if !f.on() && len(f.set) > 0 {
			return fmt.Errorf("%s: needs --inventory or --hosts (a fleet run)", strings.Join(f.set, ", "))
		}
		return nil
	}
}

// defaultCluster is the cluster's name in the coordination keys unless
// --cluster or the inventory says.
const defaultCluster = "default"

// fleetApply checks or runs the playbook on every host of the fleet:
// evaluates it here for each host first (every var error of every host
// is reported before anything connects), then sends kplay and each
// host's bundle (fleet.Run) and reports the outcomes.
func fleetApply(ctx context.Context, o *options, mode, playbook string, stdout, stderr io.Writer) error {
	f := &o.fleet
	if err := checkDiffLimit(o); err != nil {
		return err
	}
	if f.forks < 1 {
		return fmt.Errorf("--forks %d: want at least 1", f.forks)
	}
	var serial fleet.Count
	var maxFail *fleet.Count
	var err error
	if f.serial != "" {
		if serial, err = fleet.ParseCount(f.serial); err != nil || serial.N == 0 {
			return fmt.Errorf("--serial %q: want a batch size of at least 1 such as 1, or a percentage such as 30%%", f.serial)
		}
	}
	if f.maxFail != "" {
		c, err := fleet.ParseCount(f.maxFail)
		if err != nil {
			return fmt.Errorf("--max-fail %q: %v", f.maxFail, err)
		}
		maxFail = &c
	}
	hosts, shared, coord, err := fleetHosts(o)
	if err != nil {
		return err
	}
	if _, err := ledgerName(o, playbook); err != nil {
		return err
	}
	vars, origin, err := readVars(o)
	if err != nil {
		return err
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	rel := playbook
	if filepath.IsAbs(playbook) {
		if rel, err = filepath.Rel(wd, playbook); err != nil {
			return err
		}
	}
	// Each host's plan, here: its errors before any connection, and the
	// files it needs.
	prep, err := fleet.Prepare(ctx, fleet.PrepareOptions{
		Hosts: hosts, Shared: shared, Inventory: f.inventory, Flags: vars, FlagOrigin: origin, WorkDir: wd,
		Job: fleet.Job{
			Mode: mode, Playbook: rel, Tags: o.tags, SkipTags: o.skipTags,
			Ledger: o.ledger, Prune: o.prune, LockTimeout: o.lockTimeout,
			MaxMemory: uint64(o.maxMemory), EvalTimeout: o.evalTimeout, Coordination: coord,
		},
		Evaluate: func(ctx context.Context, vars, origin map[string]string, keepGoing bool) (*engine.Plan, error) {
			return evaluateWith(ctx, o, playbook, vars, origin, io.Discard, keepGoing)
		},
	})
	if err != nil {
		return err
	}
	for _, w := range prep.Warnings {
		fmt.Fprintln(stderr, "kplay: warning: "+ui.Visible(w))
	}
	if len(prep.Errors) > 0 {
		for _, e := range prep.Errors {
			for _, line := range strings.Split(errorText(e.Err), "\n") {
				fmt.Fprintln(stderr, ui.Visible(e.Host)+": "+line)
			}
		}
		return fmt.Errorf("the playbook has errors for %s; no host was contacted", countHosts(prep.BadHosts))
	}
	binary, err := remoteBinary(f.binary)
	if err != nil {
		return err
	}
	if f.acceptNew {
		fmt.Fprintln(stderr, "kplay: warning: --ssh-insecure-accept-new: the key of a host that known_hosts does not list is trusted on first sight and added there")
	}
	var mu sync.Mutex // one line at a time on stderr
	say := func(line string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintln(stderr, line)
	}
	results := fleet.Run(ctx, hosts, fleet.Options{
		Forks: f.forks, Serial: serial, MaxFail: maxFail,
		Dial: fleet.DialOptions{InsecureAcceptNew: f.acceptNew, Accepted: func(h *fleet.Host, line string) {
			say(fmt.Sprintf("kplay: %s: added its host key to known_hosts: %s", h.Name, ui.Visible(line)))
		}},
		Binary: binary,
		Bundle: func(w io.Writer, h *fleet.Host) error {
			return fleet.WriteBundle(w, prep.Jobs[h.Name], prep.Files[h.Name])
		},
		Stderr: func(h *fleet.Host, line string) { say(h.Name + ": " + ui.Visible(line)) },
	})
	f.reported = true
	if o.output == "json" {
		err = fleet.WriteJSON(stdout, mode, playbook, results)
	} else {
		err = fleet.WriteText(stdout, results, fleet.ReportOptions{Mode: mode, DiffLimit: o.diffLimit, Verbose: o.verbose, Quiet: o.quiet})
	}
	if err != nil {
		return err
	}
	if prep.HasOnce && mode == "run" && len(coord.Endpoints) == 0 {
		if r := results[0]; r.Outcome != fleet.OK && r.Outcome != fleet.Changes {
			fmt.Fprintf(stderr, "kplay: warning: without coordination etcd, the once = \"cluster\" steps are left to the first host, %s, which did not finish: they may have run nowhere (run again, or give coordination: etcd in the inventory)\n", ui.Visible(r.Host.Name))
		}
	}
	var failed, changes int
	for _, r := range results {
		switch r.Outcome {
		case fleet.Changes:
			changes++
		case fleet.OK:
		default:
			failed++
		}
	}
	switch {
	case ctx.Err() != nil:
		return &interruptedError{msg: fmt.Sprintf("%s interrupted: hosts not yet started were not run", mode), cause: ctx.Err()}
	case failed > 0:
		return fmt.Errorf("%s of %d did not finish: %s", countHosts(failed), len(results), fleet.Summary(results))
	case mode == "check" && changes > 0:
		return errChanges
	}
	return nil
}

func countHosts(n int) string {
	if n == 1 {
		return "1 host"
	}
	return fmt.Sprintf("%d hosts", n)
}

// fleetHosts reads the fleet from --inventory or --hosts, with the
// flags that win over the inventory (--root, --ssh-*, the coordination
// flags), and returns the hosts, their shared vars and the coordination.
func fleetHosts(o *options) ([]*fleet.Host, map[string]string, fleet.Coordination, error) {
	f := &o.fleet
	var hosts []*fleet.Host
	shared := map[string]string{}
	coord := fleet.Coordination{Cluster: defaultCluster, TTL: fleet.DefaultTTL}
	if f.inventory != "" {
		data, err := readFlagFile("--inventory", f.inventory, fleet.InventoryLimit, "an inventory file, see docs/fleet.md")
		if err != nil {
			return nil, nil, coord, err
		}
		inv, err := fleet.LoadInventory(f.inventory, data)
		if err != nil {
			return nil, nil, coord, err
		}
		hosts, shared, coord.Endpoints = inv.Hosts, inv.Vars, inv.Etcd
		if inv.Cluster != "" {
			coord.Cluster = inv.Cluster
		}
		for _, h := range hosts {
			if f.identity != "" {
				h.SSH.Identity = f.identity
			}
			if f.knownHosts != "" {
				h.SSH.KnownHosts = f.knownHosts
			}
		}
	} else {
		var err error
		if hosts, err = fleet.ParseHosts(f.hosts, fleet.SSH{Identity: f.identity, KnownHosts: f.knownHosts}); err != nil {
			return nil, nil, coord, fmt.Errorf("--hosts: %w", err)
		}
	}
	if !filepath.IsAbs(o.root) {
		return nil, nil, coord, fmt.Errorf("--root %s: a fleet run needs an absolute root (a path on the hosts), such as /", o.root)
	}
	for _, h := range hosts {
		if o.root != "/" || h.Root == "" {
			h.Root = o.root // --root wins over the inventory's
		}
	}
	if len(f.etcd) > 0 {
		for _, u := range f.etcd {
			if err := fleet.CheckEtcdURL(u); err != nil {
				return nil, nil, coord, fmt.Errorf("--coordination-etcd: %w", err)
			}
		}
		coord.Endpoints = f.etcd
	}
	if f.cluster != "" {
		if err := fleet.CheckCluster(f.cluster); err != nil {
			return nil, nil, coord, fmt.Errorf("--cluster: %w", err)
		}
		coord.Cluster = f.cluster
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	coord.Run = hex.EncodeToString(id[:])
	coord.OnceHost = hosts[0].Name
	return hosts, shared, coord, nil
}

// remoteBinaryLimit bounds the executable sent to each host.
const remoteBinaryLimit = 512 << 20

// remoteBinary is the kplay executable the hosts run: --remote-binary,
// else this one.
func remoteBinary(name string) ([]byte, error) {
	what := "--remote-binary"
	if name == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find kplay's own executable to send to the hosts: %w (give one with --remote-binary)", err)
		}
		name, what = self, "kplay's own executable"
	}
	data, err := host.ReadRegular(nil, name, remoteBinaryLimit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(data) < 4 || string(data[:4]) != "\x7fELF" {
		return nil, fmt.Errorf("%s %s: not a Linux executable (ELF)", what, name)
	}
	return data, nil
}

// checkAgentDir accepts the directory the fleet bootstrap made for the
// agent: this user's, closed to others, holding nothing but the kplay
// binary. Anything else is refused untouched: the agent removes what it
// unpacks there when done.
func checkAgentDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 || !ok || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("agent: %s is not a private directory of this user (kplay agent is started by a fleet run, in a directory it made)", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	for _, e := range entries {
		if e.Name() != "kplay" {
			return fmt.Errorf("agent: %s holds %s: not a directory a fleet run made for kplay (it holds only kplay)", dir, e.Name())
		}
	}
	return nil
}

// removeAgentDir removes what the agent unpacked in dir, the binary, and
// dir itself once empty.
func removeAgentDir(dir string) {
	_ = os.RemoveAll(fleet.FilesDir(dir))
	_ = os.Remove(filepath.Join(dir, "kplay"))
	_ = os.Remove(dir)
}

// newAgentCmd is the hidden command a fleet run starts on each host: it
// reads the bundle from stdin and checks or runs the job as `kplay
// check|run --output json` would there.
func newAgentCmd(stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:    "agent DIR",
		Short:  "Run a fleet run's job on this host (started by kplay over SSH)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return agent(cmd.Context(), args[0], cmd.InOrStdin(), stdout, stderr)
		},
	}
}

// agent unpacks the bundle into dir (the private directory the remote
// script made, with the binary in it; the script removes it too, even
// when the agent cannot start or is killed),
// then applies the job with the shipped files: the playbook is read
// from dir/fs/<controller's working directory>, src= files through
// host.LocalSources, relative path vars resolve as on the controller.
func agent(ctx context.Context, dir string, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := checkAgentDir(dir); err != nil {
		return err
	}
	defer removeAgentDir(dir)
	job, err := fleet.ReadBundle(stdin, dir)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	// The controller keeps stdin open while it wants the job done: its
	// end (an interrupt there, the connection lost) stops the job as a
	// signal would.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		cancel()
	}()
	files := fleet.FilesDir(dir)
	wd := filepath.Join(files, job.WorkDir)
	if err := os.MkdirAll(wd, 0o700); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if err := os.Chdir(wd); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	local, err := host.OpenLocalSources(files, job.WorkDir)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer local.Close()
	co, err := job.Coordination.Coordinator(job.Host)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	vars := job.Vars
	if vars == nil {
		vars = map[string]string{}
	}
	o := &options{
		root: job.Root, varMap: vars, tags: job.Tags, skipTags: job.SkipTags,
		output: "json", lockTimeout: job.LockTimeout, maxMemory: memorySize(job.MaxMemory),
		evalTimeout: job.EvalTimeout, ledger: job.Ledger, prune: job.Prune,
		workDir: job.WorkDir, local: local,
	}
	if o.maxMemory == 0 {
		o.maxMemory = engine.DefaultMaxMemory
	}
	if o.evalTimeout <= 0 {
		o.evalTimeout = engine.DefaultEvalTimeout
	}
	return apply(engine.WithCoordinator(ctx, co), o, job.Mode, job.Playbook, stdout, stderr)
}
