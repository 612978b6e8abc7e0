// The SDK's error type: a gRPC status with its rich details (google.rpc.ErrorInfo,
// BadRequest, RetryInfo decoded from `grpc-status-details-bin`), or a local problem.

import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";

/** The `google.rpc.ErrorInfo` domain clawplane uses. */
export const ERROR_DOMAIN = "clawplane.dev";

/** gRPC status code names, as in the gRPC spec (`NOT_FOUND`, `ALREADY_EXISTS`, ...). */
export type GrpcCodeName =
  | "OK"
  | "CANCELLED"
  | "UNKNOWN"
  | "INVALID_ARGUMENT"
  | "DEADLINE_EXCEEDED"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "PERMISSION_DENIED"
  | "RESOURCE_EXHAUSTED"
  | "FAILED_PRECONDITION"
  | "ABORTED"
  | "OUT_OF_RANGE"
  | "UNIMPLEMENTED"
  | "INTERNAL"
  | "UNAVAILABLE"
  | "DATA_LOSS"
  | "UNAUTHENTICATED";

const CODE_NAMES: readonly GrpcCodeName[] = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
];

/** The gRPC name of a numeric status code (`5` → `NOT_FOUND`). */
export function codeName(code: number): GrpcCodeName {
  return CODE_NAMES[code] ?? "UNKNOWN";
}

/** One `google.rpc.BadRequest.FieldViolation`; `field` is the JSON name (`sessionKey`). */
export interface FieldViolation {
  field: string;
  description: string;
  reason: string;
}

/**
 * Everything that can go wrong talking to a clawplane gateway.
 *
 * Server errors carry a `google.rpc.ErrorInfo`: `reason` is its stable UPPER_SNAKE reason
 * (e.g. `RUN_NOT_FOUND`, `IDEMPOTENCY_KEY_CONFLICT`, `MISSING_SCOPE`), `metadata` its map
 * (e.g. `{ runId }`, `{ oldestSeq }`). Local failures (no ErrorInfo) have `reason` undefined.
 */
export class ClawplaneError extends Error {
  override name = "ClawplaneError";
  /** The gRPC status code name, e.g. `NOT_FOUND`. */
  readonly code: GrpcCodeName;
  /** The numeric gRPC status code. */
  readonly grpcCode: number;
  /** The status message as sent by the gateway (without the `[code]` prefix). */
  readonly rawMessage: string;
  /** `ErrorInfo.reason`, when the gateway sent one. */
  readonly reason: string | undefined;
  /** `ErrorInfo.domain` (`clawplane.dev`), when the gateway sent one. */
  readonly domain: string | undefined;
  /** `ErrorInfo.metadata` (empty when none). */
  readonly metadata: Readonly<Record<string, string>>;
  /** `BadRequest.fieldViolations` (empty when none). */
  readonly fieldViolations: readonly FieldViolation[];
  /** `RetryInfo.retryDelay` in milliseconds, when the gateway asks the caller to wait. */
  readonly retryDelayMs: number | undefined;

  constructor(init: {
    code: number;
    message: string;
    reason?: string;
    domain?: string;
    metadata?: Record<string, string>;
    fieldViolations?: FieldViolation[];
    retryDelayMs?: number;
    cause?: unknown;
  }) {
    const name = codeName(init.code);
    super(`${name}${init.reason ? ` ${init.reason}` : ""}: ${init.message}`, {
      cause: init.cause,
    });
    this.code = name;
    this.grpcCode = init.code;
    this.rawMessage = init.message;
    this.reason = init.reason;
    this.domain = init.domain;
    this.metadata = Object.freeze({ ...(init.metadata ?? {}) });
    this.fieldViolations = Object.freeze([...(init.fieldViolations ?? [])]);
    this.retryDelayMs = init.retryDelayMs;
  }

