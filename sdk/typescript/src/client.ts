// The connected client: the generated Connect clients plus typed convenience verbs.
// Transport-agnostic (works with the Node gRPC transport and the browser gRPC-Web one).

import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  Code,
  createClient,
  type CallOptions,
  type Client as ConnectClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";

import {
  AgentService,
  type AgentServiceRunRequestSchema,
  type ListRunsRequestSchema,
  type ListRunsResponse,
} from "./gen/clawplane/v1/agent_pb.js";
import { ChannelService } from "./gen/clawplane/v1/channel_pb.js";
import {
  ChatService,
  type ChatServiceAbortResponse,
  type ChatServiceSendRequestSchema,
} from "./gen/clawplane/v1/chat_pb.js";
import {
  DeviceService,
  type ApprovePairingResponse,
  type ListDevicesResponse,
  type PairingRequest,
} from "./gen/clawplane/v1/device_pb.js";
import { EventService } from "./gen/clawplane/v1/event_pb.js";
import {
  GatewayService,
  type GatewayServiceStatusResponse,
  type GatewayServiceWakeRequestSchema,
  type GatewayServiceWakeResponse,
  type GetCallerResponse,
} from "./gen/clawplane/v1/gateway_pb.js";
import type { Run } from "./gen/clawplane/v1/run_pb.js";
import {
  SessionService,
  type Message,
  type Session,
  type SessionServiceSendRequestSchema,
} from "./gen/clawplane/v1/session_pb.js";
import { WebhookService } from "./gen/clawplane/v1/webhook_pb.js";
import { ClawplaneError, isRetryableUnary } from "./errors.js";
import { RunHandle } from "./run.js";
import { newIdempotencyKey, sleep } from "./util.js";
import { EventWatch, type WatchOptions } from "./watch.js";

/** Default gateway URL (`CLAWPLANE_URL` overrides it). */
export const DEFAULT_URL = "http://127.0.0.1:18789";

/** Largest message the clients accept (transcripts can be long). */
export const MAX_READ_BYTES = 64 * 1024 * 1024;

/** Attempts for idempotent unary calls that fail with UNAVAILABLE (AIP-194). */
const UNARY_ATTEMPTS = 3;
/** Longest single `AgentService/Wait` call; the server treats 0 as 30 s. */
const WAIT_CHUNK_MS = 30_000;
/**
 * Default total time `wait()` waits for a run: 30 s, as in every clawplane SDK, the CLI's
 * `runs wait` and the gateway's own `AgentService/Wait`.
 */
export const DEFAULT_WAIT_MS = 30_000;

/** Input of `agent.run` (`AgentServiceRunRequest` fields; `message` required). */
export type AgentRunInput = MessageInitShape<typeof AgentServiceRunRequestSchema>;
/** Input of `chat.send` (`ChatServiceSendRequest` fields; `sessionKey`, `message` required). */
export type ChatSendInput = MessageInitShape<typeof ChatServiceSendRequestSchema>;
/** Input of `sessions.send` (`SessionServiceSendRequest`; `sessionKey`, `message` required). */
export type SessionsSendInput = MessageInitShape<typeof SessionServiceSendRequestSchema>;
/** Input of `wake`. */
export type WakeInput = MessageInitShape<typeof GatewayServiceWakeRequestSchema>;
/** Input of `agent.list`. */
export type ListRunsInput = MessageInitShape<typeof ListRunsRequestSchema>;

/**
 * Per-call options of every verb. `timeoutMs` bounds the whole verb (its retries and pages
 * included): when it passes, the verb fails with DEADLINE_EXCEEDED (0 or less: at once,
 * before anything is sent). `signal` aborts the verb: it fails with CANCELLED.
 */
export interface CallOpts {
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Options of `wait()`. Unlike other verbs, the wait's `timeoutMs` is how long to wait: when
 * it passes, the run is returned as it stands (check `isTerminal`).
 */
export interface WaitOptions {
  /** Total time to wait in milliseconds (default `DEFAULT_WAIT_MS`, 30 s). 0 just reads the run. */
  timeoutMs?: number;
  /** Aborts the wait: it fails with CANCELLED (the run itself goes on). */
  signal?: AbortSignal;
}

/** One verb's time limit and abort signal, shared by all the RPCs it makes. */
class Budget {
  private readonly end: number | undefined;
  constructor(private readonly opts: CallOpts = {}) {
    this.end = opts.timeoutMs === undefined ? undefined : Date.now() + opts.timeoutMs;
  }

  static of(opts: CallOpts | Budget | undefined): Budget {
    return opts instanceof Budget ? opts : new Budget(opts);
  }

