// Package certs provides the server's TLS material: loading a configured
// certificate, or generating and keeping a self-signed one in the data
// directory, the generated admin token, and the server-side tls.Config.
//
// Generated files are written atomically (temporary file, fsync, rename) so
// a crash leaves either the old file or the complete new one, never a
// truncated key. There is no locking here: only one process should generate
// in a data directory at a time (the running server), since two generating at
// once could pair one's key with the other's certificate.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Validity is the lifetime of a generated certificate. It is long because a
// self-signed certificate is trusted by pinning, not by expiry, and an
// unattended server should not break after a year.
const Validity = 10 * 365 * 24 * time.Hour

// File modes of generated material: only the server's user may read the
// secrets or list the directories holding them.
const (
	dirMode    fs.FileMode = 0o700
	secretMode fs.FileMode = 0o600
	certMode   fs.FileMode = 0o644 // public anyway; readable for clients to pin
)

// Load reads a PEM certificate chain and its private key, as given by
// --tls-cert and --tls-key. The returned certificate has Leaf set.
func Load(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: load %s and %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil {
		// Filled in by LoadX509KeyPair since Go 1.23; kept for callers that
		// read the expiry or names for logging.
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certs: parse %s: %w", certFile, err)
		}
	}
	return &cert, nil
}

// Paths returns where EnsureSelfSigned keeps the certificate and key of
// domain: <dataDir>/tls/<domain>.crt and .key.
func Paths(dataDir, domain string) (certPath, keyPath string) {
	base := filepath.Join(dataDir, "tls", domain)
	return base + ".crt", base + ".key"
}

// EnsureSelfSigned returns the paths of a certificate and key for domain in
// dataDir, generating them when either file is missing (created is then
// true). The generated certificate is ECDSA P-256, self-signed, valid for
// Validity, for domain, *.domain (so subdomain services such as upload or
// MUC are covered), localhost, 127.0.0.1 and ::1 (so local tests can verify
// it). Existing files are reused as they are, without checking them: Load
// reports a damaged pair.
func EnsureSelfSigned(dataDir, domain string) (certPath, keyPath string, created bool, err error) {
	if domain == "" || domain == "." || domain == ".." || strings.ContainsAny(domain, `/\`) {
		// The domain becomes a file name; refuse anything that would
		// escape the tls directory.
		return "", "", false, fmt.Errorf("certs: invalid domain %q", domain)
	}
	certPath, keyPath = Paths(dataDir, domain)
	certOK, err := exists(certPath)
	if err != nil {
		return "", "", false, err
	}
	keyOK, err := exists(keyPath)
	if err != nil {
		return "", "", false, err
	}
	if certOK && keyOK {
		return certPath, keyPath, false, nil
	}

	certPEM, keyPEM, err := generate(domain, time.Now())
	if err != nil {
		return "", "", false, err
	}
	if err := mkdirs(filepath.Dir(certPath)); err != nil {
		return "", "", false, err
	}
	// Key first: a crash between the renames leaves a key without a
	// certificate, which the next start regenerates, rather than a new
	// certificate next to a key that does not match it.
	if err := writeAtomic(keyPath, keyPEM, secretMode); err != nil {
		return "", "", false, err
	}
	if err := writeAtomic(certPath, certPEM, certMode); err != nil {
		return "", "", false, err
	}
	return certPath, keyPath, true, nil
}

// SelfSigned makes an in-memory self-signed certificate for domain, the
// same kind EnsureSelfSigned writes to disk, and returns it with its PEM
// (e.g. for a client's trust pool). Tests use it for TLS on loopback.
func SelfSigned(domain string) (tls.Certificate, []byte, error) {
	certPEM, keyPEM, err := generate(domain, time.Now())
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("certs: self-signed pair: %w", err)
	}
	return cert, certPEM, nil
}

// generate makes a self-signed certificate for domain and returns it and its
// private key (PKCS #8) in PEM.
func generate(domain string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("certs: serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: domain, Organization: []string{"Parley self-signed"}},
		// An hour back tolerates clients whose clock is slightly behind.
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(Validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip := net.ParseIP(domain); ip != nil {
		if !ip.IsLoopback() {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		}
		tmpl.DNSNames = []string{"localhost"}
	} else {
		tmpl.DNSNames = []string{domain, "*." + domain}
		if domain != "localhost" {
			tmpl.DNSNames = append(tmpl.DNSNames, "localhost")
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: marshal key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// AdminTokenFile is the name of the generated admin token in the data
// directory.
const AdminTokenFile = "admin-token"

// EnsureAdminToken returns the admin bearer token kept in
// <dataDir>/admin-token, creating it (created is then true) when the file
// is missing or empty. A new token is 32 random bytes in unpadded base64url
// (43 characters, safe in a header and a URL), written without a trailing
// newline so `$(cat admin-token)` and a plain file read agree; surrounding
// white space in an existing file is ignored.
func EnsureAdminToken(dataDir string) (token string, created bool, err error) {
	path := filepath.Join(dataDir, AdminTokenFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, false, nil
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, fmt.Errorf("certs: read admin token: %w", err)
	}

	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", false, fmt.Errorf("certs: admin token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(raw)
	if err := mkdirs(dataDir); err != nil {
		return "", false, err
	}
	if err := writeAtomic(path, []byte(token), secretMode); err != nil {
		return "", false, err
	}
	return token, true, nil
}

// ServerTLSConfig returns the server side TLS configuration for cert:
// TLS 1.2 at least, and for TLS 1.2 only ECDHE key exchange with AEAD
// ciphers (forward secrecy, no CBC); TLS 1.3 suites are not configurable
// and all good. cert must not be nil.
//
// NextProtos is left empty on purpose: only the direct-TLS listener
// negotiates ALPN ("xmpp-client", "parley-bin/1"), so that caller clones
// the result and sets it; STARTTLS and HTTPS use other or no protocols.
func ServerTLSConfig(cert *tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{*cert},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("certs: %w", err)
	}
}

// mkdirs creates dir and its missing parents with mode 0700. Existing
// directories keep their mode: the operator may have chosen it.
func mkdirs(dir string) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return nil
}

// writeAtomic replaces path with data: a temporary file in the same
// directory (created 0600, so a secret is never readable by others, not
// even briefly) is written, synced, given its mode and renamed over path,
// then the directory is synced so the rename itself survives a crash.
func writeAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
			err = fmt.Errorf("certs: write %s: %w", path, err)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		// Best effort: not every file system can sync a directory.
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
