package clawplane

import (
	"context"
	"iter"
	"strings"
	"time"

	pb "github.com/clawplane/clawplane/sdk/go/gen/clawplane/v1"
)

// IsTerminal reports whether the run will not change any more: SUCCEEDED, FAILED,
// CANCELLED, TIMED_OUT, or INTERRUPTED on its second attempt (a first-attempt INTERRUPTED
// run is retried once).
func IsTerminal(run *pb.Run) bool {
	switch run.GetState() {
	case pb.RunState_RUN_STATE_SUCCEEDED, pb.RunState_RUN_STATE_FAILED,
		pb.RunState_RUN_STATE_CANCELLED, pb.RunState_RUN_STATE_TIMED_OUT:
		return true
	case pb.RunState_RUN_STATE_INTERRUPTED:
		return run.GetAttempt() >= 2
	}
	return false
}

// Run is a handle to a submitted run (from AgentRun, ChatSend, SessionsSend or
// RunHandle).
type Run struct {
	// RunID is the run id.
	RunID string
	// SessionKey is the canonical session key the run belongs to.
	SessionKey string
	// Duplicate is true when the gateway returned an existing run for a repeated
	// idempotency key.
	Duplicate bool
	// State is the state when the run was accepted (QUEUED for a new run).
	State pb.RunState

	client *Client
	// startSeq is the event-log head observed before the submission, when known.
	startSeq *uint64
}

// Client is the client this handle uses.
func (r *Run) Client() *Client { return r.client }

// Get reads the run now (AgentService/GetRun).
func (r *Run) Get(ctx context.Context) (*pb.Run, error) { return r.client.GetRun(ctx, r.RunID) }

// Wait waits up to DefaultWaitTimeout (30 s) for the run to finish and returns it as it
// stands then (check IsTerminal); ctx ending first returns ctx's error (see
// Client.WaitRunFor).
func (r *Run) Wait(ctx context.Context) (*pb.Run, error) { return r.client.WaitRun(ctx, r.RunID) }

// WaitFor is Wait with its own time limit d (see Client.WaitRunFor).
func (r *Run) WaitFor(ctx context.Context, d time.Duration) (*pb.Run, error) {
	return r.client.WaitRunFor(ctx, r.RunID, d)
}

// Cancel cancels the run (AgentService/CancelRun); a finished run is returned unchanged.
func (r *Run) Cancel(ctx context.Context) (*pb.Run, error) {
	return r.client.CancelRun(ctx, r.RunID)
}

// RunUpdate is one item of Run.Stream: either a piece of reply text (Delta), a
// non-terminal state change (Run set, Done false), or the final run (Run set, Done true),
// which is always the last item.
type RunUpdate struct {
	// Delta is more reply text; concatenated, the deltas give Run.ReplyText.
	Delta string
	// Run is the run after a state change (nil for a delta).
	Run *pb.Run
	// Done marks the final item: Run is terminal.
	Done bool
}

// Stream streams the reply: text deltas as the model produces them, non-terminal state
// changes, then the final run (Done), after which the iteration ends. An error ends it
// too (yielded as the last pair).
//
// It is built on the auto-resuming EventWatch filtered by run id and kinds RUN and DELTA,
// starting at the event-log head seen just before the run was submitted (so no delta is
// missed and the log is not replayed). For a duplicate or attached run, whose events may
// be older, the run is read first; if it already finished, its reply is yielded as one
// delta. Either way, concatenating the deltas of the final attempt gives Run.ReplyText.
func (r *Run) Stream(ctx context.Context) iter.Seq2[RunUpdate, error] {
	return func(yield func(RunUpdate, error) bool) {
		var after uint64
		if !r.Duplicate && r.startSeq != nil {
			after = *r.startSeq
		} else {
			run, err := r.Get(ctx)
			if err != nil {
				yield(RunUpdate{}, err)
				return
			}
			if IsTerminal(run) {
				if run.GetReplyText() != "" && !yield(RunUpdate{Delta: run.GetReplyText()}, nil) {
					return
				}
				yield(RunUpdate{Run: run, Done: true}, nil)
				return
			}
			after = 0 // its events may predate our head: replay them (filtered)
		}
		w := r.client.WatchEvents(ctx, after, &pb.EventFilter{
			RunId: r.RunID,
			Kinds: []pb.EventKind{pb.EventKind_EVENT_KIND_RUN, pb.EventKind_EVENT_KIND_DELTA},
		})
		defer w.Close()
		var text strings.Builder
		var attempt uint32
		for {
			ev, err := w.Next()
			if err != nil {
				yield(RunUpdate{}, err)
				return
			}
			switch p := ev.GetPayload().(type) {
			case *pb.Event_Delta:
				if p.Delta.GetText() == "" {
					continue
				}
				text.WriteString(p.Delta.GetText())
				if !yield(RunUpdate{Delta: p.Delta.GetText()}, nil) {
					return
				}
			case *pb.Event_Run:
				run := p.Run
				if IsTerminal(run) {
					// Yield any reply text the deltas did not carry (e.g. replay gaps).
					if rest, ok := strings.CutPrefix(run.GetReplyText(), text.String()); ok && rest != "" {
						if !yield(RunUpdate{Delta: rest}, nil) {
							return
						}
					}
					yield(RunUpdate{Run: run, Done: true}, nil)
					return
				}
				if run.GetAttempt() > attempt {
					if attempt != 0 {
						text.Reset() // a new attempt regenerates the reply from scratch
					}
					attempt = run.GetAttempt()
				}
				if !yield(RunUpdate{Run: run}, nil) {
					return
				}
			}
		}
	}
}