  /** Converts any thrown value (usually a `ConnectError`) into a `ClawplaneError`. */
  static from(err: unknown): ClawplaneError {
    if (err instanceof ClawplaneError) return err;
    const ce = ConnectError.from(err);
    const info = ce.findDetails(ErrorInfoSchema)[0];
    const badRequests = ce.findDetails(BadRequestSchema);
    const retry = ce.findDetails(RetryInfoSchema)[0];
    let retryDelayMs: number | undefined;
    if (retry?.retryDelay) {
      retryDelayMs =
        Number(retry.retryDelay.seconds) * 1000 + Math.floor(retry.retryDelay.nanos / 1e6);
    }
    return new ClawplaneError({
      code: ce.code,
      message: ce.rawMessage,
      reason: info?.reason || undefined,
      domain: info?.domain || undefined,
      metadata: info ? { ...info.metadata } : {},
      fieldViolations: badRequests.flatMap((br) =>
        br.fieldViolations.map((v) => ({
          field: v.field,
          description: v.description,
          reason: v.reason,
        })),
      ),
      retryDelayMs,
      cause: ce,
    });
  }

  /**
   * True when an idempotent call may be retried as-is: `UNAVAILABLE` (AIP-194), or a
   * connection reset before the gateway answered (`ABORTED` without ErrorInfo).
   */
  get retryable(): boolean {
    return isRetryableUnary(this);
  }

  /**
   * True when the gateway could not be reached at all: `UNAVAILABLE` without an ErrorInfo
   * (the gateway tags every error it sends; one without comes from the local transport).
   */
  get unreachable(): boolean {
    return this.grpcCode === Code.Unavailable && this.reason === undefined;
  }
}

/**
 * An event watch asked for events older than the gateway retains (OUT_OF_RANGE, reason
 * `CURSOR_EXPIRED`). Resume from `oldestSeq - 1` or later, or follow only new events.
 */
export class CursorExpiredError extends ClawplaneError {
  override name = "CursorExpiredError";
  /** The cursor that was refused. */
  readonly afterSeq: bigint;
  /** The oldest event seq the gateway still has (0n when it did not say). */
  readonly oldestSeq: bigint;

  constructor(base: ClawplaneError, afterSeq: bigint) {
    super({
      code: base.grpcCode,
      message: base.rawMessage,
      reason: base.reason,
      domain: base.domain,
      metadata: { ...base.metadata },
      fieldViolations: [...base.fieldViolations],
      retryDelayMs: base.retryDelayMs,
      cause: base.cause,
    });
    this.afterSeq = afterSeq;
    let oldest = 0n;
    try {
      oldest = BigInt(base.metadata["oldestSeq"] ?? "0");
    } catch {
      oldest = 0n;
    }
    this.oldestSeq = oldest;
  }
}

/**
 * True when the failure happened in the local transport, not in the gateway: the gateway
 * tags every error it sends with an ErrorInfo, while `@connectrpc/connect-node` reports a
 * reset connection (ECONNRESET) as ABORTED, a broken HTTP/2 stream as INTERNAL or
 * CANCELLED, and a refused connection as UNAVAILABLE — all without one.
 */
export function isLocalTransportError(e: ClawplaneError): boolean {
  if (e.reason !== undefined) return false;
  switch (e.grpcCode) {
    case Code.Unavailable:
    case Code.Aborted:
    case Code.Unknown:
    case Code.Internal:
    case Code.Canceled:
      return true;
    default:
      return false;
  }
}

/**
 * True when an idempotent unary call may be retried as-is: UNAVAILABLE (AIP-194), or a
 * connection reset before the gateway answered (ABORTED without ErrorInfo).
 */
export function isRetryableUnary(e: ClawplaneError): boolean {
  return (
    e.grpcCode === Code.Unavailable || (e.grpcCode === Code.Aborted && e.reason === undefined)
  );
}

/** True when a failed streaming call is worth reconnecting for. */
export function isTransientStreamError(e: ClawplaneError): boolean {
  return e.grpcCode === Code.Unavailable || isLocalTransportError(e);
}
