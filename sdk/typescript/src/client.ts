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
/** Default total time `wait()` waits for a run. */
export const DEFAULT_WAIT_MS = 300_000;

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

/** Options of `wait()`. */
export interface WaitOptions {
  /** Total time to wait in milliseconds (default 300000). 0 just reads the run. */
  timeoutMs?: number;
  /** Aborts the wait. */
  signal?: AbortSignal;
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
    send(req: ChatSendInput): Promise<RunHandle>;
    /** `ChatService/History`, every page: the session and its transcript, oldest first. */
    history(sessionKey: string): Promise<{ session: Session; messages: Message[] }>;
    /** `ChatService/Abort`: cancels a session's queued and running runs (or one of them). */
    abort(sessionKey: string, runId?: string): Promise<ChatServiceAbortResponse>;
  };

  /** `SessionService` verbs (OpenClaw `sessions.*`). */
  readonly sessions: {
    /** `SessionService/Send`: sends into an existing session; returns the run. */
    send(req: SessionsSendInput): Promise<RunHandle>;
    /** `SessionService/List`, every page. `agentId` empty lists all agents' sessions. */
    list(agentId?: string): Promise<Session[]>;
    /** `SessionService/Get` for a bare or full session key. */
    get(sessionKey: string): Promise<Session>;
  };

  /** `AgentService` verbs (OpenClaw `agent`, `agent.wait`). */
  readonly agent: {
    /** `AgentService/Run`: starts an agent turn; returns the run's handle. */
    run(req: AgentRunInput): Promise<RunHandle>;
    /** `AgentService/GetRun`. */
    get(runId: string): Promise<Run>;
    /** Waits (looping `AgentService/Wait`) and returns the run; non-terminal on timeout. */
    wait(runId: string, opts?: WaitOptions): Promise<Run>;
    /** `AgentService/CancelRun` (a finished run is returned unchanged). */
    cancel(runId: string): Promise<Run>;
    /** `AgentService/ListRuns`: one page of runs, newest first. */
    list(req?: ListRunsInput): Promise<ListRunsResponse>;
    /** A handle for an existing run (reads it once). */
    handle(runId: string): Promise<RunHandle>;
  };

  /** `DeviceService` verbs (OpenClaw `device.pair.*`). */
  readonly devices: {
    /** `DeviceService/ListDevices`: pending pairing requests and paired devices. */
    list(): Promise<ListDevicesResponse>;
    /** `DeviceService/ApprovePairing`. */
    approve(requestId: string): Promise<ApprovePairingResponse>;
    /** `DeviceService/RejectPairing`; returns the rejected request. */
    reject(requestId: string): Promise<PairingRequest | undefined>;
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
      send: async (req) => {
        const { req: r, auto } = withKey(req);
        return this.submit(auto, () => raw.chat.send(r));
      },
      history: async (sessionKey) => {
        let session: Session | undefined;
        const messages: Message[] = [];
        let pageToken = "";
        for (;;) {
          const resp = await this.retry(() =>
            raw.chat.history({ sessionKey, pageSize: 1000, pageToken }),
          );
          session ??= resp.session;
          messages.push(...resp.messages);
          if (!resp.nextPageToken || resp.nextPageToken === pageToken) break;
          pageToken = resp.nextPageToken;
        }
        if (!session) throw protocolError("ChatService/History returned no session");
        return { session, messages };
      },
      abort: (sessionKey, runId) =>
        this.call(() => raw.chat.abort({ sessionKey, runId: runId ?? "" })),
    };

    this.sessions = {
      send: async (req) => {
        const { req: r, auto } = withKey(req);
        return this.submit(auto, () => raw.sessions.send(r));
      },
      list: async (agentId) => {
        const out: Session[] = [];
        let pageToken = "";
        for (;;) {
          const resp = await this.retry(() =>
            raw.sessions.list({ agentId: agentId ?? "", pageSize: 1000, pageToken }),
          );
          out.push(...resp.sessions);
          if (!resp.nextPageToken || resp.nextPageToken === pageToken) return out;
          pageToken = resp.nextPageToken;
        }
      },
      get: async (sessionKey) => {
        const resp = await this.retry(() => raw.sessions.get({ sessionKey }));
        if (!resp.session) throw protocolError("SessionService/Get returned no session");
        return resp.session;
      },
    };

    this.agent = {
      run: async (req) => {
        const { req: r, auto } = withKey(req);
        return this.submit(auto, () => raw.agent.run(r));
      },
      get: async (runId) => {
        const resp = await this.retry(() => raw.agent.getRun({ runId }));
        if (!resp.run) throw protocolError("AgentService/GetRun returned no run");
        return resp.run;
      },
      wait: (runId, opts) => this.waitRun(runId, opts),
      cancel: async (runId) => {
        const resp = await this.retry(() => raw.agent.cancelRun({ runId }));
        if (!resp.run) throw protocolError("AgentService/CancelRun returned no run");
        return resp.run;
      },
      list: (req) => this.retry(() => raw.agent.listRuns(req ?? {})),
      handle: async (runId) => {
        const run = await this.agent.get(runId);
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
      list: () => this.retry(() => raw.devices.listDevices({})),
      approve: (requestId) => this.call(() => raw.devices.approvePairing({ requestId })),
      reject: async (requestId) =>
        (await this.call(() => raw.devices.rejectPairing({ requestId }))).request,
    };
  }

  /** `GatewayService/Status`: version, defaults, queue depths and the event-log head. */
  status(): Promise<GatewayServiceStatusResponse> {
    return this.retry(() => this.raw.gateway.status({}));
  }

  /** `GatewayService/GetCaller`: the credential kind and scopes the gateway sees. */
  caller(): Promise<GetCallerResponse> {
    return this.retry(() => this.raw.gateway.getCaller({}));
  }

  /** `GatewayService/Wake`. Not retried: a repeat could start a second heartbeat. */
  wake(req: WakeInput): Promise<GatewayServiceWakeResponse> {
    return this.call(() => this.raw.gateway.wake(req));
  }

  /**
   * An auto-resuming `EventService/Watch`: events with seq > `afterSeq` matching `filter`,
   * then live ones, as an async iterator. See `EventWatch` for the resume rules.
   */
  watchEvents(opts: WatchOptions = {}): EventWatch {
    return new EventWatch(this, opts);
  }

  /** Waits up to `timeoutMs` for a run to reach a terminal state (`AgentService/Wait` chunks). */
  async waitRun(runId: string, opts: WaitOptions = {}): Promise<Run> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_WAIT_MS;
    const deadline = Date.now() + timeoutMs;
    let backoff = 100;
    for (;;) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) return this.agent.get(runId);
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

  /** Runs a unary call once, converting errors to `ClawplaneError`. */
  async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw ClawplaneError.from(e);
    }
  }

  /**
   * Runs an idempotent unary call, retrying UNAVAILABLE (and a connection reset before the
   * answer) a few times with backoff; nothing else is retried.
   */
  async retry<T>(fn: () => Promise<T>): Promise<T> {
    return (await this.retryCounting(fn)).value;
  }

  private async retryCounting<T>(fn: () => Promise<T>): Promise<{ value: T; attempts: number }> {
    let delay = 100;
    for (let attempt = 1; ; attempt++) {
      try {
        return { value: await fn(), attempts: attempt };
      } catch (e) {
        const err = ClawplaneError.from(e);
        if (isRetryableUnary(err) && attempt < UNARY_ATTEMPTS) {
          await sleep(delay);
          delay *= 2;
          continue;
        }
        throw err;
      }
    }
  }

  /** The event-log head, or undefined when the caller may not read status. */
  private async headSeq(): Promise<bigint | undefined> {
    try {
      return (await this.status()).lastEventSeq;
    } catch {
      return undefined;
    }
  }

  private async submit(
    autoKey: boolean,
    send: () => Promise<{ runId: string; sessionKey: string; state: number; duplicate: boolean }>,
  ): Promise<RunHandle> {
    const head = await this.headSeq();
    const { value: resp, attempts } = await this.retryCounting(send);
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
