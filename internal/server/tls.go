package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// SelfSignedCert and SelfSignedKey are where --tls-self-signed keeps its
// certificate and key in a data dir.
func SelfSignedCert(dataDir string) string { return filepath.Join(dataDir, "tls", "self-signed.crt") }
func SelfSignedKey(dataDir string) string  { return filepath.Join(dataDir, "tls", "self-signed.key") }

// tlsConfig returns the TLS configuration the listeners serve with, or nil
// for plain HTTP: the certificate and key files given, or (selfSigned) the
// data dir's self-signed certificate for domain, made on first use.
func tlsConfig(certFile, keyFile string, selfSigned bool, dataDir, domain string) (*tls.Config, error) {
	switch {
	case selfSigned && (certFile != "" || keyFile != ""):
		return nil, errors.New("--tls-self-signed and --tls-cert/--tls-key exclude each other: give a certificate, or let the server make one")
	case (certFile == "") != (keyFile == ""):
		return nil, errors.New("--tls-cert and --tls-key go together: give both files (PEM), or neither for plain HTTP")
	case selfSigned:
		certFile, keyFile = SelfSignedCert(dataDir), SelfSignedKey(dataDir)
		if err := ensureSelfSigned(certFile, keyFile, domain, time.Now()); err != nil {
			return nil, err
		}
	case certFile == "":
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// selfSignedNames are the DNS names a self-signed certificate for domain
// covers: the API's and every endpoint host's.
func selfSignedNames(domain string) []string {
	names := []string{"localhost", "*.localhost"}
	if domain != "localhost" {
		names = append(names, domain, "*."+domain)
	}
	return names
}

// ensureSelfSigned keeps a usable self-signed certificate at certFile (key
// at keyFile, mode 0600): the existing one when it covers domain and is
// valid for another 30 days, else a new one, valid for a year.
func ensureSelfSigned(certFile, keyFile, domain string, now time.Time) error {
	if ok, err := selfSignedUsable(certFile, keyFile, domain, now); err != nil {
		return err
	} else if ok {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(certFile), err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Sandpit (self-signed)"}, CommonName: domain},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // so clients can trust it as its own CA (SANDPIT_CA_FILE)
		DNSNames:              selfSignedNames(domain),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return fmt.Errorf("write TLS key: %w", err)
	}
	if err := writeFileAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("write TLS certificate: %w", err)
	}
	return nil
}

// selfSignedUsable reports whether certFile and keyFile hold a pair that
// covers domain and stays valid for 30 more days.
func selfSignedUsable(certFile, keyFile, domain string, now time.Time) (bool, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, nil // unreadable or mismatched: make a new one
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return false, nil
		}
	}
	if now.Add(30 * 24 * time.Hour).After(leaf.NotAfter) {
		return false, nil
	}
	for _, n := range selfSignedNames(domain) {
		if !slices.Contains(leaf.DNSNames, n) {
			return false, nil
		}
	}
	if st, err := os.Stat(keyFile); err == nil && st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(keyFile, 0o600); err != nil {
			return false, fmt.Errorf("restrict %s to its owner: %w", keyFile, err)
		}
	}
	return true, nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
