package clawplane_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	clawplane "github.com/clawplane/clawplane/sdk/go"
	pb "github.com/clawplane/clawplane/sdk/go/gen/clawplane/v1"
)

// asError asserts that err is a *clawplane.Error with the code and reason.
func asError(t *testing.T, err error, code codes.Code, reason string) *clawplane.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s %s, got success", code, reason)
	}
	var e *clawplane.Error
	if !errors.As(err, &e) {
		t.Fatalf("want *clawplane.Error, got %T: %v", err, err)
	}
	if e.Code != code || e.Reason != reason {
		t.Fatalf("want %s %s, got %s %q: %v", code, reason, e.Code, e.Reason, err)
	}
	if e.Domain != clawplane.ErrorDomain {
		t.Fatalf("ErrorInfo domain %q, want %q", e.Domain, clawplane.ErrorDomain)
	}
	if clawplane.Reason(err) != reason || clawplane.Code(err) != code || status.Code(err) != code {
		t.Fatalf("helpers disagree: Reason=%q Code=%s status.Code=%s", clawplane.Reason(err), clawplane.Code(err), status.Code(err))
	}
	// Wrapped errors keep working with errors.As and the helpers.
	wrapped := fmt.Errorf("context: %w", err)
	if clawplane.Reason(wrapped) != reason || clawplane.Code(wrapped) != code {
		t.Fatalf("helpers fail on a wrapped error")
	}
	return e
}

