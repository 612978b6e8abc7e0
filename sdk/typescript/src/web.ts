// @clawplane/sdk for browsers: gRPC-Web over fetch (`@connectrpc/connect-web`).

import type { Interceptor } from "@connectrpc/connect";

import { Client, DEFAULT_URL, bearerAuth } from "./client.js";
import { createWebTransport } from "./transport.js";
import { normalizeUrl } from "./util.js";

export * from "./core.js";

/** Options of the browser `connect()`. */
export interface ConnectOptions {
  /** Gateway URL; default `http://127.0.0.1:18789`. */
  url?: string;
  /** Bearer token. */
  token?: string | null;
  /** More interceptors, run after the auth interceptor. */
  interceptors?: Interceptor[];
  /** A fetch implementation (default `globalThis.fetch`). */
  fetch?: typeof globalThis.fetch;
}

/** A gRPC-Web client for the gateway at `url` presenting `token`. */
export function connect(opts: ConnectOptions = {}): Client {
  const url = normalizeUrl(opts.url?.trim() || DEFAULT_URL);
  const transport = createWebTransport({
    url,
    interceptors: [bearerAuth(opts.token ?? undefined), ...(opts.interceptors ?? [])],
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
  });
  return new Client({ url, transport });
}
