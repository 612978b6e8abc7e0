package clawplane_test

import (
	"testing"
	"time"

	clawplane "github.com/clawplane/clawplane/sdk/go"
	pb "github.com/clawplane/clawplane/sdk/go/gen/clawplane/v1"
)

type watched struct {
	ev  *pb.Event
	err error
}

// pump reads w in a goroutine (so the watch is genuinely mid-stream while the gateway
// restarts).
func pump(w *clawplane.EventWatch) <-chan watched {
	out := make(chan watched, 1024)
	go func() {
		defer close(out)
		for {
			ev, err := w.Next()
			out <- watched{ev, err}
			if err != nil {
				return
			}
		}
	}()
	return out
}

// until collects events from ch until one is the terminal run event of runID.
func until(t *testing.T, ch <-chan watched, runID string, timeout time.Duration) []*pb.Event {
	t.Helper()
	var got []*pb.Event
	deadline := time.After(timeout)
	for {
		select {
		case w, ok := <-ch:
			if !ok {
				t.Fatal("watch ended")
			}
			if w.err != nil {
				t.Fatalf("watch error: %v", w.err)
			}
			got = append(got, w.ev)
			if r := w.ev.GetRun(); r != nil && r.GetRunId() == runID && clawplane.IsTerminal(r) {
				return got
			}
		case <-deadline:
			t.Fatalf("no terminal event for run %s within %v (got %d events)", runID, timeout, len(got))
		}
	}
}

func seqs(evs []*pb.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.GetSeq()
	}
	return out
}

func TestWatchEventsResumesAcrossRestart(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	c := g.connect(t, "")
	ctx := testCtx(t, 80*time.Second)
	filter := &pb.EventFilter{Kinds: []pb.EventKind{pb.EventKind_EVENT_KIND_RUN, pb.EventKind_EVENT_KIND_DELTA}}

	w := c.WatchEvents(ctx, 0, filter)
	defer w.Close()
	ch := pump(w)

	runA, err := c.AgentRun(ctx, &pb.AgentServiceRunRequest{Message: "before restart"})
	if err != nil {
		t.Fatal(err)
	}
	got := until(t, ch, runA.RunID, 20*time.Second)

	// Restart the gateway under the open watch: SIGTERM, stay down for a moment (the watch
	// meets refused connections and backs off), then the same port and data dir.
	g.stop()
	time.Sleep(time.Second)
	g.start(g.port)

	// The client re-dials by itself; submit once the gateway answers again.
	var runB *clawplane.Run
	deadline := time.Now().Add(20 * time.Second)
	for {
		runB, err = c.AgentRun(ctx, &pb.AgentServiceRunRequest{Message: "after restart"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not answer after the restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got = append(got, until(t, ch, runB.RunID, 30*time.Second)...)

	if w.Reconnects() == 0 {
		t.Fatal("the watch never had to reconnect: the restart was not observed")
	}
	for i := 1; i < len(got); i++ {
		if got[i].GetSeq() <= got[i-1].GetSeq() {
			t.Fatalf("seqs not strictly increasing at %d: %v", i, seqs(got))
		}
	}
	// Both runs went QUEUED -> RUNNING -> SUCCEEDED with their deltas in between.
	for _, id := range []string{runA.RunID, runB.RunID} {
		var states []pb.RunState
		deltas := 0
		for _, e := range got {
			if e.GetRunId() != id {
				continue
			}
			if r := e.GetRun(); r != nil {
				states = append(states, r.GetState())
			} else if e.GetDelta() != nil {
				deltas++
			}
		}
		if len(states) < 2 || states[len(states)-1] != pb.RunState_RUN_STATE_SUCCEEDED || deltas == 0 {
			t.Fatalf("run %s: states %v, %d deltas", id, states, deltas)
		}
	}

	// A fresh watch over the same range sees exactly the same seqs: no gap, no duplicate.
	last := got[len(got)-1].GetSeq()
	fresh := c.WatchEvents(ctx, 0, filter)
	defer fresh.Close()
	var replay []*pb.Event
	for ev, err := range fresh.All() {
		if err != nil {
			t.Fatal(err)
		}
		replay = append(replay, ev)
		if ev.GetSeq() >= last {
			break
		}
	}
	a, b := seqs(got), seqs(replay)
	if len(a) != len(b) {
		t.Fatalf("resumed watch saw %v\nfresh watch saw   %v", a, b)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("resumed watch saw %v\nfresh watch saw   %v", a, b)
		}
	}
	if w.LastSeq() < last {
		t.Fatalf("LastSeq %d < last event %d", w.LastSeq(), last)
	}

	// Resuming from a cursor skips what came before it.
	mid := got[len(got)/2].GetSeq()
	resumed := c.WatchEvents(ctx, mid, filter)
	ev, err := resumed.Next()
	resumed.Close()
	if err != nil || ev.GetSeq() <= mid {
		t.Fatalf("watch after %d started at %v (%v)", mid, ev.GetSeq(), err)
	}
	// After Close, Next reports the end.
	if _, err := resumed.Next(); err == nil {
		t.Fatal("Next after Close should fail")
	}
}
