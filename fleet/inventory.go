// Package fleet runs a playbook on several machines over SSH: the
// controller (the machine where kplay is started) evaluates the playbook
// once per host to report every var error before it connects, then, for
// each host, opens one SSH connection, sends its own binary and a bundle
// (the playbook files, every src= file, the resolved vars) on one exec,
// and reads back the JSON document of the same `kplay run|check` that a
// person would run on that host. The controller only orchestrates: each
// host's work goes through the local code path.
//
// Read Inventory (which hosts, with which vars and SSH settings), Dial
// (SSH with strict known_hosts), Bundle (what is shipped) and Run (the
// batches, forks and outcomes), in that order. docs/fleet.md is the
// user's side of it.
package fleet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/kplay-dev/kplay/engine"
)

// SSH is how to reach a host: defaults in the inventory's ssh: section,
// overridden per host.
type SSH struct {
	// User is the login name; default root.
	User string
	// Port is the TCP port; default 22.
	Port int
	// Identity is a private key file (OpenSSH or PEM format, not
	// encrypted: an encrypted key is used through ssh-agent). "" uses
	// only the agent ($SSH_AUTH_SOCK).
	Identity string
	// KnownHosts is the known_hosts file that holds each host's key;
	// default ~/.ssh/known_hosts.
	KnownHosts string
}

// Host is one machine of the fleet.
type Host struct {
	// Name is how kplay reports the host: the inventory's key, or the
	// address of a --hosts entry.
	Name string
	// Address is an IP address or a DNS name.
	Address string
	SSH     SSH
	// Root is the root directory kplay converges on the host; default /.
	Root string
	// Vars are the host's own vars; they win over the inventory's shared
	// vars (Inventory.Vars), and --var wins over both.
	Vars map[string]string
}

// Target is user@address:port, as the host is dialled.
func (h *Host) Target() string {
	return h.SSH.User + "@" + net.JoinHostPort(h.Address, strconv.Itoa(h.SSH.Port))
}

// Inventory is the fleet: its hosts in the order the file lists them and
// the vars they share.
type Inventory struct {
	Hosts []*Host
	Vars  map[string]string
	// Etcd and Cluster are the coordination: section: the etcd client
	// URLs that once steps and rolling restarts coordinate through, and
	// the cluster's name in its keys ("" for the default).
	Etcd    []string
	Cluster string
}

// defaults fills what neither the inventory nor the host said.
func (s *SSH) defaults() {
	if s.User == "" {
		s.User = "root"
	}
	if s.Port == 0 {
		s.Port = 22
	}
}

// DefaultKnownHosts is ~/.ssh/known_hosts, or "" when there is no home.
func DefaultKnownHosts() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".ssh", "known_hosts")
}

// InventoryLimit is the largest inventory file kplay reads.
const InventoryLimit = 1 << 20

// LoadInventory reads an inventory file:
//
//	ssh:                        # defaults for every host; each may override them
//	  user: root
//	  port: 22
//	  identity: keys/id_ed25519          # relative to the inventory file
//	  known_hosts: keys/known_hosts      # default: ~/.ssh/known_hosts
//	vars:
//	  ETCD_ENDPOINTS: http://10.0.0.2:2379
//	hosts:
//	  m1: {address: 10.0.0.11, vars: {ADVERTISE_IP: 10.0.0.11}}
//	  m2: {address: 10.0.0.12, port: 2222, root: /srv/m2, vars: {ADVERTISE_IP: 10.0.0.12}}
//
// A host takes user, port, identity, known_hosts and root (the root kplay
// converges there, default /) besides address and vars. Relative files
// are relative to the inventory's directory. A var's value is a YAML
// scalar, read as its text. Unknown keys, a duplicate host and a missing
// address are errors naming the file and line; every error is reported,
// not just the first.
func LoadInventory(path string, data []byte) (*Inventory, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty; list the hosts under hosts: (see docs/fleet.md)", path)
		}
		return nil, fmt.Errorf("%s: %v", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		line := 0
		if err == nil {
			line = more.Line
		}
		return nil, fmt.Errorf("%s:%d: a second YAML document: an inventory is one document (remove the ---)", path, line)
	}
	r := &invReader{path: path, dir: filepath.Dir(path)}
	inv := r.inventory(&doc)
	if len(r.errs) > 0 {
		return nil, InventoryErrors(r.errs)
	}
	return inv, nil
}

// InventoryErrors are every problem of an inventory file, each starting
// with file:line:col.
type InventoryErrors []error

func (e InventoryErrors) Error() string { return errors.Join(e...).Error() }

// invReader collects every error of one inventory file.
type invReader struct {
	path, dir string
	errs      []error
}

func (r *invReader) errorf(n *yaml.Node, format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf("%s:%d:%d: %s", r.path, n.Line, n.Column, fmt.Sprintf(format, args...)))
}

