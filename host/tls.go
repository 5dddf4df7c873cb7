package host

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
)

// TLSFiles names the TLS files of a client, on the machine running kplay
// (like file(src=)): CAFile, a PEM bundle that server certificates must
// chain to, instead of the system's roots; and CertFile with KeyFile, a
// client certificate to present when a server asks for one. The zero
// value verifies servers against the system's roots and presents no
// certificate. There is no way to skip verification.
type TLSFiles struct {
	CAFile   string
	CertFile string // with KeyFile
	KeyFile  string
}

// Config reads the files now and returns the TLS configuration they make
// (TLS 1.2 or later), or nil, nil for the zero TLSFiles. Errors name the
// file and say what is wrong with it (unreadable, no PEM certificate in
// the CA file, a certificate without its key or the reverse, a pair that
// does not match); they never hold key material.
func (f TLSFiles) Config() (*tls.Config, error) {
	if f == (TLSFiles{}) {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file %s: %w", f.CAFile, cause(err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", f.CAFile)
		}
		tc.RootCAs = pool
	}
	switch {
	case f.CertFile != "" && f.KeyFile == "":
		return nil, fmt.Errorf("client certificate %s has no key file (give both)", f.CertFile)
	case f.CertFile == "" && f.KeyFile != "":
		return nil, fmt.Errorf("key file %s has no client certificate (give both)", f.KeyFile)
	case f.CertFile != "":
		certPEM, err := os.ReadFile(f.CertFile)
		if err != nil {
			return nil, fmt.Errorf("read client certificate %s: %w", f.CertFile, cause(err))
		}
		keyPEM, err := os.ReadFile(f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("read key file %s: %w", f.KeyFile, cause(err))
		}
		// X509KeyPair's errors describe the PEM blocks, never the key.
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("client certificate %s and key %s: %w", f.CertFile, f.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// IsTLSError reports whether err is a failed TLS handshake that trying
// again cannot mend: a server certificate that does not verify, or an
// alert from the server (it refused the client certificate, or wants
// one).
func IsTLSError(err error) bool {
	var (
		cv *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		he x509.HostnameError
		ci x509.CertificateInvalidError
		al tls.AlertError
		rh tls.RecordHeaderError
		op *net.OpError
	)
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) ||
		errors.As(err, &al) || errors.As(err, &rh) ||
		// crypto/tls reports an alert the peer sent as this Op.
		errors.As(err, &op) && op.Op == "remote error"
}
