// Package testcert makes throwaway TLS certificates for tests that serve TLS on 127.0.0.1.
package testcert

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"time"
)

// TB is the part of testing.TB the helpers need.
type TB interface {
	Helper()
	Fatal(...any)
}

// Loopback returns a self-signed certificate for 127.0.0.1 (valid for an hour) and its key, PEM-encoded,
// and the pool that trusts it. Each call makes a new key, so a second call is a "renewed" certificate.
func Loopback(t TB) (certPEM, keyPEM string, pool *x509.CertPool) {
	t.Helper()
	return ForIP(t, "127.0.0.1")
}

// ForIP is Loopback for another address, such as a bridge address that a test cluster's pods reach.
func ForIP(t TB, ip string) (certPEM, keyPEM string, pool *x509.CertPool) {
	t.Helper()
	k := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: ip},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP(ip)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	cert := sign(t, tmpl, tmpl, &k.PublicKey, k)
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})), pool
}
