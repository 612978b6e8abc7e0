// TLS for `https://` gateway URLs (Node only): trust a CA file / PEM, or pin exactly one
// certificate by the SHA-256 fingerprint of its DER (as `GatewayService/Status.tlsFingerprint`
// and `clawplane status` show it).

import { createHash, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import type { SecureClientSessionOptions } from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";

import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

import { ClawplaneError, FINGERPRINT_MISMATCH_CODE, TlsError } from "./errors.js";
import { ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";

/** How to check an `https://` gateway's certificate. With neither set, Node's default CAs are trusted. */
export interface TlsOptions {
  /**
   * A PEM file of CA certificates (or the gateway's self-signed `<data-dir>/tls/cert.pem`
   * itself) trusted instead of the default roots. Default env `CLAWPLANE_TLS_CA`.
   */
  caFile?: string;
  /** Like `caFile`, the PEM text itself. */
  ca?: string | Uint8Array;
  /**
   * The SHA-256 fingerprint of the one certificate to accept (64 hex digits, colons optional,
   * case-insensitive, optional `sha256:` prefix). Any other certificate is refused with a
   * `TlsError` `certificate fingerprint mismatch: expected X, got Y` before anything is sent;
   * host names and dates are not checked. Default env `CLAWPLANE_TLS_FINGERPRINT`.
   */
  tlsFingerprint?: string;
}

/** The SHA-256 fingerprint of a DER certificate: uppercase hex pairs joined by `:`. */
export function certFingerprint(der: Uint8Array): string {
  return colons(createHash("sha256").update(der).digest("hex"));
}

/** The fingerprint of the first certificate of a PEM text or file content, if it holds one. */
export function pemFingerprint(pem: string | Uint8Array): string | undefined {
  try {
    return certFingerprint(new X509Certificate(pem).raw);
  } catch {
    return undefined;
  }
}

/**
 * Parses a fingerprint given by a person (64 hex digits; `:`, spaces and `-` optional; an
 * optional `sha256:` prefix) into the canonical form (see `certFingerprint`).
 */
export function parseFingerprint(s: string): string {
  const t = s.trim().replace(/^sha256[:=]/i, "");
  const hex = t.replace(/[: -]/g, "").toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new ClawplaneError({
      code: Code.InvalidArgument,
      message: `${JSON.stringify(s)} is not a SHA-256 fingerprint (64 hex digits, colons optional)`,
    });
  }
  return colons(hex);
}

function colons(hex: string): string {
  return (hex.toUpperCase().match(/../g) ?? []).join(":");
}

/** True for `https:` (and `wss:`, the same port) URLs. */
export function isHttpsUrl(url: string): boolean {
  return /^(https|wss):\/\//i.test(url.trim());
}

function hostOf(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, "");
}

/**
 * The `http2.connect` options that apply `opts` to an `https://` URL (`undefined` when there
 * is nothing to change). Throws a `ClawplaneError` (INVALID_ARGUMENT) for an unreadable CA
 * file or a malformed fingerprint.
 */
export function http2TlsOptions(url: string, opts: TlsOptions): SecureClientSessionOptions | undefined {
  if (opts.tlsFingerprint !== undefined && opts.tlsFingerprint.trim() !== "") {
    return { createConnection: pinnedConnector(new URL(url), parseFingerprint(opts.tlsFingerprint)) };
  }
  const ca = opts.ca ?? (opts.caFile ? readCa(opts.caFile) : undefined);
  if (ca === undefined) return undefined;
  const text = typeof ca === "string" ? ca : Buffer.from(ca).toString("utf8");
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    throw new ClawplaneError({
      code: Code.InvalidArgument,
      message: `${opts.caFile ?? "the CA"} holds no PEM certificate`,
    });
  }
  return { ca: text };
}

function readCa(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new ClawplaneError({
      code: Code.InvalidArgument,
      message: `cannot read the CA file ${path}: ${(e as Error).message}`,
      cause: e,
    });
  }
}

/**
 * A `createConnection` for `http2.connect` that accepts exactly the certificate with the
 * `expected` fingerprint. The check runs when the handshake completes and before the HTTP/2
 * session sees the socket: on a mismatch the socket is destroyed with an error (code
 * `ERR_CLAWPLANE_TLS_FINGERPRINT_MISMATCH`) instead of announcing `secureConnect`, so the
 * connection preface and requests are never written.
 */
function pinnedConnector(url: URL, expected: string): NonNullable<SecureClientSessionOptions["createConnection"]> {
  const host = hostOf(url);
  const port = url.port ? Number(url.port) : 443;
  return () => {
    const socket = tls.connect({
      host,
      port,
      ALPNProtocols: ["h2"],
      // Pinning replaces chain and host name checks; the fingerprint check is below.
      rejectUnauthorized: false,
      ...(isIp(host) ? {} : { servername: host }),
    });
    const emit = socket.emit;
    socket.emit = function (this: tls.TLSSocket, event: string | symbol, ...args: unknown[]): boolean {
      if (event === "secureConnect") {
        const cert = this.getPeerCertificate(true);
        const got = cert?.raw ? certFingerprint(cert.raw) : "no certificate";
        if (got !== expected) {
          const err = new Error(`certificate fingerprint mismatch: expected ${expected}, got ${got}`);
          (err as Error & { code: string }).code = FINGERPRINT_MISMATCH_CODE;
          this.destroy(err);
          return false;
        }
      }
      return (emit as (...a: unknown[]) => boolean).call(this, event, ...args);
    } as typeof socket.emit;
    return socket;
  };
}

function isIp(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(":");
}

/** The `code` of the error raised when an `http://` URL points at a gateway serving TLS. */
export const TLS_REQUIRED_CODE = "ERR_CLAWPLANE_TLS_REQUIRED";

/**
 * True when the server at `host:port` answers an HTTP/2 connection preface with a TLS alert
 * record (it expects a TLS handshake). Used only to explain a failed `http://` call.
 */
export function speaksTls(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (v: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.once("connect", () => sock.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
    sock.once("data", (d: Buffer) => done(d.length >= 2 && d[0] === 0x15 && d[1] === 0x03));
    sock.once("error", () => done(false));
    sock.once("close", () => done(false));
  });
}

/**
 * An interceptor for `http://` URLs: when a call fails in the local transport (no gateway
 * error details) and the port turns out to speak TLS, the call fails with a `TlsError`
 * saying to use `https://` instead of an opaque stream error.
 */
export function plainHttpToTlsHint(url: string): Interceptor {
  const u = new URL(url);
  const host = hostOf(u);
  const port = u.port ? Number(u.port) : 80;
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (e) {
      const ce = ConnectError.from(e);
      const local =
        ce.findDetails(ErrorInfoSchema).length === 0 &&
        [Code.Canceled, Code.Internal, Code.Unknown, Code.Aborted, Code.Unavailable].includes(ce.code);
      if (local && !req.signal.aborted && (await speaksTls(host, port))) {
        const https = url.replace(/^http:/i, "https:");
        throw new TlsError(
          `the gateway at ${url} serves TLS (https); use ${https} (with caFile or tlsFingerprint for a self-signed certificate)`,
          { cause: e, code: TLS_REQUIRED_CODE },
        );
      }
      throw e;
    }
  };
}
