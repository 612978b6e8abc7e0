// Transports: gRPC over HTTP/2 (Node) and gRPC-Web over fetch (browsers, Node >= 18).

import type { Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

/** Options of `createWebTransport`. */
export interface WebTransportOptions {
  /** Gateway base URL, e.g. `http://127.0.0.1:18789`. */
  url: string;
  /** Interceptors (e.g. `bearerAuth(token)`). */
  interceptors?: Interceptor[];
  /** A fetch implementation (default `globalThis.fetch`). */
  fetch?: typeof globalThis.fetch;
}

/**
 * A gRPC-Web transport (`@connectrpc/connect-web`, binary format) for browsers; the gateway
 * serves gRPC-Web on its gRPC port. Also works in Node (global fetch).
 */
export function createWebTransport(opts: WebTransportOptions): Transport {
  return createGrpcWebTransport({
    baseUrl: opts.url,
    useBinaryFormat: true,
    interceptors: opts.interceptors ?? [],
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
  });
}
