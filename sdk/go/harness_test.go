package clawplane_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clawplane "github.com/clawplane/clawplane/sdk/go"
)

// The tests start the real gateway exactly like the Rust conformance harness
// (tests/tests/conformance/harness.rs): `clawplane serve --port 0 --bind 127.0.0.1
// --data-dir <tmp> --config <tmp>/config.json5`, HOME=<tmp>, CLAWPLANE_* removed, and read
// the single stdout line `clawplane listening on http://127.0.0.1:PORT`.

const (
	startTimeout = 30 * time.Second
	exitTimeout  = 20 * time.Second
)

// gatewayBin is CLAWPLANE_BIN, or the repo's target/debug/clawplane.
func gatewayBin(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("CLAWPLANE_BIN")
	if bin == "" {
		abs, err := filepath.Abs(filepath.Join("..", "..", "target", "debug", "clawplane"))
		if err != nil {
			t.Fatal(err)
		}
		bin = abs
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("gateway binary %s not found (%v): build it with `cargo build -p clawplane-server` at the repo root or set CLAWPLANE_BIN", bin, err)
	}
	return bin
}

type gateway struct {
	t       testing.TB
	bin     string
	dataDir string
	config  string
	stderr  string
	token   string
	port    int
	url     string
	starts  int

	cmd    *exec.Cmd
	exited chan struct{}
}

// merge copies src into dst recursively (objects merge, everything else replaces).
func merge(dst, src map[string]any) {
	for k, v := range src {
		if sv, ok := v.(map[string]any); ok {
			if dv, ok := dst[k].(map[string]any); ok {
				merge(dv, sv)
				continue
			}
		}
		dst[k] = v
	}
}

func randomToken(t testing.TB) string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// startGateway starts a gateway with config `{gateway: {auth: {token: <random>}}}` merged
// with extra (may be nil). It is stopped when the test ends.
func startGateway(t testing.TB, extra map[string]any) *gateway {
	t.Helper()
	return startGatewayToken(t, extra, false)
}

// startGatewayToken is startGateway; with generated it configures no token, so that the
// gateway generates <data dir>/gateway.token (read into g.token once it listens).
func startGatewayToken(t testing.TB, extra map[string]any, generated bool) *gateway {
	t.Helper()
	dir := t.TempDir()
	g := &gateway{
		t:       t,
		bin:     gatewayBin(t),
		dataDir: dir,
		config:  filepath.Join(dir, "config.json5"),
		stderr:  filepath.Join(dir, "stderr.log"),
		token:   randomToken(t),
	}
	cfg := map[string]any{"gateway": map[string]any{"auth": map[string]any{"token": g.token}}}
	if generated {
		g.token = ""
		cfg = map[string]any{}
	}
	if extra != nil {
		merge(cfg, extra)
	}
	text, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	// JSON is valid JSON5.
	if err := os.WriteFile(g.config, append(text, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.kill)
	g.start(0)
	if generated {
		b, err := os.ReadFile(filepath.Join(dir, "gateway.token"))
		if err != nil {
			t.Fatalf("harness: the gateway wrote no token file: %v", err)
		}
		g.token = strings.TrimSpace(string(b))
	}
	return g
}

func (g *gateway) stderrText() string {
	b, _ := os.ReadFile(g.stderr)
	return string(b)
}

// start spawns `clawplane serve` on port (0 = any) and waits for the listening line.
func (g *gateway) start(port int) {
	g.t.Helper()
	if g.cmd != nil {
		g.t.Fatal("harness: start while the gateway is running")
	}
	g.starts++
	logf, err := os.OpenFile(g.stderr, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		g.t.Fatal(err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "===== harness: start #%d =====\n", g.starts)

	cmd := exec.Command(g.bin, "serve",
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--data-dir", g.dataDir, "--config", g.config)
	env := []string{}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CLAWPLANE_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = append(env, "HOME="+g.dataDir, "RUST_BACKTRACE=1")
	cmd.Stderr = logf
	pr, pw, err := os.Pipe()
	if err != nil {
		g.t.Fatal(err)
	}
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		g.t.Fatalf("harness: cannot spawn %s: %v", g.bin, err)
	}
	pw.Close()
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	g.cmd, g.exited = cmd, exited

	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		first := true
		for sc.Scan() {
			if first {
				lines <- sc.Text()
				first = false
			} else if strings.TrimSpace(sc.Text()) != "" {
				select { // report (but never block on) further output
				case lines <- sc.Text():
				default:
				}
			}
		}
	}()
	select {
	case line, ok := <-lines:
		if !ok {
			g.kill()
			g.t.Fatalf("harness: stdout closed before the listening line\n----- stderr -----\n%s", g.stderrText())
		}
		rest, found := strings.CutPrefix(strings.TrimSpace(line), "clawplane listening on ")
		if !found {
			g.kill()
			g.t.Fatalf("harness: stdout must carry exactly one line `clawplane listening on http://…`, got %q\n----- stderr -----\n%s", line, g.stderrText())
		}
		scheme := "http://"
		hostport, ok := strings.CutPrefix(rest, scheme)
		if !ok {
			scheme = "https://"
			hostport, ok = strings.CutPrefix(rest, scheme)
		}
		if !ok {
			g.kill()
			g.t.Fatalf("harness: listening line has no http:// or https:// URL: %q", line)
		}
		hostport = strings.TrimRight(hostport, "/")
		i := strings.LastIndexByte(hostport, ':')
		p, err := strconv.Atoi(hostport[i+1:])
		if i < 0 || err != nil {
			g.kill()
			g.t.Fatalf("harness: bad address in listening line %q", line)
		}
		if port != 0 && p != port {
			g.kill()
			g.t.Fatalf("harness: asked for port %d, listening on %d", port, p)
		}
		g.port = p
		g.url = scheme + hostport
	case <-time.After(startTimeout):
		g.kill()
		g.t.Fatalf("harness: no listening line within %v\n----- stderr -----\n%s", startTimeout, g.stderrText())
	}
}

// stop sends SIGTERM and waits for the process to exit.
func (g *gateway) stop() {
	g.t.Helper()
	if g.cmd == nil {
		return
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(exitTimeout):
		g.kill()
		g.t.Fatalf("harness: gateway did not exit within %v after SIGTERM\n----- stderr -----\n%s", exitTimeout, g.stderrText())
	}
	g.cmd = nil
}

// kill SIGKILLs and reaps a running gateway (test cleanup).
func (g *gateway) kill() {
	if g.cmd == nil {
		return
	}
	_ = g.cmd.Process.Kill()
	select {
	case <-g.exited:
	case <-time.After(exitTimeout):
	}
	g.cmd = nil
	if t, ok := g.t.(*testing.T); ok && t.Failed() {
		t.Logf("----- gateway stderr (%s) -----\n%s", g.dataDir, g.stderrText())
	}
}

// connect returns a client presenting token (the gateway token when token is "").
func (g *gateway) connect(t testing.TB, token string) *clawplane.Client {
	t.Helper()
	if token == "" {
		token = g.token
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := clawplane.Connect(ctx, g.url, token)
	if err != nil {
		t.Fatalf("connect %s: %v\n----- stderr -----\n%s", g.url, err, g.stderrText())
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
