package fleet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// DialOptions are how the controller connects to every host.
type DialOptions struct {
	// InsecureAcceptNew accepts the key of a host that known_hosts does
	// not list, and adds it there (OpenSSH's StrictHostKeyChecking=
	// accept-new). A host whose listed key differs is refused always.
	InsecureAcceptNew bool
	// Timeout bounds the TCP connection and the SSH handshake; 0 means
	// DefaultDialTimeout.
	Timeout time.Duration
	// Accepted, when set, is told each key InsecureAcceptNew added.
	Accepted func(h *Host, line string)
}

// DefaultDialTimeout is how long a host may take to answer and finish the
// SSH handshake.
const DefaultDialTimeout = 15 * time.Second

// UnreachableError is a host kplay could not reach: no connection, a
// host key that known_hosts does not vouch for, or authentication
// refused. Its host ran nothing.
type UnreachableError struct {
	Host string
	Err  error
}

func (e *UnreachableError) Error() string { return e.Host + ": unreachable: " + e.Err.Error() }
func (e *UnreachableError) Unwrap() error { return e.Err }

// knownHostsMu serialises additions to known_hosts files (accept-new), so
// that hosts dialled at once do not interleave their lines.
var knownHostsMu sync.Mutex

// Dial opens the SSH connection to h: the host key must be one that
// h.SSH.KnownHosts lists for [address]:port (or address on port 22),
// checked with the host key algorithms of those entries only, so that a
// host offering another key type first is not refused for it (x/crypto
// would otherwise negotiate its own preferred type and then find no
// matching line). Keys come from h.SSH.Identity, then from ssh-agent.
func Dial(ctx context.Context, h *Host, opts DialOptions) (*ssh.Client, error) {
	client, err := dial(ctx, h, opts)
	if err != nil {
		return nil, &UnreachableError{Host: h.Name, Err: err}
	}
	return client, nil
}

func dial(ctx context.Context, h *Host, opts DialOptions) (*ssh.Client, error) {
	khFile := h.SSH.KnownHosts
	if khFile == "" {
		khFile = DefaultKnownHosts()
	}
	if khFile == "" {
		return nil, errors.New("no known_hosts file: give one with known_hosts: in the inventory or --ssh-known-hosts")
	}
	check, err := openKnownHosts(khFile, opts.InsecureAcceptNew)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(h.Address, strconv.Itoa(h.SSH.Port))
	algos, err := hostKeyAlgorithms(check, addr)
	if err != nil {
		return nil, err
	}
	if len(algos) == 0 && !opts.InsecureAcceptNew {
		return nil, fmt.Errorf("%s lists no key for %s: add the host's key (ssh-keyscan -p %d %s >> %s, after checking its fingerprint), or give --ssh-insecure-accept-new", khFile, knownhosts.Normalize(addr), h.SSH.Port, h.Address, khFile)
	}
	auth, closeAuth, err := authMethods(h)
	if err != nil {
		return nil, err
	}
	defer closeAuth()
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = DefaultDialTimeout
	}
	cfg := &ssh.ClientConfig{
		User:              h.SSH.User,
		Auth:              auth,
		HostKeyAlgorithms: algos,
		Timeout:           timeout,
		HostKeyCallback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			err := check(hostname, remote, key)
			var ke *knownhosts.KeyError
			if errors.As(err, &ke) && len(ke.Want) == 0 && opts.InsecureAcceptNew {
				return acceptNew(khFile, h, addr, key, opts)
			}
			if errors.As(err, &ke) && len(ke.Want) > 0 && certAuthorityLine(ke.Want[0].Filename, ke.Want[0].Line) {
				return fmt.Errorf("%s:%d is a @cert-authority line, and kplay does not check host certificates: list %s's own key there (ssh-keyscan -p %d %s, after checking its fingerprint)",
					ke.Want[0].Filename, ke.Want[0].Line, h.Address, h.SSH.Port, h.Address)
			}
			if errors.As(err, &ke) && len(ke.Want) > 0 {
				return fmt.Errorf("host key mismatch: %s offers %s %s, but %s:%d lists another key for it; if the host was reinstalled, check the new key and replace that line (a changed key may also be an attack)",
					h.Address, key.Type(), ssh.FingerprintSHA256(key), ke.Want[0].Filename, ke.Want[0].Line)
			}
			return err
		},
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The handshake honours ctx too: an interrupt closes the connection.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, handshakeError(err, h)
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// handshakeError says what a person does about a failed handshake.
func handshakeError(err error, h *Host) error {
	var ke *knownhosts.KeyError
	if errors.As(err, &ke) {
		return err
	}
	msg := err.Error()
	if strings.Contains(msg, "unable to authenticate") || strings.Contains(msg, "no supported methods remain") {
		how := "the agent's keys"
		if h.SSH.Identity != "" {
			how = h.SSH.Identity
		}
		return fmt.Errorf("authentication as %s refused (tried %s): is its public key in %s's authorized_keys? (%v)", h.SSH.User, how, h.SSH.User, err)
	}
	return err
}

