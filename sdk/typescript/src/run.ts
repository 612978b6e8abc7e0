// Run handles: wait for, cancel and stream one run.

import type { CallOpts, Client, WaitOptions } from "./client.js";
import { EventKind } from "./gen/clawplane/v1/event_pb.js";
import { RunState, type Run } from "./gen/clawplane/v1/run_pb.js";

/**
 * True when the run will not change any more: SUCCEEDED, FAILED, CANCELLED, TIMED_OUT, or
 * INTERRUPTED on its second attempt (a first-attempt INTERRUPTED run is retried once).
 */
export function isTerminal(run: Pick<Run, "state" | "attempt">): boolean {
  switch (run.state) {
    case RunState.SUCCEEDED:
    case RunState.FAILED:
    case RunState.CANCELLED:
    case RunState.TIMED_OUT:
      return true;
    case RunState.INTERRUPTED:
      return run.attempt >= 2;
    default:
      return false;
  }
}

/** The name of a run state without its prefix, e.g. `SUCCEEDED`. */
export function runStateName(state: RunState): string {
  return RunState[state] ?? String(state);
}

/** One item of `RunHandle.updates()`. */
export type RunUpdate =
  /** More reply text. Concatenated, the deltas give the reply. */
  | { type: "delta"; text: string }
  /** A non-terminal state change (RUNNING, or a retry after an interruption: `attempt` 2). */
  | { type: "state"; run: Run }
  /** The final run; always the last item. */
  | { type: "done"; run: Run };

/** Options of `updates()` / `deltas()`. */
export interface StreamOptions {
  /** Stops the stream (the iterator then ends without the final run). */
  signal?: AbortSignal;
}

/**
 * A submitted run. Iterate it (`for await (const text of handle)`) to receive the reply
 * as it streams; `wait()` for the final run; `cancel()` to stop it.
 */
export class RunHandle implements AsyncIterable<string> {
  /** The run id (equals the idempotency key). */
  readonly runId: string;
  /** The canonical session key the run belongs to. */
  readonly sessionKey: string;
  /** True when the gateway returned an existing run for a repeated idempotency key. */
  readonly duplicate: boolean;
  /** The state when the run was accepted (QUEUED for a new run). */
  readonly state: RunState;
  /** The final run, once a stream (`deltas()`/`updates()`) has seen it. */
  result: Run | undefined;

  /** Event-log head observed before the submission, when known. */
  private readonly startSeq: bigint | undefined;

  constructor(
    readonly client: Client,
    init: {
      runId: string;
      sessionKey: string;
      duplicate: boolean;
      state: RunState;
      startSeq: bigint | undefined;
    },
  ) {
    this.runId = init.runId;
    this.sessionKey = init.sessionKey;
    this.duplicate = init.duplicate;
    this.state = init.state;
    this.startSeq = init.startSeq;
  }

  /** Reads the run now. */
  get(opts?: CallOpts): Promise<Run> {
    return this.client.agent.get(this.runId, opts);
  }

  /**
   * Waits up to `timeoutMs` (default `DEFAULT_WAIT_MS`, 30 s) for the run to finish and
   * returns it; when the timeout passes first, the run is returned in its current,
   * non-terminal state (check `isTerminal`). `signal` aborts the wait (CANCELLED), not the run.
   */
  wait(opts?: WaitOptions): Promise<Run> {
    return this.client.waitRun(this.runId, opts);
  }

  /** Cancels the run (a finished run is returned unchanged). */
  cancel(opts?: CallOpts): Promise<Run> {
    return this.client.agent.cancel(this.runId, opts);
  }

  /** The reply text as it streams; ends when the run is terminal (see `updates()`). */
  [Symbol.asyncIterator](): AsyncIterator<string> {
    return this.deltas();
  }

  /** The reply text as it streams. The generator's return value is the final run. */
  async *deltas(opts: StreamOptions = {}): AsyncGenerator<string, Run | undefined, undefined> {
    for await (const u of this.updates(opts)) {
      if (u.type === "delta") yield u.text;
      else if (u.type === "done") return u.run;
    }
    return undefined;
  }

  /**
   * Streams the run: text deltas as the model produces them, non-terminal state changes,
   * then `{type: "done", run}` with the final run, after which the iterator ends.
   *
   * Built on the auto-resuming event watch filtered by run id (kinds RUN and DELTA),
   * starting at the event head seen just before the run was submitted, so no delta is
   * missed and the log is not replayed. For a duplicate or attached run whose events may be
   * older, the run is read first; if it already finished, its reply is yielded as one delta.
   * Either way, concatenating the deltas of the final attempt gives `Run.replyText`.
   */
  async *updates(opts: StreamOptions = {}): AsyncGenerator<RunUpdate, void, undefined> {
    let after: bigint;
    if (!this.duplicate && this.startSeq !== undefined) {
      after = this.startSeq;
    } else {
      const run = await this.get({ signal: opts.signal });
      if (isTerminal(run)) {
        if (run.replyText) yield { type: "delta", text: run.replyText };
        this.result = run;
        yield { type: "done", run };
        return;
      }
      // Its events may predate our head: replay them (filtered).
      after = 0n;
    }
    const watch = this.client.watchEvents({
      afterSeq: after,
      filter: { runId: this.runId, kinds: [EventKind.RUN, EventKind.DELTA] },
      signal: opts.signal,
    });
    let text = "";
    let attempt = 0;
    for await (const event of watch) {
      const p = event.payload;
      if (p.case === "delta") {
        if (!p.value.text) continue;
        text += p.value.text;
        yield { type: "delta", text: p.value.text };
      } else if (p.case === "run") {
        const run = p.value;
        if (isTerminal(run)) {
          // Yield any reply text the deltas did not carry (e.g. replay gaps).
          if (run.replyText.startsWith(text) && run.replyText.length > text.length) {
            yield { type: "delta", text: run.replyText.slice(text.length) };
          }
          this.result = run;
          yield { type: "done", run };
          return;
        }
        if (run.attempt > attempt) {
          // A new attempt regenerates the reply from scratch.
          if (attempt !== 0) text = "";
          attempt = run.attempt;
        }
        yield { type: "state", run };
      }
    }
    if (opts.signal?.aborted) return;
    throw new Error("the event watch ended before the run finished");
  }
}
