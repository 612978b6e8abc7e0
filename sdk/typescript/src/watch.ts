// The auto-resuming event watch.

import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";

import type { Client } from "./client.js";
import { sleep } from "./util.js";
import { ClawplaneError, CursorExpiredError, isTransientStreamError } from "./errors.js";
import type { Event, EventFilterSchema } from "./gen/clawplane/v1/event_pb.js";

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 2000;

/** What to watch. */
export interface WatchOptions {
  /**
   * Deliver events with seq greater than this (default 0: replay from the oldest retained
   * event). Numbers are accepted for convenience; seqs are uint64 (`bigint`).
   */
  afterSeq?: bigint | number;
  /** Which events (session key, run id, kinds); empty matches everything. */
  filter?: MessageInitShape<typeof EventFilterSchema>;
  /** Start at the current head of the log (only new events); ignored when `afterSeq` > 0. */
  followOnly?: boolean;
  /** Ends the watch (the iterator then finishes without an error). */
  signal?: AbortSignal;
  /** Called for every idle `progress` frame with the head seq (the cursor advances too). */
  onProgress?: (seq: bigint) => void;
  /** Called before every reconnect, with the error (undefined when the stream just ended). */
  onReconnect?: (afterSeq: bigint, error: ClawplaneError | undefined) => void;
}

/**
 * An `EventService/Watch` that resumes by itself, as an async iterator of events.
 *
 * It remembers the last seq seen (`lastSeq`, from events and progress frames). When the
 * stream breaks — a transport error, UNAVAILABLE (e.g. the gateway restarting), the stream
 * ending, or ABORTED with reason `SUBSCRIBER_LAGGED` — it calls Watch again with
 * `afterSeq = lastSeq`, backing off from 100 ms to 2 s, so nothing is skipped and no event
 * is yielded twice (events at or below the cursor are dropped).
 *
 * OUT_OF_RANGE `CURSOR_EXPIRED` ends the iteration with a `CursorExpiredError` carrying
 * `oldestSeq`; any other error ends it with a `ClawplaneError`. Breaking out of a
 * `for await` loop, `close()`, or the `signal` ends it cleanly.
 */
export class EventWatch implements AsyncIterable<Event> {
  private cursor: bigint;
  private readonly abort = new AbortController();
  private started = false;

  constructor(
    private readonly client: Client,
    private readonly opts: WatchOptions = {},
  ) {
    this.cursor = BigInt(opts.afterSeq ?? 0);
    if (opts.signal) {
      if (opts.signal.aborted) this.abort.abort();
      else opts.signal.addEventListener("abort", () => this.abort.abort(), { once: true });
    }
  }

  /** The last seq seen: the cursor a resume uses. */
  get lastSeq(): bigint {
    return this.cursor;
  }

  /** Stops the watch; a pending `next()` resolves as done. */
  close(): void {
    this.abort.abort();
  }

  [Symbol.asyncIterator](): AsyncIterator<Event> {
    if (this.started) throw new Error("an EventWatch can be iterated only once");
    this.started = true;
    return this.run();
  }

  private async *run(): AsyncGenerator<Event, void, undefined> {
    const closed = this.abort.signal;
    if (this.opts.followOnly && this.cursor === 0n) {
      // Resolve the head once, so that a later resume continues from there.
      this.cursor = (await this.client.status()).lastEventSeq;
    }
    let backoff = BACKOFF_MIN_MS;
    while (!closed.aborted) {
      const call = new AbortController();
      const onClose = () => call.abort();
      closed.addEventListener("abort", onClose, { once: true });
      let reconnectError: ClawplaneError | undefined;
      try {
        const stream = this.client.raw.events.watch(
          { afterSeq: this.cursor, filter: this.opts.filter ?? {}, followOnly: false },
          { signal: call.signal },
        );
        for await (const resp of stream) {
          backoff = BACKOFF_MIN_MS;
          const frame = resp.frame;
          if (frame.case === "event") {
            const ev = frame.value;
            // Already delivered before a reconnect.
            if (ev.seq <= this.cursor) continue;
            this.cursor = ev.seq;
            yield ev;
          } else if (frame.case === "progress") {
            if (frame.value.seq > this.cursor) this.cursor = frame.value.seq;
            this.opts.onProgress?.(frame.value.seq);
          }
        }
        // The gateway closed the stream (e.g. shutting down): resume.
      } catch (e) {
        if (closed.aborted) return;
        const err = ClawplaneError.from(e);
        if (
          err.grpcCode === Code.OutOfRange &&
          err.reason === "CURSOR_EXPIRED"
        ) {
          throw new CursorExpiredError(err, this.cursor);
        }
        const lagged = err.grpcCode === Code.Aborted && err.reason === "SUBSCRIBER_LAGGED";
        if (!lagged && !isTransientStreamError(err)) throw err;
        reconnectError = err;
      } finally {
        closed.removeEventListener("abort", onClose);
        call.abort();
      }
      if (closed.aborted) return;
      this.opts.onReconnect?.(this.cursor, reconnectError);
      try {
        await sleep(backoff, closed);
      } catch {
        return;
      }
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    }
  }
}