  get signal(): AbortSignal | undefined {
    return this.opts.signal;
  }

  /** The options of the verb's next RPC: the signal and the time left. */
  next(): CallOptions {
    if (this.opts.signal?.aborted) {
      throw new ClawplaneError({ code: Code.Canceled, message: "the call was aborted", cause: this.opts.signal.reason });
    }
    if (this.end === undefined) return { signal: this.opts.signal };
    const left = this.end - Date.now();
    if (left <= 0) {
      throw new ClawplaneError({
        code: Code.DeadlineExceeded,
        message: `the call did not finish within its timeout of ${this.opts.timeoutMs} ms`,
      });
    }
    return { signal: this.opts.signal, timeoutMs: left };
  }

  /** True when `ms` from now is past the time limit. */
  passedIn(ms: number): boolean {
    return this.end !== undefined && Date.now() + ms >= this.end;
  }
}

/** The generated Connect clients of every service, sharing the client's transport. */
export interface RawClients {
  agent: ConnectClient<typeof AgentService>;
  chat: ConnectClient<typeof ChatService>;
  sessions: ConnectClient<typeof SessionService>;
  events: ConnectClient<typeof EventService>;
  gateway: ConnectClient<typeof GatewayService>;
  devices: ConnectClient<typeof DeviceService>;
  channels: ConnectClient<typeof ChannelService>;
  webhooks: ConnectClient<typeof WebhookService>;
}

/** An interceptor adding `authorization: Bearer <token>` to every call (none without token). */
export function bearerAuth(token: string | undefined): Interceptor {
  return (next) => async (req) => {
    if (token) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

/** A connection to one clawplane gateway. Build one with `connect()`. */
export class Client {
  /** The gateway URL. */
  readonly url: string;
  /** The Connect transport every call uses (bearer auth already applied). */
  readonly transport: Transport;
  /** The generated clients, for calls without a convenience verb. */
  readonly raw: RawClients;

  /** `ChatService` verbs (OpenClaw `chat.*`). */
  readonly chat: {
    /** `ChatService/Send`: sends into a session (created on first use); returns the run. */
    send(req: ChatSendInput, opts?: CallOpts): Promise<RunHandle>;
    /** `ChatService/History`, every page: the session and its transcript, oldest first. */
    history(sessionKey: string, opts?: CallOpts): Promise<{ session: Session; messages: Message[] }>;
    /** `ChatService/Abort`: cancels a session's queued and running runs (or one of them). */
    abort(sessionKey: string, runId?: string, opts?: CallOpts): Promise<ChatServiceAbortResponse>;
  };

  /** `SessionService` verbs (OpenClaw `sessions.*`). */
  readonly sessions: {
    /** `SessionService/Send`: sends into an existing session; returns the run. */
    send(req: SessionsSendInput, opts?: CallOpts): Promise<RunHandle>;
    /** `SessionService/List`, every page. `agentId` empty lists all agents' sessions. */
    list(agentId?: string, opts?: CallOpts): Promise<Session[]>;
    /** `SessionService/Get` for a bare or full session key. */
    get(sessionKey: string, opts?: CallOpts): Promise<Session>;
  };

  /** `AgentService` verbs (OpenClaw `agent`, `agent.wait`). */
  readonly agent: {
    /** `AgentService/Run`: starts an agent turn; returns the run's handle. */
    run(req: AgentRunInput, opts?: CallOpts): Promise<RunHandle>;
    /** `AgentService/GetRun`. */
    get(runId: string, opts?: CallOpts): Promise<Run>;
    /** Waits (looping `AgentService/Wait`) and returns the run; non-terminal on timeout. */
    wait(runId: string, opts?: WaitOptions): Promise<Run>;
    /** `AgentService/CancelRun` (a finished run is returned unchanged). */
    cancel(runId: string, opts?: CallOpts): Promise<Run>;
    /** `AgentService/ListRuns`: one page of runs, newest first. */
    list(req?: ListRunsInput, opts?: CallOpts): Promise<ListRunsResponse>;
    /** A handle for an existing run (reads it once). */
    handle(runId: string, opts?: CallOpts): Promise<RunHandle>;
  };

  /** `DeviceService` verbs (OpenClaw `device.pair.*`). */
  readonly devices: {
    /** `DeviceService/ListDevices`: pending pairing requests and paired devices. */
    list(opts?: CallOpts): Promise<ListDevicesResponse>;
    /** `DeviceService/ApprovePairing`. */
    approve(requestId: string, opts?: CallOpts): Promise<ApprovePairingResponse>;
    /** `DeviceService/RejectPairing`; returns the rejected request. */
    reject(requestId: string, opts?: CallOpts): Promise<PairingRequest | undefined>;
  };

  constructor(opts: { url: string; transport: Transport }) {
    this.url = opts.url;
    this.transport = opts.transport;
    const t = opts.transport;
    this.raw = {
      agent: createClient(AgentService, t),
      chat: createClient(ChatService, t),
      sessions: createClient(SessionService, t),
      events: createClient(EventService, t),
      gateway: createClient(GatewayService, t),
      devices: createClient(DeviceService, t),
      channels: createClient(ChannelService, t),
      webhooks: createClient(WebhookService, t),
    };
    const raw = this.raw;

    this.chat = {
      send: async (req, opts) => {
        const { req: r, auto } = withKey(req);
        return this.submit(auto, (o) => raw.chat.send(r, o), opts);
      },
      history: async (sessionKey, opts) => {
        const b = new Budget(opts);
        let session: Session | undefined;
        const messages: Message[] = [];
        let pageToken = "";
        for (;;) {
          const resp = await this.retry(
            (o) => raw.chat.history({ sessionKey, pageSize: 1000, pageToken }, o),
            b,
          );
          session ??= resp.session;
          messages.push(...resp.messages);
          if (!resp.nextPageToken || resp.nextPageToken === pageToken) break;
          pageToken = resp.nextPageToken;
        }
        if (!session) throw protocolError("ChatService/History returned no session");
        return { session, messages };
      },
      abort: (sessionKey, runId, opts) =>
        this.call((o) => raw.chat.abort({ sessionKey, runId: runId ?? "" }, o), opts),
    };

    this.sessions = {
      send: async (req, opts) => {
        const { req: r, auto } = withKey(req);
        return this.submit(auto, (o) => raw.sessions.send(r, o), opts);
      },
      list: async (agentId, opts) => {
        const b = new Budget(opts);
        const out: Session[] = [];
        let pageToken = "";
        for (;;) {
          const resp = await this.retry(
            (o) => raw.sessions.list({ agentId: agentId ?? "", pageSize: 1000, pageToken }, o),
            b,
          );
          out.push(...resp.sessions);
          if (!resp.nextPageToken || resp.nextPageToken === pageToken) return out;
          pageToken = resp.nextPageToken;
        }
      },
      get: async (sessionKey, opts) => {
        const resp = await this.retry((o) => raw.sessions.get({ sessionKey }, o), opts);
        if (!resp.session) throw protocolError("SessionService/Get returned no session");
        return resp.session;
      },
    };

    this.agent = {
      run: async (req, opts) => {
        const { req: r, auto } = withKey(req);
        return this.submit(auto, (o) => raw.agent.run(r, o), opts);
      },
      get: async (runId, opts) => {
        const resp = await this.retry((o) => raw.agent.getRun({ runId }, o), opts);
        if (!resp.run) throw protocolError("AgentService/GetRun returned no run");
        return resp.run;
      },
      wait: (runId, opts) => this.waitRun(runId, opts),
      cancel: async (runId, opts) => {
        const resp = await this.retry((o) => raw.agent.cancelRun({ runId }, o), opts);
        if (!resp.run) throw protocolError("AgentService/CancelRun returned no run");
        return resp.run;
      },
      list: (req, opts) => this.retry((o) => raw.agent.listRuns(req ?? {}, o), opts),
      handle: async (runId, opts) => {
        const run = await this.agent.get(runId, opts);
        return new RunHandle(this, {
          runId: run.runId,
          sessionKey: run.sessionKey,
          duplicate: false,
          state: run.state,
          startSeq: undefined,
        });
      },
    };

    this.devices = {
      list: (opts) => this.retry((o) => raw.devices.listDevices({}, o), opts),
      approve: (requestId, opts) => this.call((o) => raw.devices.approvePairing({ requestId }, o), opts),
      reject: async (requestId, opts) =>
        (await this.call((o) => raw.devices.rejectPairing({ requestId }, o), opts)).request,
    };
  }

  /** `GatewayService/Status`: version, defaults, queue depths and the event-log head. */
  status(opts?: CallOpts): Promise<GatewayServiceStatusResponse> {
    return this.retry((o) => this.raw.gateway.status({}, o), opts);
  }

  /** `GatewayService/GetCaller`: the credential kind and scopes the gateway sees. */
  caller(opts?: CallOpts): Promise<GetCallerResponse> {
    return this.retry((o) => this.raw.gateway.getCaller({}, o), opts);
  }

  /** `GatewayService/Wake`. Not retried: a repeat could start a second heartbeat. */
  wake(req: WakeInput, opts?: CallOpts): Promise<GatewayServiceWakeResponse> {
    return this.call((o) => this.raw.gateway.wake(req, o), opts);
  }

  /**
   * An auto-resuming `EventService/Watch`: events with seq > `afterSeq` matching `filter`,
   * then live ones, as an async iterator. See `EventWatch` for the resume rules.
   */
  watchEvents(opts: WatchOptions = {}): EventWatch {
    return new EventWatch(this, opts);
  }

  /**
   * Waits up to `timeoutMs` (default 30 s) for a run to reach a terminal state
   * (`AgentService/Wait` chunks) and returns it as it stands then.
   */
  async waitRun(runId: string, opts: WaitOptions = {}): Promise<Run> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_WAIT_MS;
    const deadline = Date.now() + timeoutMs;
    let backoff = 100;
    for (;;) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) return this.agent.get(runId, { signal: opts.signal });
      const chunk = Math.max(1, Math.min(remaining, WAIT_CHUNK_MS));
      try {
        const resp = await this.raw.agent.wait(
          { runId, timeoutMs: Math.ceil(chunk) },
          // Leave the server room to answer done=false before the call times out.
          { timeoutMs: chunk + 10_000, signal: opts.signal },
        );
        if (!resp.run) throw protocolError("AgentService/Wait returned no run");
        if (resp.done || Date.now() >= deadline) return resp.run;
        backoff = 100;
      } catch (e) {
        const err = ClawplaneError.from(e);
        if (opts.signal?.aborted) throw err;
        if (isRetryableUnary(err) && Date.now() + backoff < deadline) {
          await sleep(backoff, opts.signal);
          backoff = Math.min(backoff * 2, 2000);
          continue;
        }
        throw err;
      }
    }
  }

