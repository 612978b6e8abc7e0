package clawplane_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	clawplane "github.com/clawplane/clawplane/sdk/go"
	pb "github.com/clawplane/clawplane/sdk/go/gen/clawplane/v1"
)

// What every SDK does alike, against a live gateway: the token from the local gateway's
// data dir, the local TLS certificate, the default wait, deadlines and cancellation.

// clearEnv blanks the variables Discover reads (t.Setenv restores them after the test).
func clearEnv(t *testing.T) {
	for _, k := range []string{"CLAWPLANE_URL", "CLAWPLANE_TOKEN", "CLAWPLANE_GATEWAY_TOKEN", "OPENCLAW_GATEWAY_TOKEN", "CLAWPLANE_DATA_DIR", "CLAWPLANE_TLS_CA", "CLAWPLANE_TLS_FINGERPRINT"} {
		t.Setenv(k, "")
	}
}

// credential connects with ConnectEnv and returns GetCaller's credential kind.
func credential(ctx context.Context, t *testing.T) (string, error) {
	t.Helper()
	c, err := clawplane.ConnectEnv(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	resp, err := c.Gateway.GetCaller(ctx, &pb.GetCallerRequest{})
	return resp.GetCredential(), err
}

// TestDiscoverReadsTheLocalTokenFile is not parallel: it sets CLAWPLANE_* variables.
func TestDiscoverReadsTheLocalTokenFile(t *testing.T) {
	g := startGatewayToken(t, nil, true)
	ctx := testCtx(t, 60*time.Second)
	clearEnv(t)
	t.Setenv("CLAWPLANE_URL", g.url)
	t.Setenv("CLAWPLANE_DATA_DIR", g.dataDir)

	if kind, err := credential(ctx, t); err != nil || kind != "gateway-token" {
		t.Fatalf("token file: credential %q, %v", kind, err)
	}
	d := clawplane.Discover("", "", clawplane.TLSOptions{})
	if d.Token != g.token || d.TokenSource != filepath.Join(g.dataDir, "gateway.token") {
		t.Fatalf("Discover: token from %q", d.TokenSource)
	}
	// CLAWPLANE_TOKEN comes before the file.
	t.Setenv("CLAWPLANE_TOKEN", "not-the-token")
	if _, err := credential(ctx, t); clawplane.Reason(err) != "TOKEN_INVALID" {
		t.Fatalf("CLAWPLANE_TOKEN before the file: want TOKEN_INVALID, got %v", err)
	}
	t.Setenv("CLAWPLANE_TOKEN", "")
	// No file: nothing is sent; CLAWPLANE_GATEWAY_TOKEN works too.
	t.Setenv("CLAWPLANE_DATA_DIR", t.TempDir())
	if _, err := credential(ctx, t); clawplane.Reason(err) != "TOKEN_MISSING" {
		t.Fatalf("no token file: want TOKEN_MISSING, got %v", err)
	}
	t.Setenv("CLAWPLANE_GATEWAY_TOKEN", g.token)
	if kind, err := credential(ctx, t); err != nil || kind != "gateway-token" {
		t.Fatalf("CLAWPLANE_GATEWAY_TOKEN: credential %q, %v", kind, err)
	}
	t.Setenv("CLAWPLANE_GATEWAY_TOKEN", "")
	// OpenClaw's variable stands in for ours.
	t.Setenv("OPENCLAW_GATEWAY_TOKEN", g.token)
	if kind, err := credential(ctx, t); err != nil || kind != "gateway-token" {
		t.Fatalf("OPENCLAW_GATEWAY_TOKEN: credential %q, %v", kind, err)
	}
	t.Setenv("OPENCLAW_GATEWAY_TOKEN", "")
	// The file is only read for loopback URLs; an argument comes first.
	t.Setenv("CLAWPLANE_DATA_DIR", g.dataDir)
	if d := clawplane.Discover("http://gw.example:1", "", clawplane.TLSOptions{}); d.Token != "" {
		t.Fatalf("a remote URL got the local token (from %s)", d.TokenSource)
	}
	if d := clawplane.Discover("http://gw.localhost:1", "", clawplane.TLSOptions{}); d.Token != g.token {
		t.Fatalf("*.localhost is loopback: token from %q", d.TokenSource)
	}
	if d := clawplane.Discover(g.url, " arg ", clawplane.TLSOptions{}); d.Token != "arg" || d.TokenSource != "argument" {
		t.Fatalf("argument: %q from %q", d.Token, d.TokenSource)
	}
}

// TestDiscoverTrustsTheLocalCertificate is not parallel: it sets CLAWPLANE_* variables.
func TestDiscoverTrustsTheLocalCertificate(t *testing.T) {
	g := startGatewayToken(t, map[string]any{"gateway": map[string]any{"tls": map[string]any{"autoGenerate": true}}}, true)
	fp := pemSHA256(t, filepath.Join(g.dataDir, "tls", "cert.pem"))
	ctx := testCtx(t, 60*time.Second)
	clearEnv(t)
	t.Setenv("CLAWPLANE_URL", g.url)
	t.Setenv("CLAWPLANE_DATA_DIR", g.dataDir)

	c, err := clawplane.ConnectEnv(ctx)
	if err != nil {
		t.Fatalf("token and certificate from the data dir: %v", err)
	}
	st, err := c.Status(ctx)
	c.Close()
	if err != nil || st.GetTlsFingerprint() != fp {
		t.Fatalf("status %v, %v", st.GetTlsFingerprint(), err)
	}
	// A pin from the environment comes first: a wrong one is refused.
	t.Setenv("CLAWPLANE_TLS_FINGERPRINT", strings.Repeat("ab", 32))
	if _, err := clawplane.ConnectEnv(ctx); err == nil || !strings.Contains(err.Error(), "certificate fingerprint mismatch") {
		t.Fatalf("wrong pin: want a fingerprint mismatch, got %v", err)
	}
	t.Setenv("CLAWPLANE_TLS_FINGERPRINT", "")
	// Without the local certificate the self-signed one is not trusted.
	t.Setenv("CLAWPLANE_DATA_DIR", t.TempDir())
	t.Setenv("CLAWPLANE_TOKEN", g.token)
	var e *clawplane.Error
	if _, err := clawplane.ConnectEnv(ctx); !errors.As(err, &e) || !e.TLS {
		t.Fatalf("no local certificate: want a TLS error, got %v", err)
	}
}

func TestWaitForReturnsTheRunWhenItsTimeoutPasses(t *testing.T) {
	t.Parallel()
	if clawplane.DefaultWaitTimeout != 30*time.Second {
		t.Fatalf("DefaultWaitTimeout %v, want 30s as in the other SDKs", clawplane.DefaultWaitTimeout)
	}
	g := startGateway(t, nil)
	c := g.connect(t, "")
	ctx := testCtx(t, 60*time.Second)
	run, err := c.AgentRun(ctx, &pb.AgentServiceRunRequest{Message: "/sleep 5000 slow"})
	if err != nil {
		t.Fatal(err)
	}
	defer run.Cancel(ctx)
	start := time.Now()
	now, err := run.WaitFor(ctx, 300*time.Millisecond)
	took := time.Since(start)
	if err != nil || clawplane.IsTerminal(now) {
		t.Fatalf("want the run still going, got %v, %v", now.GetState(), err)
	}
	if took < 250*time.Millisecond || took > 3*time.Second {
		t.Fatalf("WaitFor(300ms) returned after %v", took)
	}
}

func TestCallsHonourTheirContext(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	c := g.connect(t, "")
	ctx := testCtx(t, 60*time.Second)

	// A context past its deadline: the call fails with DEADLINE_EXCEEDED and sends nothing.
	late, cancelLate := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancelLate()
	_, err := c.ChatSend(late, &pb.ChatServiceSendRequest{SessionKey: "go-too-late", Message: "hi"})
	if !errors.Is(err, context.DeadlineExceeded) || clawplane.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("expired context: want DEADLINE_EXCEEDED, got %v", err)
	}
	if _, err := c.Sessions.Get(ctx, &pb.SessionServiceGetRequest{SessionKey: "go-too-late"}); clawplane.Reason(err) != "SESSION_NOT_FOUND" {
		t.Fatalf("the late call created a session: %v", err)
	}

	// Cancelling the context ends a wait at once; the run goes on.
	run, err := c.AgentRun(ctx, &pb.AgentServiceRunRequest{Message: "/sleep 5000 keep going"})
	if err != nil {
		t.Fatal(err)
	}
	defer run.Cancel(ctx)
	waitCtx, cancelWait := context.WithCancel(ctx)
	time.AfterFunc(200*time.Millisecond, cancelWait)
	start := time.Now()
	_, err = run.WaitFor(waitCtx, 20*time.Second)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: want context.Canceled, got %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the cancelled wait returned after %v", took)
	}
	if r, err := run.Get(ctx); err != nil || r.GetState() != pb.RunState_RUN_STATE_RUNNING {
		t.Fatalf("the run should still be running: %v, %v", r.GetState(), err)
	}
	// A cancelled context fails a verb with CANCELED, matched by errors.Is.
	if _, err := c.Status(waitCtx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: want context.Canceled, got %v", err)
	}
}
