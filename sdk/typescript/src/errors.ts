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
    // A TlsError thrown by an interceptor reaches us wrapped in a ConnectError.
    const inner = (err as { cause?: unknown } | undefined)?.cause;
    if (err instanceof ConnectError && inner instanceof TlsError) return inner;
    const tls = tlsFailure(err);
    if (tls) return new TlsError(tls.detail, { cause: err, code: tls.code });
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

/** The `code` of the error the SDK raises when a pinned fingerprint does not match. */
export const FINGERPRINT_MISMATCH_CODE = "ERR_CLAWPLANE_TLS_FINGERPRINT_MISMATCH";

/**
 * The TLS connection to an `https://` gateway failed: its certificate was refused (not the
 * pinned fingerprint — `certificate fingerprint mismatch: expected X, got Y` —, untrusted,
 * or for another host), or the handshake failed. No request was sent. `code` is
 * `UNAVAILABLE` (as gRPC reports handshake failures) but the error is never retried by the
 * SDK: `retryable` is false and a watch ends with it.
 */
export class TlsError extends ClawplaneError {
  override name = "TlsError";
  /** What was wrong, e.g. `certificate fingerprint mismatch: expected X, got Y`. */
  readonly detail: string;
  /** The Node/OpenSSL error code, e.g. `DEPTH_ZERO_SELF_SIGNED_CERT`, or `ERR_CLAWPLANE_TLS_FINGERPRINT_MISMATCH`. */
  readonly tlsCode: string | undefined;

  constructor(detail: string, opts: { cause?: unknown; code?: string } = {}) {
    super({ code: Code.Unavailable, message: `TLS connection failed: ${detail}`, cause: opts.cause });
    this.detail = detail;
    this.tlsCode = opts.code;
  }

  /** False: the gateway (or something) answered, with a certificate the SDK refused. */
  override get unreachable(): boolean {
    return false;
  }
}

/** Node / OpenSSL error codes of certificate and handshake failures. */
const TLS_CODES = new Set([
  FINGERPRINT_MISMATCH_CODE,
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_SIGNATURE_FAILURE",
  "HOSTNAME_MISMATCH",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "ERR_TLS_CERT_ALTNAME_FORMAT",
  "ERR_SSL_WRONG_VERSION_NUMBER",
]);

/** The certificate/handshake failure in an error's cause chain, if there is one. */
function tlsFailure(err: unknown): { detail: string; code: string } | undefined {
  const seen = new Set<unknown>();
  let e: unknown = err;
  while (e instanceof Error && !seen.has(e)) {
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && (TLS_CODES.has(code) || code.startsWith("ERR_SSL_"))) {
      const detail =
        code === FINGERPRINT_MISMATCH_CODE || code.startsWith("ERR_TLS_") ? e.message : `${e.message} (${code})`;
      return { detail, code };
    }
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
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
  if (e.reason !== undefined || e instanceof TlsError) return false;
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
  if (e instanceof TlsError) return false;
  return (
    e.grpcCode === Code.Unavailable || (e.grpcCode === Code.Aborted && e.reason === undefined)
  );
}

/** True when a failed streaming call is worth reconnecting for. */
export function isTransientStreamError(e: ClawplaneError): boolean {
  if (e instanceof TlsError) return false;
  return e.grpcCode === Code.Unavailable || isLocalTransportError(e);
}
