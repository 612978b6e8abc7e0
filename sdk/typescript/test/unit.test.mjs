// Local behaviour that needs no gateway: defaults discovery, URL normalisation, idempotency
// keys, terminal states, error decoding.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

import {
  ClawplaneError,
  DEFAULT_URL,
  RunState,
  discover,
  isTerminal,
  newIdempotencyKey,
  normalizeUrl,
} from "../dist/index.js";
import { BadRequestSchema, ErrorInfoSchema } from "../dist/gen/google/rpc/error_details_pb.js";

function withEnv(vars, fn) {
  const saved = {};
  for (const k of Object.keys(vars)) saved[k] = process.env[k];
  try {
    for (const [k, v] of Object.entries(vars)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    return fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

test("discover: arguments, then CLAWPLANE_URL/CLAWPLANE_TOKEN, then defaults and the token file (loopback only)", () => {
  const dir = mkdtempSync(join(tmpdir(), "clawplane-ts-unit-"));
  try {
    writeFileSync(join(dir, "gateway.token"), "file-token\n");
    const base = { CLAWPLANE_URL: undefined, CLAWPLANE_TOKEN: undefined, CLAWPLANE_GATEWAY_TOKEN: undefined, CLAWPLANE_DATA_DIR: dir };
    withEnv(base, () => {
      assert.deepEqual(discover(), { url: DEFAULT_URL, token: "file-token" });
      assert.deepEqual(discover({ url: "http://gw.example:1/" }), { url: "http://gw.example:1", token: undefined });
      assert.deepEqual(discover({ url: "http://[::1]:1" }), { url: "http://[::1]:1", token: "file-token" });
      assert.deepEqual(discover({ url: "http://gw.localhost:1" }), { url: "http://gw.localhost:1", token: "file-token" });
      assert.deepEqual(discover({ token: null }), { url: DEFAULT_URL, token: undefined });
    });
    withEnv({ ...base, CLAWPLANE_URL: "10.0.0.1:5", CLAWPLANE_TOKEN: "env-token" }, () => {
      assert.deepEqual(discover(), { url: "http://10.0.0.1:5", token: "env-token" });
      assert.deepEqual(discover({ url: "http://h:2", token: "arg" }), { url: "http://h:2", token: "arg" });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("normalizeUrl and idempotency keys", () => {
  assert.equal(normalizeUrl(" 127.0.0.1:9/ "), "http://127.0.0.1:9");
  assert.equal(normalizeUrl("https://x"), "https://x");
  const a = newIdempotencyKey();
  assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.notEqual(a, newIdempotencyKey());
});

test("isTerminal: INTERRUPTED is terminal only on the second attempt", () => {
  assert.equal(isTerminal({ state: RunState.RUNNING, attempt: 1 }), false);
  assert.equal(isTerminal({ state: RunState.QUEUED, attempt: 1 }), false);
  for (const s of [RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.TIMED_OUT]) {
    assert.equal(isTerminal({ state: s, attempt: 1 }), true);
  }
  assert.equal(isTerminal({ state: RunState.INTERRUPTED, attempt: 1 }), false);
  assert.equal(isTerminal({ state: RunState.INTERRUPTED, attempt: 2 }), true);
});

test("ClawplaneError.from decodes ErrorInfo and BadRequest details", () => {
  const ce = new ConnectError("bad", Code.InvalidArgument, undefined, [
    { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason: "INVALID_FIELD", domain: "clawplane.dev", metadata: { field: "message" } }) },
    { desc: BadRequestSchema, value: create(BadRequestSchema, { fieldViolations: [{ field: "message", description: "must not be empty" }] }) },
  ]);
  const e = ClawplaneError.from(ce);
  assert.equal(e.code, "INVALID_ARGUMENT");
  assert.equal(e.grpcCode, 3);
  assert.equal(e.reason, "INVALID_FIELD");
  assert.equal(e.domain, "clawplane.dev");
  assert.deepEqual({ ...e.metadata }, { field: "message" });
  assert.deepEqual(e.fieldViolations.map((v) => [v.field, v.description]), [["message", "must not be empty"]]);
  assert.equal(e.rawMessage, "bad");
  assert.equal(e.cause, ce);
  const plain = ClawplaneError.from(new Error("boom"));
  assert.equal(plain.code, "UNKNOWN");
  assert.equal(plain.reason, undefined);
});

test("watchEvents resumes after ABORTED SUBSCRIBER_LAGGED and UNAVAILABLE, dropping duplicates (in-memory server)", async () => {
  const { createRouterTransport } = await import("@connectrpc/connect");
  const { Client, EventService, EventSchema } = await import("../dist/index.js");
  const calls = [];
  const ev = (seq) => ({ frame: { case: "event", value: create(EventSchema, { seq: BigInt(seq), runId: "r" }) } });
  const lagged = new ConnectError("too slow", Code.Aborted, undefined, [
    { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason: "SUBSCRIBER_LAGGED", domain: "clawplane.dev", metadata: { lastSeq: "2" } }) },
  ]);
  const transport = createRouterTransport(({ service }) => {
    service(EventService, {
      async *watch(req) {
        calls.push(req.afterSeq);
        if (calls.length === 1) {
          yield ev(1);
          yield ev(2);
          throw lagged;
        }
        if (calls.length === 2) {
          yield ev(2); // a duplicate the SDK must drop
          yield { frame: { case: "progress", value: { seq: 4n } } };
          throw new ConnectError("gateway restarting", Code.Unavailable);
        }
        yield ev(5);
        throw new ConnectError("denied", Code.PermissionDenied, undefined, [
          { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason: "MISSING_SCOPE", domain: "clawplane.dev" }) },
        ]);
      },
    });
  });
  const client = new Client({ url: "memory", transport });
  const reconnects = [];
  const watch = client.watchEvents({ afterSeq: 0, onReconnect: (seq, e) => reconnects.push([seq, e?.reason ?? e?.code]) });
  const seqs = [];
  await assert.rejects(
    async () => {
      for await (const e of watch) seqs.push(e.seq);
    },
    (e) => e instanceof ClawplaneError && e.code === "PERMISSION_DENIED" && e.reason === "MISSING_SCOPE",
  );
  assert.deepEqual(seqs, [1n, 2n, 5n]);
  assert.deepEqual(calls, [0n, 2n, 4n], "each reconnect resumes from the last seq seen (progress included)");
  assert.deepEqual(reconnects, [[2n, "SUBSCRIBER_LAGGED"], [4n, "UNAVAILABLE"]]);
  assert.equal(watch.lastSeq, 5n);
});
