// @clawplane/sdk for Node: gRPC over HTTP/2 by default, gRPC-Web on request.
//
//   import { connect } from "@clawplane/sdk";
//   const client = connect();                       // CLAWPLANE_URL / CLAWPLANE_TOKEN
//   const run = await client.agent.run({ message: "hello" });
//   for await (const text of run) process.stdout.write(text);
//   console.log((await run.wait()).state);

import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

import type { Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { Client, DEFAULT_URL, MAX_READ_BYTES, bearerAuth } from "./client.js";
import { createWebTransport } from "./transport.js";
import { normalizeUrl } from "./util.js";

export * from "./core.js";

/** Which wire protocol to speak. */
export type Protocol = "grpc" | "grpc-web";

/** Options of `connect()` and `createTransport()`. */
export interface ConnectOptions {
  /** Gateway URL; default env `CLAWPLANE_URL`, else `http://127.0.0.1:18789`. */
  url?: string;
  /**
   * Bearer token; default env `CLAWPLANE_TOKEN`, else `CLAWPLANE_GATEWAY_TOKEN`, else (for a
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
    return host === "localhost" || host === "::1" || /^127\./.test(host);
  } catch {
    return false;
  }
}

/** Fills in local defaults for the gateway URL and token (see `ConnectOptions`). */
export function discover(opts: { url?: string; token?: string | null } = {}): {
  url: string;
  token: string | undefined;
} {
  const env = process.env;
  const url = normalizeUrl(nonEmpty(opts.url) ?? nonEmpty(env.CLAWPLANE_URL) ?? DEFAULT_URL);
  if (opts.token === null) return { url, token: undefined };
  let token = nonEmpty(opts.token) ?? nonEmpty(env.CLAWPLANE_TOKEN) ?? nonEmpty(env.CLAWPLANE_GATEWAY_TOKEN);
  if (token === undefined && isLoopback(url)) {
    const dir = nonEmpty(env.CLAWPLANE_DATA_DIR) ?? join(homedir(), ".clawplane");
    try {
      token = nonEmpty(readFileSync(join(dir, "gateway.token"), "utf8"));
    } catch {
      token = undefined;
    }
  }
  return { url, token };
}

/**
 * Builds a transport with bearer auth: gRPC over HTTP/2 (`@connectrpc/connect-node`) or
 * gRPC-Web (`@connectrpc/connect-web`). `url` and `token` are used as given (no env lookup).
 */
export function createTransport(opts: {
  url: string;
  token?: string;
  protocol?: Protocol;
  interceptors?: Interceptor[];
}): Transport {
  const interceptors = [bearerAuth(opts.token), ...(opts.interceptors ?? [])];
  const url = normalizeUrl(opts.url);
  if (opts.protocol === "grpc-web") return createWebTransport({ url, interceptors });
  return createGrpcTransport({
    baseUrl: url,
    interceptors,
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
  const transport = createTransport({
    url,
    token,
    protocol: opts.protocol,
    interceptors: opts.interceptors,
  });
  return new Client({ url, transport });
}