// certAuthorityLine reports whether line n of the known_hosts file is a
// @cert-authority line.
func certAuthorityLine(file string, n int) bool {
	data, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	lines := strings.Split(string(data), "\n")
	return n >= 1 && n <= len(lines) && strings.HasPrefix(strings.TrimSpace(lines[n-1]), "@cert-authority")
}

// openKnownHosts reads a known_hosts file. A missing file is an empty one
// when new keys may be accepted into it.
func openKnownHosts(file string, acceptNew bool) (ssh.HostKeyCallback, error) {
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) && acceptNew {
		return knownhosts.New(os.DevNull)
	}
	cb, err := knownhosts.New(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("known_hosts %s does not exist: give the file that lists the hosts' keys (known_hosts: in the inventory, or --ssh-known-hosts), make it with ssh-keyscan after checking the fingerprints, or give --ssh-insecure-accept-new", file)
	}
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	return cb, nil
}

// hostKeyAlgorithms are the SSH host key algorithms of the keys that
// check knows for addr, asked the way x/crypto allows: by checking a
// throwaway key, whose KeyError lists the known ones (Want).
func hostKeyAlgorithms(check ssh.HostKeyCallback, addr string) ([]string, error) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	tcp, _ := net.ResolveTCPAddr("tcp", addr)
	if tcp == nil {
		tcp = &net.TCPAddr{}
	}
	err = check(addr, tcp, probe)
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		if err == nil {
			// Impossible for a fresh key, unless a line lists it.
			return nil, errors.New("known_hosts accepted a random key")
		}
		return nil, err
	}
	var algos []string
	for _, k := range ke.Want {
		for _, a := range algorithmsOf(k.Key.Type()) {
			if !slices.Contains(algos, a) {
				algos = append(algos, a)
			}
		}
	}
	return algos, nil
}

// algorithmsOf lists the signature algorithms a host key of keyType may
// use: an RSA key signs with SHA-2 (ssh-rsa's SHA-1 is refused by
// OpenSSH 8.8 and later) or SHA-1.
func algorithmsOf(keyType string) []string {
	switch keyType {
	case ssh.KeyAlgoRSA:
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	case ssh.CertAlgoRSAv01:
		return []string{ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01, ssh.CertAlgoRSAv01}
	}
	return []string{keyType}
}

// acceptNew adds key for addr to file, as OpenSSH's accept-new does.
func acceptNew(file string, h *Host, addr string, key ssh.PublicKey, opts DialOptions) error {
	knownHostsMu.Lock()
	defer knownHostsMu.Unlock()
	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, key)
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("accept new host key: %w", err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("accept new host key: %w", err)
	}
	_, err = f.WriteString(line + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("accept new host key: %w", err)
	}
	if opts.Accepted != nil {
		opts.Accepted(h, line)
	}
	return nil
}

// authMethods are the keys kplay offers: the identity file, then the
// agent's keys. The returned func closes the agent connection.
func authMethods(h *Host) ([]ssh.AuthMethod, func(), error) {
	var signers []ssh.Signer
	if h.SSH.Identity != "" {
		data, err := os.ReadFile(h.SSH.Identity)
		if err != nil {
			return nil, nil, fmt.Errorf("identity: %w", err)
		}
		signer, err := ssh.ParsePrivateKey(data)
		var missing *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &missing):
			return nil, nil, fmt.Errorf("identity %s is encrypted: add it to ssh-agent (ssh-add %s) and leave identity out", h.SSH.Identity, h.SSH.Identity)
		case err != nil:
			return nil, nil, fmt.Errorf("identity %s: %v", h.SSH.Identity, err)
		}
		signers = append(signers, signer)
	}
	closeAgent := func() {}
	var agentSigners func() ([]ssh.Signer, error)
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		conn, err := net.Dial("unix", sock)
		if err == nil {
			closeAgent = func() { conn.Close() }
			agentSigners = agent.NewClient(conn).Signers
		}
	}
	if len(signers) == 0 && agentSigners == nil {
		return nil, nil, errors.New("no key to log in with: give identity: in the inventory or --ssh-identity, or run ssh-agent")
	}
	// One method offering every key: x/crypto tries each in turn, and a
	// server that refuses them all is reported once, never prompted.
	method := ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		all := slices.Clone(signers)
		if agentSigners != nil {
			if more, err := agentSigners(); err == nil {
				all = append(all, more...)
			}
		}
		return all, nil
	})
	return []ssh.AuthMethod{method}, closeAgent, nil
}
