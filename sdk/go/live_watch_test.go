package clawplane_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	clawplane "github.com/clawplane/clawplane/sdk/go"
	pb "github.com/clawplane/clawplane/sdk/go/gen/clawplane/v1"
)

func TestWatchEventsCursorExpired(t *testing.T) {
	t.Parallel()
	g := startGateway(t, map[string]any{"events": map[string]any{"retention": 5}})
	c := g.connect(t, "")
	ctx := testCtx(t, 60*time.Second)
	for _, m := range []string{"one", "two"} {
		r, err := c.ChatSend(ctx, &pb.ChatServiceSendRequest{SessionKey: "ret", Message: m})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	w := c.WatchEvents(ctx, 1, nil)
	defer w.Close()
	start := time.Now()
	_, err := w.Next()
	e := asError(t, err, codes.OutOfRange, "CURSOR_EXPIRED")
	if e.Metadata["oldestSeq"] == "" {
		t.Fatalf("metadata: %v", e.Metadata)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("CURSOR_EXPIRED must end the watch at once, not be retried")
	}
	var oldest uint64
	fmt.Sscan(e.Metadata["oldestSeq"], &oldest)
	// Resuming from just before the oldest retained event works.
	w2 := c.WatchEvents(ctx, oldest-1, nil)
	defer w2.Close()
	ev, err := w2.Next()
	if err != nil || ev.GetSeq() != oldest {
		t.Fatalf("resume at oldestSeq-1: %v %v", ev.GetSeq(), err)
	}
}

func TestWatchEventsSurvivesSubscriberLag(t *testing.T) {
	t.Parallel()
	g := startGateway(t, map[string]any{"events": map[string]any{"liveBuffer": 8}})
	c := g.connect(t, "")
	ctx := testCtx(t, 80*time.Second)
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	startSeq := st.GetLastEventSeq()
	w := c.WatchEvents(ctx, startSeq, nil)
	defer w.Close()
	wake := func(text string) {
		if _, err := c.Gateway.Wake(ctx, &pb.GatewayServiceWakeRequest{Text: text, Mode: pb.WakeMode_WAKE_MODE_NEXT_HEARTBEAT}); err != nil {
			t.Error(err)
		}
	}
	wake("first")
	if _, err := w.Next(); err != nil { // the stream is open and live now
		t.Fatal(err)
	}
	// Commit thousands of events while nobody reads the watch.
	for chunk := 0; chunk < 60; chunk++ {
		var wg sync.WaitGroup
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); wake(fmt.Sprintf("lag %d-%d", chunk, i)) }()
		}
		wg.Wait()
	}
	st, err = c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	head := st.GetLastEventSeq()
	prev := startSeq + 1
	for prev < head {
		ev, err := w.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.GetSeq() != prev+1 {
			t.Fatalf("gap or duplicate: %d after %d", ev.GetSeq(), prev)
		}
		prev = ev.GetSeq()
	}
	// The gateway ended the unread stream (ABORTED SUBSCRIBER_LAGGED) and the watch resumed
	// from its cursor without skipping anything.
	if w.Reconnects() == 0 || clawplane.Reason(w.LastBreak()) != "SUBSCRIBER_LAGGED" {
		t.Fatalf("want a SUBSCRIBER_LAGGED resume, got %d reconnects, last break %v", w.Reconnects(), w.LastBreak())
	}
}
