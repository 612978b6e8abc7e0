package clawplane_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	clawplane "github.com/clawplane/clawplane/sdk/go"
	pb "github.com/clawplane/clawplane/sdk/go/gen/clawplane/v1"
)

// scriptedEvents is an in-process EventService that breaks the stream in the ways the
// real gateway can (SUBSCRIBER_LAGGED, UNAVAILABLE, clean close) on cue, which the live
// gateway cannot be made to do deterministically.
type scriptedEvents struct {
	pb.UnimplementedEventServiceServer
	mu     sync.Mutex
	calls  []uint64 // afterSeq of every call
	auth   []string
	script []func(pb.EventService_WatchServer) error
}

func ev(seq uint64) *pb.EventServiceWatchResponse {
	return &pb.EventServiceWatchResponse{Frame: &pb.EventServiceWatchResponse_Event{Event: &pb.Event{Seq: seq, Kind: pb.EventKind_EVENT_KIND_SYSTEM_EVENT}}}
}

func progress(seq uint64) *pb.EventServiceWatchResponse {
	return &pb.EventServiceWatchResponse{Frame: &pb.EventServiceWatchResponse_Progress{Progress: &pb.Progress{Seq: seq}}}
}

func withInfo(t *testing.T, code codes.Code, msg, reason string, md map[string]string) error {
	s, err := status.New(code, msg).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: clawplane.ErrorDomain, Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
	return s.Err()
}

func (s *scriptedEvents) Watch(req *pb.EventServiceWatchRequest, stream pb.EventService_WatchServer) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	s.mu.Lock()
	n := len(s.calls)
	s.calls = append(s.calls, req.GetAfterSeq())
	s.auth = append(s.auth, md.Get("authorization")...)
	s.mu.Unlock()
	if n >= len(s.script) {
		<-stream.Context().Done()
		return nil
	}
	return s.script[n](stream)
}

func sendAll(stream pb.EventService_WatchServer, frames ...*pb.EventServiceWatchResponse) {
	for _, f := range frames {
		_ = stream.Send(f)
	}
}

func TestWatchEventsResumeRules(t *testing.T) {
	t.Parallel()
	srv := &scriptedEvents{}
	srv.script = []func(pb.EventService_WatchServer) error{
		func(st pb.EventService_WatchServer) error {
			sendAll(st, ev(1), ev(2), ev(3))
			return withInfo(t, codes.Aborted, "too slow", "SUBSCRIBER_LAGGED", map[string]string{"lastSeq": "3"})
		},
		func(st pb.EventService_WatchServer) error {
			// A repeat of seq 3 is dropped; the progress frame advances the cursor.
			sendAll(st, ev(3), ev(4), progress(6))
			return status.Error(codes.Unavailable, "going away")
		},
		func(st pb.EventService_WatchServer) error {
			sendAll(st, ev(7))
			return nil // a clean close resumes too
		},
		func(st pb.EventService_WatchServer) error {
			sendAll(st, ev(8))
			return withInfo(t, codes.OutOfRange, "expired", "CURSOR_EXPIRED", map[string]string{"oldestSeq": "100"})
		},
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	pb.RegisterEventServiceServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)

	ctx := testCtx(t, 20*time.Second)
	c, err := clawplane.Connect(ctx, "http://"+lis.Addr().String(), "tok")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	w := c.WatchEvents(ctx, 0, nil)
	var got []uint64
	var end error
	for e, err := range w.All() {
		if err != nil {
			end = err
			break
		}
		got = append(got, e.GetSeq())
	}
	want := []uint64{1, 2, 3, 4, 7, 8}
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %v, want %v", got, want)
		}
	}
	srv.mu.Lock()
	calls, auth := srv.calls, srv.auth
	srv.mu.Unlock()
	wantCalls := []uint64{0, 3, 6, 7}
	if len(calls) != len(wantCalls) {
		t.Fatalf("Watch called with afterSeq %v, want %v", calls, wantCalls)
	}
	for i := range wantCalls {
		if calls[i] != wantCalls[i] {
			t.Fatalf("Watch called with afterSeq %v, want %v", calls, wantCalls)
		}
	}
	for _, a := range auth {
		if a != "Bearer tok" {
			t.Fatalf("authorization %q", a)
		}
	}
	if len(auth) != len(calls) {
		t.Fatalf("authorization sent on %d of %d calls", len(auth), len(calls))
	}
	if clawplane.Code(end) != codes.OutOfRange || clawplane.Reason(end) != "CURSOR_EXPIRED" {
		t.Fatalf("want the watch to end with CURSOR_EXPIRED, got %v", end)
	}
	if w.Reconnects() != 3 || w.LastSeq() != 8 {
		t.Fatalf("reconnects %d lastSeq %d", w.Reconnects(), w.LastSeq())
	}
	// The end is sticky and does not call the server again.
	if _, err := w.Next(); clawplane.Reason(err) != "CURSOR_EXPIRED" {
		t.Fatalf("Next after the end: %v", err)
	}
}

func TestWatchEventsStopsOnContextEnd(t *testing.T) {
	t.Parallel()
	srv := &scriptedEvents{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	pb.RegisterEventServiceServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)

	ctx := testCtx(t, 20*time.Second)
	c, err := clawplane.Connect(ctx, lis.Addr().String(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	w := c.WatchEvents(wctx, 5, nil)
	start := time.Now()
	if _, err := w.Next(); err != context.DeadlineExceeded {
		t.Fatalf("want context.DeadlineExceeded, got %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("Next did not return promptly at the end of ctx")
	}
}