// mapping returns the key/value pairs of n, a YAML mapping, reporting
// duplicate keys and keys that are not in allowed (nil allows any).
func (r *invReader) mapping(n *yaml.Node, what string, allowed ...string) [][2]*yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		r.errorf(n, "%s: want a mapping", what)
		return nil
	}
	var pairs [][2]*yaml.Node
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			r.errorf(k, "%s: a key must be a name", what)
			continue
		}
		if seen[k.Value] {
			r.errorf(k, "%s: %s given twice", what, k.Value)
			continue
		}
		seen[k.Value] = true
		if allowed != nil && !slices.Contains(allowed, k.Value) {
			hint := ""
			if s := engine.Suggest(k.Value, allowed); s != "" {
				hint = fmt.Sprintf(" (did you mean %s?)", s)
			}
			r.errorf(k, "%s: unknown key %q%s; want one of %s", what, k.Value, hint, strings.Join(allowed, ", "))
			continue
		}
		pairs = append(pairs, [2]*yaml.Node{k, v})
	}
	return pairs
}

func (r *invReader) inventory(doc *yaml.Node) *Inventory {
	inv := &Inventory{Vars: map[string]string{}}
	var defaults SSH
	var hosts *yaml.Node
	for _, kv := range r.mapping(doc, "inventory", "ssh", "vars", "hosts", "coordination") {
		switch kv[0].Value {
		case "coordination":
			r.coordination(kv[1], inv)
		case "ssh":
			r.ssh(kv[1], "ssh", &defaults)
		case "vars":
			inv.Vars = r.vars(kv[1], "vars")
		case "hosts":
			hosts = kv[1]
		}
	}
	if hosts == nil {
		r.errs = append(r.errs, fmt.Errorf("%s: no hosts: list them under hosts: (name: {address: …})", r.path))
		return inv
	}
	pairs := r.mapping(hosts, "hosts")
	if len(pairs) == 0 && hosts.Kind == yaml.MappingNode {
		r.errorf(hosts, "hosts: empty; list at least one host (name: {address: …})")
	}
	for _, kv := range pairs {
		name := kv[0].Value
		if err := hostNameError(name); err != nil {
			r.errorf(kv[0], "hosts: %s: %v", name, err)
			continue
		}
		h := &Host{Name: name, SSH: defaults, Root: "/", Vars: map[string]string{}}
		what := "hosts: " + name
		for _, f := range r.mapping(kv[1], what, "address", "user", "port", "identity", "known_hosts", "root", "vars") {
			switch f[0].Value {
			case "address":
				h.Address = r.scalar(f[1], what+": address")
				if h.Address != "" {
					if err := addressError(h.Address); err != nil {
						r.errorf(f[1], "%s: address %q: %v", what, h.Address, err)
					}
				}
			case "root":
				h.Root = r.scalar(f[1], what+": root")
				if !filepath.IsAbs(h.Root) {
					r.errorf(f[1], "%s: root %q: want an absolute path such as /", what, h.Root)
				}
			case "vars":
				h.Vars = r.vars(f[1], what+": vars")
			default:
				r.sshField(f[0], f[1], what, &h.SSH)
			}
		}
		if h.Address == "" {
			r.errorf(kv[0], "%s: no address (give address: 10.0.0.11 or a DNS name)", what)
		}
		h.SSH.defaults()
		for _, o := range inv.Hosts {
			if o.Address == h.Address && o.SSH.Port == h.SSH.Port && o.Root == h.Root && h.Address != "" {
				r.errorf(kv[0], "%s: the same machine and root as %s (%s): the two would converge one root at once", what, o.Name, h.Target())
			}
		}
		inv.Hosts = append(inv.Hosts, h)
	}
	return inv
}

// coordination reads coordination: {etcd: URL[,URL…] or a list, cluster: NAME}.
func (r *invReader) coordination(n *yaml.Node, inv *Inventory) {
	for _, f := range r.mapping(n, "coordination", "etcd", "cluster") {
		switch f[0].Value {
		case "etcd":
			var urls []string
			if f[1].Kind == yaml.SequenceNode {
				for _, item := range f[1].Content {
					urls = append(urls, r.scalar(item, "coordination: etcd"))
				}
			} else {
				urls = strings.Split(r.scalar(f[1], "coordination: etcd"), ",")
			}
			for _, u := range urls {
				if err := CheckEtcdURL(u); err != nil {
					r.errorf(f[1], "coordination: %v", err)
				}
			}
			inv.Etcd = urls
		case "cluster":
			inv.Cluster = r.scalar(f[1], "coordination: cluster")
			if err := CheckCluster(inv.Cluster); err != nil {
				r.errorf(f[1], "coordination: %v", err)
			}
		}
	}
}

func (r *invReader) ssh(n *yaml.Node, what string, s *SSH) {
	for _, f := range r.mapping(n, what, "user", "port", "identity", "known_hosts") {
		r.sshField(f[0], f[1], what, s)
	}
}

func (r *invReader) sshField(k, v *yaml.Node, what string, s *SSH) {
	text := r.scalar(v, what+": "+k.Value)
	switch k.Value {
	case "user":
		if err := userError(text); err != nil {
			r.errorf(v, "%s: user %q: %v", what, text, err)
		}
		s.User = text
	case "port":
		p, err := parsePort(text)
		if err != nil {
			r.errorf(v, "%s: port %q: %v", what, text, err)
		}
		s.Port = p
	case "identity":
		s.Identity = r.file(text)
	case "known_hosts":
		s.KnownHosts = r.file(text)
	}
}

