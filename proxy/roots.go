package proxy

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"syscall"
)

// systemBundles are where systems keep their trust roots, in the order Go's crypto/x509
// looks. Only these paths are read: SSL_CERT_FILE and SSL_CERT_DIR, which crypto/x509
// honours, are the agent's to set (DESIGN.md section 12).
var systemBundles = []string{
	"/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu, Gentoo, Arch
	"/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL 6
	"/etc/ssl/ca-bundle.pem",                            // openSUSE
	"/etc/pki/tls/cacert.pem",                           // OpenELEC
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // CentOS, RHEL 7
	"/etc/ssl/cert.pem",                                 // Alpine, macOS
}

// ErrRoots is a system without a trust store we can use.
var ErrRoots = errors.New("no system trust roots")

// SystemRoots reads the system's trust roots from its fixed location: a file only root
// can change, as PEM.
func SystemRoots() ([]byte, error) {
	for _, p := range systemBundles {
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
			return nil, fmt.Errorf("%w: %s may be changed by someone other than root (mode %v)", ErrRoots, p, fi.Mode().Perm())
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrRoots, err)
		}
		return data, nil
	}
	return nil, fmt.Errorf("%w: none of %v exists; install the ca-certificates package", ErrRoots, systemBundles)
}

// pool makes a certificate pool of PEM roots and extra certificates.
func pool(system []byte, extra []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(system)
	for _, c := range extra {
		p.AddCert(c)
	}
	return p
}