  /**
   * Runs a unary call once, converting errors to `ClawplaneError`. `fn` gets the call
   * options (signal, time left) to pass to the RPC.
   */
  async call<T>(fn: (o: CallOptions) => Promise<T>, opts?: CallOpts): Promise<T> {
    const b = Budget.of(opts);
    try {
      return await fn(b.next());
    } catch (e) {
      throw ClawplaneError.from(e);
    }
  }

  /**
   * Runs an idempotent unary call, retrying UNAVAILABLE (and a connection reset before the
   * answer) a few times with backoff within `opts.timeoutMs`; nothing else is retried.
   */
  async retry<T>(fn: (o: CallOptions) => Promise<T>, opts?: CallOpts): Promise<T> {
    return (await this.retryCounting(fn, Budget.of(opts))).value;
  }

  private async retryCounting<T>(
    fn: (o: CallOptions) => Promise<T>,
    b: Budget,
  ): Promise<{ value: T; attempts: number }> {
    let delay = 100;
    for (let attempt = 1; ; attempt++) {
      try {
        return { value: await fn(b.next()), attempts: attempt };
      } catch (e) {
        const err = ClawplaneError.from(e);
        if (isRetryableUnary(err) && attempt < UNARY_ATTEMPTS && !b.passedIn(delay)) {
          await sleep(delay, b.signal).catch(() => undefined);
          delay *= 2;
          continue;
        }
        throw err;
      }
    }
  }

