package sasl

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// tlsExporterLabel and tlsExporterLength are fixed by RFC 9266 §2.
const (
	tlsExporterLabel  = "EXPORTER-Channel-Binding"
	tlsExporterLength = 32
)

// TLSExporter returns the tls-exporter channel-binding data (RFC 9266) of a
// connection: 32 bytes of keying material exported with the label
// "EXPORTER-Channel-Binding" and no context. Both ends compute the same
// value. Only TLS 1.3 is accepted: on TLS 1.2 the binding is only sound with
// the extended master secret, which a tls.ConnectionState does not let us
// verify; such connections should use tls-server-end-point.
func TLSExporter(cs tls.ConnectionState) ([]byte, error) {
	if !cs.HandshakeComplete {
		return nil, errors.New("sasl: TLS handshake not complete")
	}
	if cs.Version != tls.VersionTLS13 {
		return nil, errors.New("sasl: tls-exporter requires TLS 1.3")
	}
	return cs.ExportKeyingMaterial(tlsExporterLabel, nil, tlsExporterLength)
}

// TLSServerEndPoint returns the tls-server-end-point channel-binding data
// (RFC 5929 §4.1) for the server's leaf certificate: its DER hashed with the
// hash of its signature algorithm, SHA-256 if that is MD5 or SHA-1. The
// binding is undefined for algorithms without a single hash (Ed25519), which
// gives an error.
func TLSServerEndPoint(cert *x509.Certificate) ([]byte, error) {
	if cert == nil || len(cert.Raw) == 0 {
		return nil, errors.New("sasl: no certificate")
	}
	switch cert.SignatureAlgorithm {
	case x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1,
		x509.SHA256WithRSA, x509.DSAWithSHA256, x509.ECDSAWithSHA256, x509.SHA256WithRSAPSS:
		d := sha256.Sum256(cert.Raw)
		return d[:], nil
	case x509.SHA384WithRSA, x509.ECDSAWithSHA384, x509.SHA384WithRSAPSS:
		d := sha512.Sum384(cert.Raw)
		return d[:], nil
	case x509.SHA512WithRSA, x509.ECDSAWithSHA512, x509.SHA512WithRSAPSS:
		d := sha512.Sum512(cert.Raw)
		return d[:], nil
	}
	return nil, fmt.Errorf("sasl: tls-server-end-point undefined for signature algorithm %v", cert.SignatureAlgorithm)
}

// ServerChannelBindings returns the channel-binding data available on an
// accepted connection, keyed by type, for ServerConfig.ChannelBindings:
// tls-exporter on TLS 1.3, tls-server-end-point when leaf (the certificate
// this server presented, e.g. tls.Certificate.Leaf of the one selected; the
// server's own certificate is not in its ConnectionState) is given and has a
// suitable signature algorithm. Types that cannot be computed are left out
// rather than failing, so the -PLUS mechanisms are offered only with
// bindings that work.
func ServerChannelBindings(cs tls.ConnectionState, leaf *x509.Certificate) map[string][]byte {
	m := make(map[string][]byte, 2)
	if d, err := TLSExporter(cs); err == nil {
		m[CBTLSExporter] = d
	}
	if leaf != nil && cs.HandshakeComplete {
		if d, err := TLSServerEndPoint(leaf); err == nil {
			m[CBTLSServerEndPoint] = d
		}
	}
	return m
}

// ClientChannelBinding computes the client's channel binding of type typ on
// a connection; typ "" picks tls-exporter on TLS 1.3 and
// tls-server-end-point (from the server's leaf certificate) otherwise. Pass
// an explicit type when the server's XEP-0440 list lacks the default.
func ClientChannelBinding(cs tls.ConnectionState, typ string) (ChannelBinding, error) {
	if typ == "" {
		typ = CBTLSServerEndPoint
		if cs.Version == tls.VersionTLS13 {
			typ = CBTLSExporter
		}
	}
	var (
		d   []byte
		err error
	)
	switch typ {
	case CBTLSExporter:
		d, err = TLSExporter(cs)
	case CBTLSServerEndPoint:
		if !cs.HandshakeComplete || len(cs.PeerCertificates) == 0 {
			return ChannelBinding{}, errors.New("sasl: no server certificate")
		}
		d, err = TLSServerEndPoint(cs.PeerCertificates[0])
	default:
		return ChannelBinding{}, fmt.Errorf("sasl: unsupported channel-binding type %q", typ)
	}
	if err != nil {
		return ChannelBinding{}, err
	}
	return ChannelBinding{Type: typ, Data: d}, nil
}
