package clawplane

import (
	"context"
	"errors"
	"io"
	"iter"
	"strconv"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	pb "github.com/clawplane/clawplane/sdk/go/gen/clawplane/v1"
)

const (
	watchBackoffMin = 100 * time.Millisecond
	watchBackoffMax = 2 * time.Second
)

// EventWatch is an EventService/Watch that resumes by itself.
//
// It remembers the last seq seen (from events and progress frames). When the stream
// breaks — a transport error, UNAVAILABLE (e.g. the gateway restarting), the server
// closing the stream, or ABORTED with reason SUBSCRIBER_LAGGED — it calls Watch again with
// afterSeq = that seq, backing off from 100 ms to 2 s, so nothing is skipped and no event
// is delivered twice (events at or below the cursor are dropped).
//
// OUT_OF_RANGE CURSOR_EXPIRED ends the watch with that *Error (metadata oldestSeq); any
// other error, or the end of ctx, ends it too.
//
// An EventWatch is not safe for concurrent use, except LastSeq, Reconnects and Close.
type EventWatch struct {
	client *Client
	ctx    context.Context
	cancel context.CancelFunc
	filter *pb.EventFilter
	cursor atomic.Uint64

	stream       grpc.ServerStreamingClient[pb.EventServiceWatchResponse]
	streamCancel context.CancelFunc
	backoff      time.Duration
	err          error
	reconnects   atomic.Int64
	lastBreak    atomic.Pointer[error]
}

// WatchEvents starts an auto-resuming watch of the events with seq > afterSeq matching
// filter (nil matches everything), then live ones. The watch ends when ctx ends or Close
// is called. Read it with Next or All.
func (c *Client) WatchEvents(ctx context.Context, afterSeq uint64, filter *pb.EventFilter) *EventWatch {
	if filter == nil {
		filter = &pb.EventFilter{}
	} else {
		filter = proto.Clone(filter).(*pb.EventFilter)
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &EventWatch{client: c, ctx: wctx, cancel: cancel, filter: filter, backoff: watchBackoffMin}
	w.cursor.Store(afterSeq)
	return w
}

// LastSeq is the last seq seen: the cursor a resume uses.
func (w *EventWatch) LastSeq() uint64 { return w.cursor.Load() }

// Reconnects counts how often the watch has re-called Watch after a break.
func (w *EventWatch) Reconnects() int { return int(w.reconnects.Load()) }

// LastBreak is the error that most recently made the watch reconnect (nil when none, or
// when the server closed the stream cleanly), e.g. ABORTED SUBSCRIBER_LAGGED or UNAVAILABLE.
func (w *EventWatch) LastBreak() error {
	if p := w.lastBreak.Load(); p != nil {
		return *p
	}
	return nil
}

// Close ends the watch; a blocked Next returns.
func (w *EventWatch) Close() { w.cancel() }

// All iterates over the events until the watch ends; the last pair carries the error that
// ended it (ctx.Err() after Close or the end of ctx). Breaking out of the loop closes the
// watch.
func (w *EventWatch) All() iter.Seq2[*pb.Event, error] {
	return func(yield func(*pb.Event, error) bool) {
		defer w.Close()
		for {
			ev, err := w.Next()
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(ev, nil) {
				return
			}
		}
	}
}

// Next blocks until the next event and returns it. After an error every later call
// returns the same error.
func (w *EventWatch) Next() (*pb.Event, error) {
	for {
		if w.err != nil {
			return nil, w.err
		}
		if err := w.ctx.Err(); err != nil {
			w.finish(err)
			continue
		}
		if w.stream == nil {
			sctx, scancel := context.WithCancel(w.ctx)
			stream, err := w.client.Events.Watch(sctx, &pb.EventServiceWatchRequest{
				AfterSeq: w.cursor.Load(),
				Filter:   w.filter,
			})
			if err != nil {
				scancel()
				if w.handle(err) {
					continue
				}
				return nil, w.err
			}
			w.stream, w.streamCancel = stream, scancel
		}
		frame, err := w.stream.Recv()
		if err != nil {
			w.dropStream()
			if errors.Is(err, io.EOF) {
				// The gateway closed the stream (e.g. shutting down): resume.
				w.reconnects.Add(1)
				w.pause()
				continue
			}
			if w.handle(err) {
				continue
			}
			return nil, w.err
		}
		w.backoff = watchBackoffMin
		cursor := w.cursor.Load()
		switch f := frame.GetFrame().(type) {
		case *pb.EventServiceWatchResponse_Event:
			ev := f.Event
			if ev.GetSeq() <= cursor {
				continue // already delivered before a reconnect
			}
			w.cursor.Store(ev.GetSeq())
			return ev, nil
		case *pb.EventServiceWatchResponse_Progress:
			if f.Progress.GetSeq() > cursor {
				w.cursor.Store(f.Progress.GetSeq())
			}
		}
	}
}

func (w *EventWatch) dropStream() {
	if w.streamCancel != nil {
		w.streamCancel()
	}
	w.stream, w.streamCancel = nil, nil
}

func (w *EventWatch) finish(err error) {
	w.dropStream()
	w.err = err
	w.cancel()
}

// handle decides what a failed Watch call or Recv means: true to reconnect (after a
// pause), false when the watch has ended with w.err set.
func (w *EventWatch) handle(err error) bool {
	if ctxErr := w.ctx.Err(); ctxErr != nil {
		w.finish(ctxErr)
		return false
	}
	if dl, bounded := w.ctx.Deadline(); bounded && Code(err) == codes.DeadlineExceeded &&
		time.Until(dl) < 2*waitMargin {
		// The server enforced ctx's deadline a moment before ctx's own timer fired: the
		// end of ctx, as ctx reports it.
		<-w.ctx.Done()
		w.finish(w.ctx.Err())
		return false
	}
	e, ok := wrapErr(err).(*Error)
	if !ok {
		w.finish(err)
		return false
	}
	if resumable(e) {
		var broke error = e
		w.lastBreak.Store(&broke)
		w.reconnects.Add(1)
		w.pause()
		return true
	}
	if e.Code == codes.OutOfRange && e.Reason == "CURSOR_EXPIRED" {
		if _, ok := e.Metadata["afterSeq"]; !ok {
			e.Metadata["afterSeq"] = strconv.FormatUint(w.cursor.Load(), 10)
		}
	}
	w.finish(e)
	return false
}

// resumable reports whether a stream error means "reconnect from the cursor":
// UNAVAILABLE, ABORTED SUBSCRIBER_LAGGED, or a transport-level failure (a status the
// gateway did not tag with an ErrorInfo).
func resumable(e *Error) bool {
	if e.TLS {
		return false
	}
	switch e.Code {
	case codes.Unavailable:
		return true
	case codes.Aborted:
		return e.Reason == "SUBSCRIBER_LAGGED"
	case codes.Unknown, codes.Internal, codes.Canceled:
		return !hasErrorInfo(e)
	}
	return false
}

func (w *EventWatch) pause() {
	t := time.NewTimer(w.backoff)
	defer t.Stop()
	select {
	case <-t.C:
	case <-w.ctx.Done():
	}
	w.backoff = min(w.backoff*2, watchBackoffMax)
}