  /** The event-log head, or undefined when the caller may not read status. */
  private async headSeq(b: Budget): Promise<bigint | undefined> {
    try {
      return (await this.status(b)).lastEventSeq;
    } catch (e) {
      const code = ClawplaneError.from(e).grpcCode;
      if (code === Code.Canceled || code === Code.DeadlineExceeded) throw e;
      return undefined;
    }
  }

  private async submit(
    autoKey: boolean,
    send: (o: CallOptions) => Promise<{ runId: string; sessionKey: string; state: number; duplicate: boolean }>,
    opts: CallOpts | undefined,
  ): Promise<RunHandle> {
    const b = new Budget(opts);
    const head = await this.headSeq(b);
    const { value: resp, attempts } = await this.retryCounting(send, b);
    return new RunHandle(this, {
      runId: resp.runId,
      sessionKey: resp.sessionKey,
      // A retry of our own generated key answers "duplicate": that is still our new run.
      duplicate: resp.duplicate && !(autoKey && attempts > 1),
      state: resp.state,
      startSeq: head,
    });
  }
}

function withKey<T extends { idempotencyKey?: string }>(req: T): { req: T; auto: boolean } {
  if (req.idempotencyKey) return { req, auto: false };
  return { req: { ...req, idempotencyKey: newIdempotencyKey() }, auto: true };
}

function protocolError(message: string): ClawplaneError {
  return new ClawplaneError({ code: Code.Internal, message: `unexpected answer: ${message}` });
}

export type { CallOptions };
