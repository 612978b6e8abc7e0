package clawplane_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExamples builds the examples and runs them against a live gateway the way the
// cross-language test does (CLAWPLANE_URL / CLAWPLANE_TOKEN in the environment).
func TestExamples(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	bin := t.TempDir()
	// `go test` puts its own go command first on PATH.
	build := exec.Command("go", "build", "-o", bin+string(os.PathSeparator), "./examples/...")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/...: %v\n%s", err, out)
	}
	env := append(os.Environ(), "CLAWPLANE_URL="+g.url, "CLAWPLANE_TOKEN="+g.token)
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Env = env
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, stderr.String())
		}
		return string(out)
	}

	var accepted struct {
		RunID      string `json:"runId"`
		SessionKey string `json:"sessionKey"`
	}
	out := run("run", "hello", "examples")
	if err := json.Unmarshal([]byte(out), &accepted); err != nil || accepted.RunID == "" || accepted.SessionKey == "" {
		t.Fatalf("examples/run printed %q (%v)", out, err)
	}

	out = run("wait", accepted.RunID)
	if strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, `"state":"RUN_STATE_SUCCEEDED"`) {
		t.Fatalf("examples/wait printed %q", out)
	}
	var final map[string]any
	if err := json.Unmarshal([]byte(out), &final); err != nil {
		t.Fatal(err)
	}
	if final["runId"] != accepted.RunID || final["sessionKey"] != accepted.SessionKey ||
		final["replyText"] != "You said: hello examples (turn 1)" {
		t.Fatalf("examples/wait: %v", final)
	}

	out = run("quickstart", "quick", "start")
	if !strings.Contains(out, "You said: quick start (turn 2)") || !strings.Contains(out, "RUN_STATE_SUCCEEDED") {
		t.Fatalf("examples/quickstart printed %q", out)
	}
}
