// The SDK's verbs against a live gateway (gRPC over HTTP/2 unless said otherwise).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  ClawplaneError,
  ERROR_DOMAIN,
  EventKind,
  RunState,
  connect,
  isTerminal,
} from "../dist/index.js";
import { Gateway } from "./gateway.mjs";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
// The server's run ids: time-ordered UUIDs (version 7).
const RUN_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Runs `fn`, expecting it to reject with a ClawplaneError; returns the error. */
async function rejects(fn) {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof ClawplaneError, `expected a ClawplaneError, got ${e?.stack ?? e}`);
    return e;
  }
  assert.fail("expected the call to fail");
}

async function collect(handle) {
  const deltas = [];
  for await (const text of handle) deltas.push(text);
  return deltas;
}

describe("clawplane SDK (gRPC)", () => {
  /** @type {Gateway} */
  let gw;
  let client;

  before(async () => {
    gw = await Gateway.start({
      config: {
        hooks: { enabled: true, token: "hooktok-not-the-gateway-token" },
      },
    });
    client = connect({ url: gw.url, token: gw.token });
  });

  after(async () => {
    await gw?.close();
  });

  test("status", async () => {
    const st = await client.status();
    assert.match(st.version, /^\d+\.\d+\.\d+/);
    assert.equal(st.mainSessionKey, "agent:main:main");
    assert.equal(st.defaultAgentId, "main");
    assert.equal(typeof st.lastEventSeq, "bigint");
    assert.ok(st.callerScopes.includes("operator.write"), `${st.callerScopes}`);
  });

  test("connect() reads CLAWPLANE_URL and CLAWPLANE_TOKEN", async () => {
    const saved = { url: process.env.CLAWPLANE_URL, token: process.env.CLAWPLANE_TOKEN };
    process.env.CLAWPLANE_URL = gw.url.replace(/^http:\/\//, "");
    process.env.CLAWPLANE_TOKEN = gw.token;
    try {
      const c = connect();
      assert.equal(c.url, gw.url);
      assert.equal((await c.caller()).credential, "gateway-token");
    } finally {
      for (const [k, v] of [["CLAWPLANE_URL", saved.url], ["CLAWPLANE_TOKEN", saved.token]]) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  test("chat.send + wait", async () => {
    const run = await client.chat.send({ sessionKey: "chat-wait", message: "hello chat" });
    assert.match(run.runId, RUN_ID, "the server names the run");
    assert.equal(run.sessionKey, "agent:main:chat-wait");
    assert.equal(run.duplicate, false);
    const done = await run.wait({ timeoutMs: 20_000 });
    assert.equal(done.state, RunState.SUCCEEDED);
    assert.ok(isTerminal(done));
    assert.equal(done.replyText, "You said: hello chat (turn 1)");
    assert.match(done.idempotencyKey, UUID, "an idempotency key (UUID) is generated");
    assert.notEqual(done.idempotencyKey, run.runId);
  });

  test("sessions.send into an existing session; unknown session is NOT_FOUND", async () => {
    const first = await client.chat.send({ sessionKey: "sess", message: "one" });
    await first.wait();
    const run = await client.sessions.send({ sessionKey: "sess", message: "two" });
    assert.equal(run.sessionKey, "agent:main:sess");
    const deltas = await collect(run);
    assert.equal(deltas.join(""), "You said: two (turn 2)");
    assert.equal(run.result?.state, RunState.SUCCEEDED);
    const err = await rejects(() =>
      client.sessions.send({ sessionKey: "no-such-session", message: "x" }),
    );
    assert.equal(err.code, "NOT_FOUND");
    assert.equal(err.reason, "SESSION_NOT_FOUND");
    assert.equal(err.domain, ERROR_DOMAIN);
  });

  test("agent run streams one word per delta and ends at the terminal run", async () => {
    const run = await client.agent.run({ message: "/sleep 200 stream me please" });
    assert.match(run.runId, RUN_ID);
    const updates = [];
    for await (const u of run.updates()) updates.push(u);
    const deltas = updates.filter((u) => u.type === "delta").map((u) => u.text);
    assert.deepEqual(deltas, ["You ", "said: ", "/sleep ", "200 ", "stream ", "me ", "please ", "(turn ", "1)"]);
    const last = updates.at(-1);
    assert.equal(last.type, "done");
    assert.equal(last.run.state, RunState.SUCCEEDED);
    assert.equal(last.run.replyText, deltas.join(""));
    assert.ok(
      updates.some((u) => u.type === "state" && u.run.state === RunState.RUNNING),
      "saw RUNNING",
    );
    // wait() after the stream agrees.
    const waited = await run.wait();
    assert.equal(waited.replyText, deltas.join(""));
    // deltas() returns the final run as the generator's value.
    const gen = (await client.agent.handle(run.runId)).deltas();
    let r = await gen.next();
    const again = [];
    while (!r.done) {
      again.push(r.value);
      r = await gen.next();
    }
    assert.equal(again.join(""), waited.replyText, "a finished run streams its reply at once");
    assert.equal(r.value.state, RunState.SUCCEEDED);
  });

  test("a /fail run fails with MODEL_FAILED", async () => {
    const run = await client.agent.run({ message: "please /fail now" });
    const done = await run.wait();
    assert.equal(done.state, RunState.FAILED);
    assert.equal(done.error?.reason, "MODEL_FAILED");
    const deltas = await collect(await client.agent.handle(run.runId));
    assert.equal(deltas.join(""), done.replyText);
  });

  test("cancel a running run", async () => {
    const run = await client.agent.run({ message: "/sleep 5000 too slow" });
    const stream = run.updates();
    const t0 = Date.now();
    const cancelled = await run.cancel();
    assert.equal(cancelled.state, RunState.CANCELLED);
    assert.equal(cancelled.error?.reason, "RUN_CANCELLED");
    const seen = [];
    for await (const u of stream) seen.push(u);
    assert.equal(seen.at(-1).type, "done");
    assert.equal(seen.at(-1).run.state, RunState.CANCELLED);
    const waited = await run.wait();
    assert.equal(waited.state, RunState.CANCELLED);
    assert.ok(Date.now() - t0 < 4000, "did not wait for the sleep");
    // Cancelling a terminal run returns it unchanged.
    assert.equal((await run.cancel()).state, RunState.CANCELLED);
  });

  test("idempotency: same key + same input is a duplicate; different input is ALREADY_EXISTS", async () => {
    const key = `ts-key-${Date.now()}`;
    const a = await client.chat.send({ sessionKey: "idem", message: "same", idempotencyKey: key });
    assert.match(a.runId, RUN_ID);
    assert.equal(a.duplicate, false);
    const b = await client.chat.send({ sessionKey: "idem", message: "same", idempotencyKey: key });
    assert.equal(b.runId, a.runId);
    assert.equal(b.duplicate, true);
    const reply = (await collect(b)).join("");
    assert.equal(reply, "You said: same (turn 1)");

    const err = await rejects(() =>
      client.chat.send({ sessionKey: "idem", message: "different", idempotencyKey: key }),
    );
    assert.equal(err.code, "ALREADY_EXISTS");
    assert.equal(err.reason, "IDEMPOTENCY_KEY_CONFLICT");
    assert.equal(err.domain, "clawplane.dev");
    assert.equal(err.metadata.idempotencyKey, key);
    assert.equal(err.metadata.runId, a.runId);
    assert.match(err.message, /IDEMPOTENCY_KEY_CONFLICT/);

    // agent.run too.
    const r1 = await client.agent.run({ message: "agent same", idempotencyKey: `${key}-agent` });
    const r2 = await client.agent.run({ message: "agent same", idempotencyKey: `${key}-agent` });
    assert.equal(r2.runId, r1.runId);
    assert.equal(r2.duplicate, true);
    const e2 = await rejects(() =>
      client.agent.run({ message: "agent other", idempotencyKey: `${key}-agent` }),
    );
    assert.equal(e2.reason, "IDEMPOTENCY_KEY_CONFLICT");
  });

  test("MISSING_SCOPE: the hooks token may run agents but not chat.send", async () => {
    const hooks = connect({ url: gw.url, token: "hooktok-not-the-gateway-token" });
    const caller = await hooks.caller();
    assert.equal(caller.credential, "hooks-token");
    const err = await rejects(() => hooks.chat.send({ sessionKey: "main", message: "nope" }));
    assert.equal(err.code, "PERMISSION_DENIED");
    assert.equal(err.reason, "MISSING_SCOPE");
    assert.equal(err.domain, "clawplane.dev");
    assert.equal(err.metadata.missingScope, "operator.write");
    assert.equal(err.metadata.requiredScopes, "operator.write");
    // Allowed: AgentService/Run + Wait (status is not, so streaming falls back to GetRun).
    const run = await hooks.agent.run({ message: "from a hook" });
    const done = await run.wait();
    assert.equal(done.state, RunState.SUCCEEDED);
  });

  test("UNAUTHENTICATED without or with a wrong token", async () => {
    const none = connect({ url: gw.url, token: null });
    const e1 = await rejects(() => none.status());
    assert.equal(e1.code, "UNAUTHENTICATED");
    assert.equal(e1.reason, "TOKEN_MISSING");
    const wrong = connect({ url: gw.url, token: "wrong" });
    const e2 = await rejects(() => wrong.status());
    assert.equal(e2.code, "UNAUTHENTICATED");
    assert.equal(e2.reason, "TOKEN_INVALID");
  });

  test("INVALID_ARGUMENT carries typed field violations", async () => {
    const err = await rejects(() => client.chat.send({ sessionKey: "main", message: "" }));
    assert.equal(err.code, "INVALID_ARGUMENT");
    assert.ok(err.reason, "has a reason");
    assert.ok(
      err.fieldViolations.some((v) => v.field === "message" && v.description.length > 0),
      JSON.stringify(err.fieldViolations),
    );
  });

  test("unknown run: NOT_FOUND RUN_NOT_FOUND", async () => {
    const err = await rejects(() => client.agent.get("no-such-run"));
    assert.equal(err.code, "NOT_FOUND");
    assert.equal(err.reason, "RUN_NOT_FOUND");
  });

  test("unreachable gateway: UNAVAILABLE without a reason", async () => {
    const c = connect({ url: "http://127.0.0.1:1", token: "x" });
    const err = await rejects(() => c.status());
    assert.equal(err.code, "UNAVAILABLE");
    assert.equal(err.reason, undefined);
    assert.equal(err.unreachable, true);
  });

  test("watchEvents: filter by run and kinds, seqs strictly increasing", async () => {
    const head = (await client.status()).lastEventSeq;
    const run = await client.chat.send({ sessionKey: "watch", message: "watch me" });
    const watch = client.watchEvents({
      afterSeq: head,
      filter: { runId: run.runId, kinds: [EventKind.RUN, EventKind.DELTA] },
    });
    const events = [];
    for await (const ev of watch) {
      events.push(ev);
      if (ev.payload.case === "run" && isTerminal(ev.payload.value)) break;
    }
    for (let i = 1; i < events.length; i++) assert.ok(events[i].seq > events[i - 1].seq);
    assert.ok(events.every((e) => e.runId === run.runId));
    assert.equal(watch.lastSeq, events.at(-1).seq);
    const text = events
      .filter((e) => e.payload.case === "delta")
      .map((e) => e.payload.value.text)
      .join("");
    assert.equal(text, "You said: watch me (turn 1)");
  });

  test("watchEvents: close() ends a pending iteration cleanly", async () => {
    // A cursor beyond the head just waits for live events.
    const watch = client.watchEvents({ afterSeq: 1n << 40n });
    const it = watch[Symbol.asyncIterator]();
    const pending = it.next();
    setTimeout(() => watch.close(), 200);
    const r = await pending;
    assert.equal(r.done, true);
  });
});

describe("clawplane SDK (gRPC-Web transport)", () => {
  let gw;
  let web;

  before(async () => {
    gw = await Gateway.start();
    web = connect({ url: gw.url, token: gw.token, protocol: "grpc-web" });
  });

  after(async () => {
    await gw?.close();
  });

  test("unary, streaming and error details over gRPC-Web", async () => {
    const st = await web.status();
    assert.equal(st.mainSessionKey, "agent:main:main");
    const run = await web.agent.run({ message: "over grpc web" });
    const deltas = await collect(run);
    assert.deepEqual(deltas, ["You ", "said: ", "over ", "grpc ", "web ", "(turn ", "1)"]);
    const done = await run.wait();
    assert.equal(done.state, RunState.SUCCEEDED);

    const key = "web-key";
    const first = await web.chat.send({ sessionKey: "w", message: "a", idempotencyKey: key });
    const err = await rejects(() =>
      web.chat.send({ sessionKey: "w", message: "b", idempotencyKey: key }),
    );
    assert.equal(err.code, "ALREADY_EXISTS");
    assert.equal(err.reason, "IDEMPOTENCY_KEY_CONFLICT");
    assert.equal(err.metadata.runId, first.runId);
  });

  test("the browser entry point (web.js) works the same", async () => {
    const { connect: connectWeb } = await import("../dist/web.js");
    const c = connectWeb({ url: gw.url, token: gw.token });
    const run = await c.chat.send({ sessionKey: "browser", message: "hi" });
    assert.equal((await run.wait()).replyText, "You said: hi (turn 1)");
    const e = await rejects(() => connectWeb({ url: gw.url, token: "bad" }).status());
    assert.equal(e.reason, "TOKEN_INVALID");
  });
});