func TestChatSendWaitAndSessionsSend(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	c := g.connect(t, "")
	ctx := testCtx(t, 60*time.Second)

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetVersion() == "" || st.GetDefaultAgentId() == "" {
		t.Fatalf("status lacks version/default agent: %v", st)
	}

	run, err := c.ChatSend(ctx, &pb.ChatServiceSendRequest{SessionKey: "go-chat", Message: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if run.RunID == "" || run.Duplicate || !strings.HasSuffix(run.SessionKey, "go-chat") {
		t.Fatalf("unexpected handle: %+v", run)
	}
	final, err := run.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if final.GetState() != pb.RunState_RUN_STATE_SUCCEEDED || final.GetReplyText() != "You said: hello (turn 1)" {
		t.Fatalf("chat run: %s %q", final.GetState(), final.GetReplyText())
	}
	if final.GetIdempotencyKey() == "" {
		t.Fatal("the SDK should have generated an idempotency key")
	}

	// SessionService/Send into the session ChatSend created.
	run2, err := c.SessionsSend(ctx, &pb.SessionServiceSendRequest{SessionKey: run.SessionKey, Message: "again"})
	if err != nil {
		t.Fatal(err)
	}
	if run2.RunID == run.RunID || run2.SessionKey != run.SessionKey {
		t.Fatalf("second run %+v vs first %+v", run2, run)
	}
	final2, err := run2.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if final2.GetState() != pb.RunState_RUN_STATE_SUCCEEDED || final2.GetReplyText() != "You said: again (turn 2)" {
		t.Fatalf("sessions run: %s %q", final2.GetState(), final2.GetReplyText())
	}

	// SessionService/Send needs an existing session.
	_, err = c.SessionsSend(ctx, &pb.SessionServiceSendRequest{SessionKey: "no-such-session", Message: "x"})
	asError(t, err, codes.NotFound, "SESSION_NOT_FOUND")
}

func TestAgentRunStreamsDeltas(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	c := g.connect(t, "")
	ctx := testCtx(t, 60*time.Second)

	run, err := c.AgentRun(ctx, &pb.AgentServiceRunRequest{Message: "/sleep 300 alpha beta gamma"})
	if err != nil {
		t.Fatal(err)
	}
	var deltas []string
	var states []pb.RunState
	var done *pb.Run
	for u, err := range run.Stream(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case u.Done:
			done = u.Run
		case u.Run != nil:
			states = append(states, u.Run.GetState())
		default:
			deltas = append(deltas, u.Delta)
		}
	}
	if done == nil {
		t.Fatal("stream ended without the final run")
	}
	want := "You said: /sleep 300 alpha beta gamma (turn 1)"
	if done.GetState() != pb.RunState_RUN_STATE_SUCCEEDED || done.GetReplyText() != want {
		t.Fatalf("final: %s %q", done.GetState(), done.GetReplyText())
	}
	if got := strings.Join(deltas, ""); got != want {
		t.Fatalf("deltas %q concatenate to %q, want %q", deltas, got, want)
	}
	// The built-in model streams one word per delta.
	if len(deltas) != len(strings.Fields(want)) {
		t.Fatalf("want one delta per word, got %d: %q", len(deltas), deltas)
	}
	if len(states) == 0 || states[len(states)-1] != pb.RunState_RUN_STATE_RUNNING {
		t.Fatalf("want a RUNNING state change before the deltas, got %v", states)
	}

	// Streaming a finished run (attached by id) yields the whole reply once.
	again, err := c.RunHandle(ctx, run.RunID)
	if err != nil {
		t.Fatal(err)
	}
	var replay []string
	var last *pb.Run
	for u, err := range again.Stream(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if u.Done {
			last = u.Run
		} else if u.Run == nil {
			replay = append(replay, u.Delta)
		}
	}
	if strings.Join(replay, "") != want || last.GetRunId() != run.RunID {
		t.Fatalf("replay of a finished run: %q / %v", replay, last)
	}

	// `/fail` fails the run; the stream ends with the FAILED run.
	failing, err := c.AgentRun(ctx, &pb.AgentServiceRunRequest{Message: "please /fail now"})
	if err != nil {
		t.Fatal(err)
	}
	var failed *pb.Run
	for u, err := range failing.Stream(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if u.Done {
			failed = u.Run
		}
	}
	if failed.GetState() != pb.RunState_RUN_STATE_FAILED || failed.GetError().GetReason() == "" {
		t.Fatalf("want FAILED with an error reason, got %s %v", failed.GetState(), failed.GetError())
	}
	waited, err := failing.Wait(ctx)
	if err != nil || waited.GetState() != pb.RunState_RUN_STATE_FAILED {
		t.Fatalf("Wait on a failed run: %v %v", waited.GetState(), err)
	}

	// Breaking out of a stream early is fine (the watch is closed).
	early, err := c.AgentRun(ctx, &pb.AgentServiceRunRequest{Message: "one two three four"})
	if err != nil {
		t.Fatal(err)
	}
	for u, err := range early.Stream(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if u.Delta != "" {
			break
		}
	}
	if r, err := early.Wait(ctx); err != nil || r.GetState() != pb.RunState_RUN_STATE_SUCCEEDED {
		t.Fatalf("wait after an early break: %v %v", r.GetState(), err)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	c := g.connect(t, "")
	ctx := testCtx(t, 60*time.Second)

	run, err := c.AgentRun(ctx, &pb.AgentServiceRunRequest{Message: "/sleep 20000 slow"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cancelled, err := run.Cancel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cancelled.GetRunId() != run.RunID {
		t.Fatalf("cancel returned run %q", cancelled.GetRunId())
	}
	final, err := run.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if final.GetState() != pb.RunState_RUN_STATE_CANCELLED {
		t.Fatalf("want CANCELLED, got %s", final.GetState())
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("cancel took %v", time.Since(start))
	}
	// Cancelling a terminal run returns it unchanged.
	again, err := run.Cancel(ctx)
	if err != nil || again.GetState() != pb.RunState_RUN_STATE_CANCELLED {
		t.Fatalf("second cancel: %v %v", again.GetState(), err)
	}
	// Wait is bounded by its context.
	slow, err := c.AgentRun(ctx, &pb.AgentServiceRunRequest{Message: "/sleep 20000 slower"})
	if err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = slow.Wait(short)
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want context.DeadlineExceeded from a bounded Wait, got %v", err)
	}
	if _, err := slow.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestErrorsCarryReasons(t *testing.T) {
	t.Parallel()
	g := startGateway(t, map[string]any{"hooks": map[string]any{"enabled": true, "token": "hooktok"}})
	c := g.connect(t, "")
	ctx := testCtx(t, 60*time.Second)

	// Same idempotency key: the same request is a duplicate, a different one a conflict.
	key := clawplane.NewIdempotencyKey()
	first, err := c.AgentRun(ctx, &pb.AgentServiceRunRequest{Message: "first", IdempotencyKey: key})
	if err != nil {
		t.Fatal(err)
	}
	dup, err := c.AgentRun(ctx, &pb.AgentServiceRunRequest{Message: "first", IdempotencyKey: key})
	if err != nil {
		t.Fatal(err)
	}
	if !dup.Duplicate || dup.RunID != first.RunID {
		t.Fatalf("want a duplicate of %s, got %+v", first.RunID, dup)
	}
	_, err = c.AgentRun(ctx, &pb.AgentServiceRunRequest{Message: "second", IdempotencyKey: key})
	e := asError(t, err, codes.AlreadyExists, "IDEMPOTENCY_KEY_CONFLICT")
	if e.Metadata["idempotencyKey"] != key || e.Metadata["runId"] != first.RunID {
		t.Fatalf("conflict metadata: %v", e.Metadata)
	}

	// The hooks token may run agents but not chat: PERMISSION_DENIED MISSING_SCOPE.
	hooks := g.connect(t, "hooktok")
	_, err = hooks.ChatSend(ctx, &pb.ChatServiceSendRequest{SessionKey: "s", Message: "hi"})
	e = asError(t, err, codes.PermissionDenied, "MISSING_SCOPE")
	if e.Metadata["missingScope"] == "" || e.Metadata["requiredScopes"] == "" {
		t.Fatalf("MISSING_SCOPE metadata: %v", e.Metadata)
	}
	hr, err := hooks.AgentRun(ctx, &pb.AgentServiceRunRequest{Message: "from a hook"})
	if err != nil {
		t.Fatalf("the hooks token may call AgentService/Run: %v", err)
	}
	if r, err := hr.Wait(ctx); err != nil || r.GetState() != pb.RunState_RUN_STATE_SUCCEEDED {
		t.Fatalf("hook run: %v %v", r.GetState(), err)
	}

	// Bad requests carry BadRequest field violations.
	_, err = c.ChatSend(ctx, &pb.ChatServiceSendRequest{SessionKey: "s", Message: ""})
	var bad *clawplane.Error
	if !errors.As(err, &bad) || bad.Code != codes.InvalidArgument {
		t.Fatalf("want INVALID_ARGUMENT, got %v", err)
	}
	found := false
	for _, v := range bad.FieldViolations {
		if v.Field == "message" && v.Description != "" {
			found = true
		}
	}
	if !found {
		t.Fatalf("want a field violation for message, got %+v (reason %s)", bad.FieldViolations, bad.Reason)
	}

	// Unknown runs and wrong tokens.
	_, err = c.GetRun(ctx, "no-such-run")
	e = asError(t, err, codes.NotFound, "RUN_NOT_FOUND")
	if e.Metadata["runId"] != "no-such-run" {
		t.Fatalf("RUN_NOT_FOUND metadata: %v", e.Metadata)
	}
	wrong := g.connect(t, "wrong-token")
	_, err = wrong.Status(ctx)
	asError(t, err, codes.Unauthenticated, "TOKEN_INVALID")
	none := g.connectNoToken(t)
	_, err = none.Status(ctx)
	asError(t, err, codes.Unauthenticated, "TOKEN_MISSING")
}

func (g *gateway) connectNoToken(t *testing.T) *clawplane.Client {
	t.Helper()
	ctx := testCtx(t, 10*time.Second)
	c, err := clawplane.Connect(ctx, g.url, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestConnectErrors(t *testing.T) {
	t.Parallel()
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx := testCtx(t, 10*time.Second)
	_, err = clawplane.Connect(ctx, "http://"+addr, "tok")
	if clawplane.Code(err) != codes.Unavailable {
		t.Fatalf("want UNAVAILABLE for a closed port, got %v", err)
	}
	if _, err := clawplane.Connect(ctx, "ftp://"+addr, "tok"); err == nil {
		t.Fatal("want an error for an ftp:// URL")
	}
	if _, err := clawplane.Connect(ctx, "http://"+addr, "bad\ntoken"); err == nil {
		t.Fatal("want an error for a token with a newline")
	}
}

// TestConnectEnv is not parallel: it sets CLAWPLANE_URL / CLAWPLANE_TOKEN.
func TestConnectEnv(t *testing.T) {
	g := startGateway(t, nil)
	t.Setenv("CLAWPLANE_URL", g.url)
	t.Setenv("CLAWPLANE_TOKEN", g.token)
	ctx := testCtx(t, 30*time.Second)
	c, err := clawplane.ConnectEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.URL() != g.url {
		t.Fatalf("URL %q, want %q", c.URL(), g.url)
	}
	if _, err := c.Status(ctx); err != nil {
		t.Fatal(err)
	}
	// The host without a scheme means http://.
	c2, err := clawplane.Connect(ctx, strings.TrimPrefix(g.url, "http://"), g.token)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.Status(ctx); err != nil {
		t.Fatal(err)
	}
}