// file is name relative to the inventory's directory, or to the home
// directory for ~/name, as ssh reads it.
func (r *invReader) file(name string) string {
	if rest, ok := strings.CutPrefix(name, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	if name == "" || filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(r.dir, name)
}

func (r *invReader) scalar(n *yaml.Node, what string) string {
	if n.Kind != yaml.ScalarNode {
		r.errorf(n, "%s: want a single value", what)
		return ""
	}
	return n.Value
}

func (r *invReader) vars(n *yaml.Node, what string) map[string]string {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return map[string]string{}
	}
	vars, err := engine.VarsFromYAML(r.path, n)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s (in %s)", err, what))
		return map[string]string{}
	}
	return vars
}

// hostNameError says what is wrong with an inventory host name: it names
// the host in output, in etcd keys and in file names, so it is a DNS
// label or name of letters, digits, '-', '_' and '.'.
func hostNameError(name string) error {
	if name == "" || len(name) > 253 {
		return errors.New("want a name of 1 to 253 characters")
	}
	if i := strings.IndexFunc(name, notNameChar); i >= 0 {
		return fmt.Errorf("character %q: a host name holds letters, digits, '-', '_' and '.'", name[i])
	}
	return nil
}

// notNameChar reports whether c is outside the letters, digits, '-', '_'
// and '.' that host names and login names are made of.
func notNameChar(c rune) bool {
	return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.')
}

// addressError says what is wrong with a host address: an IP address or
// a DNS name, never something ssh would read as an option or a user.
func addressError(a string) error {
	if net.ParseIP(a) != nil {
		return nil
	}
	if strings.HasPrefix(a, "-") || strings.HasPrefix(a, ".") {
		return errors.New("want an IP address or a DNS name")
	}
	if err := hostNameError(a); err != nil || strings.Contains(a, "_") {
		return errors.New("want an IP address or a DNS name")
	}
	return nil
}

// userError says what is wrong with a login name: POSIX's portable
// character set, as useradd takes.
func userError(u string) error {
	if u == "" || len(u) > 32 || strings.HasPrefix(u, "-") || strings.ContainsFunc(u, notNameChar) {
		return errors.New("want a login name such as root")
	}
	return nil
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, errors.New("want a TCP port from 1 to 65535")
	}
	return p, nil
}

// ParseHosts reads the short form of a fleet, --hosts
// user@address[:port],… (an IPv6 address in brackets: [fd00::1]:22),
// with defaults for what an entry leaves out. Each host is named by its
// address (with :port when not 22).
func ParseHosts(list []string, defaults SSH) ([]*Host, error) {
	defaults.defaults()
	var hosts []*Host
	var errs []error
	seen := map[string]bool{}
	for _, entry := range list {
		h, err := parseHost(entry, defaults)
		if err != nil {
			errs = append(errs, fmt.Errorf("--hosts %q: %v", entry, err))
			continue
		}
		if seen[h.Name] {
			errs = append(errs, fmt.Errorf("--hosts: %s given twice", h.Name))
			continue
		}
		seen[h.Name] = true
		hosts = append(hosts, h)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(hosts) == 0 {
		return nil, errors.New("--hosts: no hosts (give user@address[:port],…)")
	}
	return hosts, nil
}

func parseHost(entry string, defaults SSH) (*Host, error) {
	h := &Host{SSH: defaults, Root: "/", Vars: map[string]string{}}
	rest := entry
	if user, addr, ok := strings.Cut(entry, "@"); ok {
		if err := userError(user); err != nil {
			return nil, fmt.Errorf("user %q: %v", user, err)
		}
		h.SSH.User, rest = user, addr
	}
	addr, port := rest, ""
	if host, p, err := net.SplitHostPort(rest); err == nil {
		addr, port = host, p
	} else if strings.HasPrefix(rest, "[") && strings.HasSuffix(rest, "]") {
		addr = rest[1 : len(rest)-1]
	}
	if port != "" {
		p, err := parsePort(port)
		if err != nil {
			return nil, fmt.Errorf("port %q: %v", port, err)
		}
		h.SSH.Port = p
	}
	if err := addressError(addr); err != nil {
		return nil, fmt.Errorf("address %q: %v (give user@address[:port])", addr, err)
	}
	h.Address, h.Name = addr, addr
	if h.SSH.Port != 22 {
		h.Name = net.JoinHostPort(addr, strconv.Itoa(h.SSH.Port))
	}
	return h, nil
}

// Vars are the vars of host h: the inventory's shared vars, then the
// host's own, then flags (--var and --vars-file), each winning over the
// one before.
func Vars(shared map[string]string, h *Host, flags map[string]string) map[string]string {
	vars := map[string]string{}
	for _, m := range []map[string]string{shared, h.Vars, flags} {
		for k, v := range m {
			vars[k] = v
		}
	}
	return vars
}
