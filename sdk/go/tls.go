package clawplane

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
)

// TLSOptions says how to check an https:// gateway's certificate. With neither field set
// the system roots are trusted.
type TLSOptions struct {
	// CAFile is a PEM file of CA certificates (or the gateway's self-signed
	// <data-dir>/tls/cert.pem itself) trusted instead of the system roots
	// (CLAWPLANE_TLS_CA with ConnectEnv).
	CAFile string
	// CAPEM is like CAFile, the PEM text itself.
	CAPEM []byte
	// Fingerprint is the SHA-256 fingerprint of the one certificate to accept: 64 hex
	// digits, colons optional, case-insensitive, optional "sha256:" prefix
	// (CLAWPLANE_TLS_FINGERPRINT with ConnectEnv). Any other certificate is refused during
	// the handshake, before any request is sent, with "certificate fingerprint mismatch:
	// expected X, got Y"; host names and dates are not checked.
	Fingerprint string
}

func (o TLSOptions) isSet() bool {
	return strings.TrimSpace(o.CAFile) != "" || len(o.CAPEM) > 0 || strings.TrimSpace(o.Fingerprint) != ""
}

// Fingerprint returns the SHA-256 fingerprint of a DER certificate: uppercase hex pairs
// joined by colons (the form GatewayService/Status.tlsFingerprint and `clawplane status`
// show).
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return colonHex(sum[:])
}

func colonHex(b []byte) string {
	h := strings.ToUpper(hex.EncodeToString(b))
	parts := make([]string, 0, len(h)/2)
	for i := 0; i+1 < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

// ParseFingerprint parses a fingerprint given by a person (64 hex digits; colons, spaces or
// dashes optional; an optional "sha256:" prefix) into the canonical form (see Fingerprint).
func ParseFingerprint(s string) (string, error) {
	t := strings.TrimSpace(s)
	for _, p := range []string{"sha256:", "sha256="} {
		if len(t) >= len(p) && strings.EqualFold(t[:len(p)], p) {
			t = t[len(p):]
			break
		}
	}
	t = strings.NewReplacer(":", "", " ", "", "-", "").Replace(t)
	b, err := hex.DecodeString(t)
	if err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("clawplane: %q is not a SHA-256 fingerprint (64 hex digits, colons optional)", s)
	}
	return colonHex(b), nil
}

// PEMFingerprint returns the fingerprint of the first certificate in pemBytes.
func PEMFingerprint(pemBytes []byte) (string, error) {
	for {
		var block *pem.Block
		block, pemBytes = pem.Decode(pemBytes)
		if block == nil {
			return "", errors.New("clawplane: no PEM certificate found")
		}
		if block.Type == "CERTIFICATE" {
			return Fingerprint(block.Bytes), nil
		}
	}
}

// tlsFailure remembers the last certificate/handshake failure of a connection, so that
// Connect can say what was wrong instead of "not reachable".
type tlsFailure struct {
	mu  sync.Mutex
	err error
}

func (f *tlsFailure) set(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *tlsFailure) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// recordingCreds wraps TLS transport credentials and records handshake failures.
type recordingCreds struct {
	credentials.TransportCredentials
	failure *tlsFailure
}

func (c recordingCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err != nil {
		c.failure.set(err)
	}
	return conn, info, err
}

func (c recordingCreds) Clone() credentials.TransportCredentials {
	return recordingCreds{TransportCredentials: c.TransportCredentials.Clone(), failure: c.failure}
}

// tlsConfig builds the client TLS configuration for opts.
func tlsConfig(opts TLSOptions) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if fp := strings.TrimSpace(opts.Fingerprint); fp != "" {
		expected, err := ParseFingerprint(fp)
		if err != nil {
			return nil, err
		}
		// Pinning: the chain and the host name are not verified; exactly the certificate
		// with the expected fingerprint is accepted (checked during the handshake).
		cfg.InsecureSkipVerify = true
		cfg.VerifyPeerCertificate = func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			if len(rawCerts) == 0 {
				return fmt.Errorf("certificate fingerprint mismatch: expected %s, got no certificate", expected)
			}
			if got := Fingerprint(rawCerts[0]); got != expected {
				return fmt.Errorf("certificate fingerprint mismatch: expected %s, got %s", expected, got)
			}
			return nil
		}
		return cfg, nil
	}
	caPEM := opts.CAPEM
	name := "CAPEM"
	if f := strings.TrimSpace(opts.CAFile); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("clawplane: cannot read the CA file %s: %w", f, err)
		}
		caPEM, name = b, f
	}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("clawplane: %s holds no PEM certificate", name)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// tlsError is the *Error for a refused certificate or failed handshake.
func tlsError(url string, err error) *Error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "tls: ")
	return &Error{
		Code:     codes.Unavailable,
		Message:  fmt.Sprintf("TLS connection to %s failed: %s", url, msg),
		Metadata: map[string]string{},
		TLS:      true,
	}
}

// speaksTLS reports whether the server at hostport answers an HTTP/2 connection preface
// with a TLS alert record (it expects a TLS handshake). Used only to explain a failed
// http:// connection.
func speaksTLS(hostport string) bool {
	conn, err := net.DialTimeout("tcp", hostport, time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")); err != nil {
		return false
	}
	var b [2]byte
	n, _ := conn.Read(b[:])
	return n == 2 && b[0] == 0x15 && b[1] == 0x03
}
