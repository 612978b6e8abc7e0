// @clawplane/sdk for Node: gRPC over HTTP/2 by default, gRPC-Web on request.
//
//   import { connect } from "@clawplane/sdk";
//   const client = connect();                       // CLAWPLANE_URL / CLAWPLANE_TOKEN
//   const run = await client.agent.run({ message: "hello" });
//   for await (const text of run) process.stdout.write(text);
//   console.log((await run.wait()).state);

import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

import { Code, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { Client, DEFAULT_URL, MAX_READ_BYTES, bearerAuth } from "./client.js";
import { ClawplaneError } from "./errors.js";
import { http2TlsOptions, isHttpsUrl, plainHttpToTlsHint, type TlsOptions } from "./tls.js";
import { createWebTransport } from "./transport.js";
import { normalizeUrl } from "./util.js";

export * from "./core.js";
export { certFingerprint, parseFingerprint, pemFingerprint, type TlsOptions } from "./tls.js";

/** Which wire protocol to speak. */
export type Protocol = "grpc" | "grpc-web";

/**
 * Options of `connect()`. For an `https://` URL, `caFile`/`ca` or `tlsFingerprint` (from
 * `TlsOptions`; defaults env `CLAWPLANE_TLS_CA` / `CLAWPLANE_TLS_FINGERPRINT`) say which
 * certificate to trust; without them Node's default CAs are trusted, except that a loopback
 * `https://` URL pins the local gateway's generated `<data-dir>/tls/cert.pem` when it exists.
 */
export interface ConnectOptions extends TlsOptions {
  /** Gateway URL; default env `CLAWPLANE_URL`, else `http://127.0.0.1:18789`. */
  url?: string;
  /**
   * Bearer token; default env `CLAWPLANE_TOKEN`, else `CLAWPLANE_GATEWAY_TOKEN`, else
   * `OPENCLAW_GATEWAY_TOKEN`, else (for a
   * loopback URL only) the file `gateway.token` in `CLAWPLANE_DATA_DIR` or `~/.clawplane`.
   * Pass `null` to send no token at all.
   */
  token?: string | null;
  /** `grpc` (HTTP/2, default) or `grpc-web` (fetch, `@connectrpc/connect-web`). */
  protocol?: Protocol;
  /** More interceptors, run after the auth interceptor. */
  interceptors?: Interceptor[];
}

function nonEmpty(s: string | undefined | null): string | undefined {
  const t = s?.trim();
  return t ? t : undefined;
}

function isLoopback(url: string): boolean {
  try {
    const host = new URL(url).hostname.replace(/^\[|\]$/g, "");
    return host === "localhost" || host.endsWith(".localhost") || host === "::1" || /^127\./.test(host);
  } catch {
    return false;
  }
}

function dataDir(): string {
  return nonEmpty(process.env.CLAWPLANE_DATA_DIR) ?? join(homedir(), ".clawplane");
}

/**
 * The TLS options for `url`: the explicit ones, else env `CLAWPLANE_TLS_FINGERPRINT` /
 * `CLAWPLANE_TLS_CA`, else (loopback `https://` only) the local gateway's generated
 * certificate `<data-dir>/tls/cert.pem` as the CA when it exists. Empty for `http://` URLs
 * (explicit TLS options with an `http://` URL are an INVALID_ARGUMENT error).
 */
export function discoverTls(url: string, opts: TlsOptions = {}): TlsOptions {
  const fp = nonEmpty(opts.tlsFingerprint);
  const caFile = nonEmpty(opts.caFile);
  const explicit = fp !== undefined || caFile !== undefined || opts.ca !== undefined;
  if (!isHttpsUrl(url)) {
    if (explicit) {
      throw new ClawplaneError({
        code: Code.InvalidArgument,
        message: `caFile / ca / tlsFingerprint need an https:// URL, got ${url}`,
      });
    }
    return {};
  }
  if (fp !== undefined) return { tlsFingerprint: fp };
  if (caFile !== undefined || opts.ca !== undefined) {
    return { ...(caFile !== undefined ? { caFile } : {}), ...(opts.ca !== undefined ? { ca: opts.ca } : {}) };
  }
  const env = process.env;
  const envFp = nonEmpty(env.CLAWPLANE_TLS_FINGERPRINT);
  if (envFp !== undefined) return { tlsFingerprint: envFp };
  const envCa = nonEmpty(env.CLAWPLANE_TLS_CA);
  if (envCa !== undefined) return { caFile: envCa };
  if (isLoopback(url)) {
    const local = join(dataDir(), "tls", "cert.pem");
    if (existsSync(local)) return { caFile: local };
  }
  return {};
}

/** Fills in local defaults for the gateway URL and token (see `ConnectOptions`). */
export function discover(opts: { url?: string; token?: string | null } = {}): {
  url: string;
  token: string | undefined;
} {
  const env = process.env;
  const url = normalizeUrl(nonEmpty(opts.url) ?? nonEmpty(env.CLAWPLANE_URL) ?? DEFAULT_URL);
  if (opts.token === null) return { url, token: undefined };
  let token =
    nonEmpty(opts.token) ??
    nonEmpty(env.CLAWPLANE_TOKEN) ??
    nonEmpty(env.CLAWPLANE_GATEWAY_TOKEN) ??
    nonEmpty(env.OPENCLAW_GATEWAY_TOKEN);
  if (token === undefined && isLoopback(url)) {
    try {
      token = nonEmpty(readFileSync(join(dataDir(), "gateway.token"), "utf8"));
    } catch {
      token = undefined;
    }
  }
  return { url, token };
}

/**
 * Builds a transport with bearer auth: gRPC over HTTP/2 (`@connectrpc/connect-node`) or
 * gRPC-Web (`@connectrpc/connect-web`). `url`, `token` and the TLS options are used as given
 * (no env lookup). `caFile`/`ca`/`tlsFingerprint` apply to `https://` URLs over gRPC (the
 * gRPC-Web transport uses `fetch`, which takes no per-connection TLS options: an error).
 */
export function createTransport(opts: {
  url: string;
  token?: string;
  protocol?: Protocol;
  interceptors?: Interceptor[];
} & TlsOptions): Transport {
  const interceptors = [bearerAuth(opts.token), ...(opts.interceptors ?? [])];
  const url = normalizeUrl(opts.url);
  const hasTls = nonEmpty(opts.tlsFingerprint) !== undefined || nonEmpty(opts.caFile) !== undefined || opts.ca !== undefined;
  if (hasTls && !isHttpsUrl(url)) {
    throw new ClawplaneError({
      code: Code.InvalidArgument,
      message: `caFile / ca / tlsFingerprint need an https:// URL, got ${url}`,
    });
  }
  if (opts.protocol === "grpc-web") {
    if (hasTls) {
      throw new ClawplaneError({
        code: Code.InvalidArgument,
        message: "caFile / ca / tlsFingerprint are supported with protocol \"grpc\" only (gRPC-Web uses fetch)",
      });
    }
    return createWebTransport({ url, interceptors });
  }
  const https = isHttpsUrl(url);
  const nodeOptions = https ? http2TlsOptions(url, opts) : undefined;
  return createGrpcTransport({
    baseUrl: url,
    ...(nodeOptions ? { nodeOptions } : {}),
    // Outermost, so that it sees the transport's own failure.
    interceptors: https ? interceptors : [plainHttpToTlsHint(url), ...interceptors],
    readMaxBytes: MAX_READ_BYTES,
    pingIntervalMs: 20_000,
    pingTimeoutMs: 20_000,
    pingIdleConnection: true,
  });
}

/**
 * A client for the gateway at `url` presenting `token` (defaults from the environment, see
 * `ConnectOptions`). Connections are made on the first call and re-dialled after drops.
 */
export function connect(opts: ConnectOptions = {}): Client {
  const { url, token } = discover(opts);
  // gRPC-Web (fetch) takes no TLS options: explicit ones are refused by createTransport,
  // the env / local-certificate defaults are not applied.
  const tlsOpts: TlsOptions =
    opts.protocol === "grpc-web"
      ? { tlsFingerprint: opts.tlsFingerprint, caFile: opts.caFile, ca: opts.ca }
      : discoverTls(url, opts);
  const transport = createTransport({
    url,
    token,
    protocol: opts.protocol,
    interceptors: opts.interceptors,
    ...tlsOpts,
  });
  return new Client({ url, transport });
}
