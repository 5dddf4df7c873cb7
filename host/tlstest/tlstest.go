// Package tlstest makes a private certificate authority for tests, the
// way a cluster has one: a CA certificate in a PEM file, certificates it
// signs for servers on 127.0.0.1 and for clients, and https servers
// (net/http/httptest, on 127.0.0.1) that present them and, if asked,
// require a client certificate that the CA signed. Keys are ECDSA P-256,
// which are quick to make.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority whose certificate is in CertFile.
type CA struct {
	CertFile string // PEM certificate of the CA, to give as ca=
	Pool     *x509.CertPool
	cert     *x509.Certificate
	key      *ecdsa.PrivateKey
	dir      string
}

// NewCA makes a CA named name and writes its certificate to name.pem in
// a temp dir of t.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{cert: cert, key: key, dir: t.TempDir(), Pool: x509.NewCertPool()}
	ca.Pool.AddCert(cert)
	ca.CertFile = ca.write(t, name+".pem", "CERTIFICATE", der)
	return ca
}

// Issue makes a certificate named name that the CA signs: for a server
// on 127.0.0.1 and localhost, or for a client. It writes the certificate
// and its key to name.pem and name-key.pem beside the CA's, and returns
// their paths and the pair.
func (ca *CA) Issue(t testing.TB, name string, server bool) (certFile, keyFile string, pair tls.Certificate) {
	t.Helper()
	return ca.issue(t, name, pkix.Name{CommonName: name}, server)
}

// IssueClient makes a client certificate for user in groups (its
// organizations, as Kubernetes reads them: "system:masters"), as Issue
// does.
func (ca *CA) IssueClient(t testing.TB, user string, groups ...string) (certFile, keyFile string, pair tls.Certificate) {
	t.Helper()
	return ca.issue(t, user, pkix.Name{CommonName: user, Organization: groups}, false)
}

func (ca *CA) issue(t testing.TB, name string, subject pkix.Name, server bool) (certFile, keyFile string, pair tls.Certificate) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      subject,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = ca.write(t, name+".pem", "CERTIFICATE", der)
	keyFile = ca.write(t, name+"-key.pem", "PRIVATE KEY", keyDER)
	pair = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return certFile, keyFile, pair
}

// NewServer serves h over https on 127.0.0.1 with a certificate the CA
// signed, until the test ends. With clientCert, the server requires a
// client certificate that the CA signed. Its log of failed handshakes is
// dropped: tests fail handshakes on purpose.
func (ca *CA) NewServer(t testing.TB, h http.Handler, clientCert bool) *httptest.Server {
	t.Helper()
	_, _, pair := ca.Issue(t, "server", true)
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if clientCert {
		srv.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		srv.TLS.ClientCAs = ca.Pool
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func (ca *CA) write(t testing.TB, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(ca.dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
