package clawplane_test

import (
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	clawplane "github.com/clawplane/clawplane/sdk/go"
	pb "github.com/clawplane/clawplane/sdk/go/gen/clawplane/v1"
)

// pemSHA256 is the SHA-256 of the first certificate's DER in the PEM file, uppercase hex
// pairs joined by ":" (computed here, independently of the SDK).
func pemSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s holds no PEM certificate", path)
	}
	sum := sha256.Sum256(block.Bytes)
	parts := make([]string, len(sum))
	for i, x := range sum {
		parts[i] = fmt.Sprintf("%02X", x)
	}
	return strings.Join(parts, ":")
}

func asTLSError(t *testing.T, err error) *clawplane.Error {
	t.Helper()
	var e *clawplane.Error
	if !errors.As(err, &e) {
		t.Fatalf("want *clawplane.Error, got %T: %v", err, err)
	}
	if !e.TLS || e.Code != codes.Unavailable || e.Retryable() {
		t.Fatalf("want a non-retryable UNAVAILABLE TLS error, got TLS=%v code=%s: %v", e.TLS, e.Code, err)
	}
	return e
}

// TestTLS: the gateway with gateway.tls.autoGenerate, reached over https:// with its
// generated certificate as the CA, with a pinned fingerprint, with a wrong pin (refused
// before any request is sent) and with plain http:// (a clear error).
func TestTLS(t *testing.T) {
	t.Parallel()
	g := startGateway(t, map[string]any{"gateway": map[string]any{"tls": map[string]any{"autoGenerate": true}}})
	if !strings.HasPrefix(g.url, "https://127.0.0.1:") {
		t.Fatalf("listening on %s, want https://127.0.0.1:PORT", g.url)
	}
	certPath := filepath.Join(g.dataDir, "tls", "cert.pem")
	fp := pemSHA256(t, certPath)
	ctx := testCtx(t, 60*time.Second)

	t.Run("CA file", func(t *testing.T) {
		c, err := clawplane.ConnectWith(ctx, g.url, g.token, clawplane.TLSOptions{CAFile: certPath})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		run, err := c.ChatSend(ctx, &pb.ChatServiceSendRequest{SessionKey: "go-tls", Message: "over tls"})
		if err != nil {
			t.Fatal(err)
		}
		final, err := run.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if final.GetState() != pb.RunState_RUN_STATE_SUCCEEDED || final.GetReplyText() != "You said: over tls (turn 1)" {
			t.Fatalf("run ended %s %q", final.GetState(), final.GetReplyText())
		}
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.GetTlsFingerprint() != fp {
			t.Fatalf("Status.tlsFingerprint %q, want %q", st.GetTlsFingerprint(), fp)
		}
		if got, err := clawplane.PEMFingerprint(mustRead(t, certPath)); err != nil || got != fp {
			t.Fatalf("PEMFingerprint = %q, %v; want %q", got, err, fp)
		}
		// The PEM itself, and "localhost" (a SAN of the certificate).
		c2, err := clawplane.ConnectWith(ctx, strings.Replace(g.url, "127.0.0.1", "localhost", 1), g.token,
			clawplane.TLSOptions{CAPEM: mustRead(t, certPath)})
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		if _, err := c2.Status(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("pinned fingerprint", func(t *testing.T) {
		hex := strings.ReplaceAll(fp, ":", "")
		for _, pin := range []string{fp, strings.ToLower(hex), "sha256:" + hex} {
			if canon, err := clawplane.ParseFingerprint(pin); err != nil || canon != fp {
				t.Fatalf("ParseFingerprint(%q) = %q, %v", pin, canon, err)
			}
			c, err := clawplane.ConnectWith(ctx, g.url, g.token, clawplane.TLSOptions{Fingerprint: pin})
			if err != nil {
				t.Fatalf("pin %q: %v", pin, err)
			}
			st, err := c.Status(ctx)
			c.Close()
			if err != nil || st.GetTlsFingerprint() != fp {
				t.Fatalf("pin %q: status %v, %v", pin, st, err)
			}
		}
	})

	t.Run("wrong fingerprint", func(t *testing.T) {
		good, err := clawplane.ConnectWith(ctx, g.url, g.token, clawplane.TLSOptions{CAFile: certPath})
		if err != nil {
			t.Fatal(err)
		}
		defer good.Close()
		before, err := good.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wrong := strings.TrimSuffix(strings.Repeat("AB:", 32), ":")
		start := time.Now()
		c, err := clawplane.ConnectWith(ctx, g.url, g.token, clawplane.TLSOptions{Fingerprint: strings.ReplaceAll(wrong, ":", "")})
		if err == nil {
			c.Close()
			t.Fatal("a wrong fingerprint was accepted")
		}
		e := asTLSError(t, err)
		want := fmt.Sprintf("certificate fingerprint mismatch: expected %s, got %s", wrong, fp)
		if !strings.Contains(e.Message, want) {
			t.Fatalf("error %q lacks %q", e.Message, want)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("refusing took %v", time.Since(start))
		}
		t.Logf("refused: %v", err)
		// Nothing reached the gateway: the handshake failed, so no request was made and
		// the event head did not move.
		after, err := good.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if after.GetLastEventSeq() != before.GetLastEventSeq() {
			t.Fatalf("event head moved %d -> %d", before.GetLastEventSeq(), after.GetLastEventSeq())
		}
	})

	t.Run("no CA", func(t *testing.T) {
		c, err := clawplane.Connect(ctx, g.url, g.token)
		if err == nil {
			c.Close()
			t.Fatal("the self-signed certificate was trusted without a CA or pin")
		}
		e := asTLSError(t, err)
		t.Logf("refused: %v", err)
		if !strings.Contains(e.Message, "certificate") {
			t.Fatalf("error %q does not mention the certificate", e.Message)
		}
	})

	t.Run("plain http", func(t *testing.T) {
		plain := strings.Replace(g.url, "https://", "http://", 1)
		c, err := clawplane.Connect(ctx, plain, g.token)
		if err == nil {
			c.Close()
			t.Fatal("plain http:// to the TLS port connected")
		}
		e := asTLSError(t, err)
		t.Logf("refused: %v", err)
		if !strings.Contains(e.Message, "serves TLS (https); use "+g.url) {
			t.Fatalf("error %q does not say to use https://", e.Message)
		}
		if _, err := clawplane.ConnectWith(ctx, plain, g.token, clawplane.TLSOptions{Fingerprint: fp}); err == nil {
			t.Fatal("TLS options with an http:// URL were accepted")
		}
	})
}

// TestTLSConnectEnv is not parallel: it sets CLAWPLANE_* variables.
func TestTLSConnectEnv(t *testing.T) {
	g := startGateway(t, map[string]any{"gateway": map[string]any{"tls": map[string]any{"autoGenerate": true}}})
	certPath := filepath.Join(g.dataDir, "tls", "cert.pem")
	fp := pemSHA256(t, certPath)
	ctx := testCtx(t, 30*time.Second)
	t.Setenv("CLAWPLANE_URL", g.url)
	t.Setenv("CLAWPLANE_TOKEN", g.token)
	for _, env := range [][2]string{{"CLAWPLANE_TLS_FINGERPRINT", fp}, {"CLAWPLANE_TLS_CA", certPath}} {
		t.Setenv("CLAWPLANE_TLS_FINGERPRINT", "")
		t.Setenv("CLAWPLANE_TLS_CA", "")
		t.Setenv(env[0], env[1])
		c, err := clawplane.ConnectEnv(ctx)
		if err != nil {
			t.Fatalf("%s: %v", env[0], err)
		}
		st, err := c.Status(ctx)
		c.Close()
		if err != nil || st.GetTlsFingerprint() != fp {
			t.Fatalf("%s: status %v, %v", env[0], st, err)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
