package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// SPIFFECA is a throwaway certificate authority of one trust domain, issuing X.509-SVIDs the way a
// SPIRE server does (a URI SAN, client and server use), for tests of SPIFFE mTLS without SPIRE.
type SPIFFECA struct {
	td   spiffeid.TrustDomain
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// SPIFFESource is an identity as a Workload API source gives it: an SVID and the bundles its holder
// trusts (an x509svid.Source and an x509bundle.Source).
type SPIFFESource struct {
	*x509svid.SVID
	x509bundle.Source
}

// Source is an SVID of ca for id, trusting ca's bundle.
func (ca *SPIFFECA) Source(t TB, id string) SPIFFESource {
	t.Helper()
	return SPIFFESource{SVID: ca.SVID(t, id), Source: ca.Bundle()}
}

// NewSPIFFECA returns a new CA for trust domain td (valid for an hour).
func NewSPIFFECA(t TB, td string) *SPIFFECA {
	t.Helper()
	k := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: td + " test CA"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		URIs:     []*url.URL{spiffeid.RequireTrustDomainFromString(td).ID().URL()},
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
	}
	cert := sign(t, tmpl, tmpl, &k.PublicKey, k)
	return &SPIFFECA{td: spiffeid.RequireTrustDomainFromString(td), cert: cert, key: k}
}

// Bundle is the CA as the trust domain's X.509 bundle (an x509bundle.Source).
func (ca *SPIFFECA) Bundle() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(ca.td, []*x509.Certificate{ca.cert})
}

// SVID issues an X.509-SVID for id (an x509svid.Source).
func (ca *SPIFFECA) SVID(t TB, id string) *x509svid.SVID {
	t.Helper()
	sid := spiffeid.RequireFromString(id)
	k := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		NotBefore:    time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		URIs: []*url.URL{sid.URL()}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	return &x509svid.SVID{ID: sid, Certificates: []*x509.Certificate{sign(t, tmpl, ca.cert, &k.PublicKey, ca.key)}, PrivateKey: k}
}

func newKey(t TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sign(t TB, tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, key *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
