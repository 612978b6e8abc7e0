// watchEvents resumes across a gateway restart (SIGTERM, start again on the same port and
// data dir) without duplicates or gaps; an expired cursor raises CursorExpiredError.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  CursorExpiredError,
  EventKind,
  RunState,
  connect,
  isTerminal,
} from "../dist/index.js";
import { Gateway } from "./gateway.mjs";

/** Pulls events from `it` until `pred(event)` holds; returns them. */
async function until(it, pred, timeoutMs = 20_000) {
  const out = [];
  const timer = new Promise((_, rej) =>
    setTimeout(() => rej(new Error(`timed out; got ${out.map((e) => e.seq)}`)), timeoutMs).unref(),
  );
  for (;;) {
    const r = await Promise.race([it.next(), timer]);
    if (r.done) throw new Error("the watch ended");
    out.push(r.value);
    if (pred(r.value)) return out;
  }
}

const terminalOf = (runId) => (e) =>
  e.payload.case === "run" && e.runId === runId && isTerminal(e.payload.value);
/** The terminal RUN event of the run started with idempotency key `key`. */
const terminalOfKey = (key) => (e) =>
  e.payload.case === "run" && e.payload.value.idempotencyKey === key && isTerminal(e.payload.value);

test("watchEvents resumes after the gateway restarts, without duplicates or gaps", async () => {
  const gw = await Gateway.start();
  try {
    const client = connect({ url: gw.url, token: gw.token });
    const filter = { kinds: [EventKind.RUN, EventKind.DELTA] };
    const reconnects = [];
    const watch = client.watchEvents({
      afterSeq: 0,
      filter,
      onReconnect: (seq, err) => reconnects.push({ seq, code: err?.code }),
    });
    const it = watch[Symbol.asyncIterator]();

    const a = await client.chat.send({ sessionKey: "restart", message: "before restart" });
    const before = await until(it, terminalOf(a.runId));
    assert.equal((await a.wait()).state, RunState.SUCCEEDED);
    const port = gw.port;

    // The next pull is pending while the gateway goes away and comes back.
    const pending = until(it, terminalOfKey("after-restart-run"), 30_000);
    await gw.stop();
    await new Promise((r) => setTimeout(r, 300));
    await gw.startAgain();
    assert.equal(gw.port, port, "restarted on the same port");

    const b = await client.chat.send({
      sessionKey: "restart",
      message: "after restart",
      idempotencyKey: "after-restart-run",
    });
    const afterEvents = await pending;
    assert.equal((await b.wait()).replyText, "You said: after restart (turn 2)");
    assert.ok(reconnects.length >= 1, "the watch reconnected");
    await it.return();

    const seen = [...before, ...afterEvents];
    const seqs = seen.map((e) => e.seq);
    for (let i = 1; i < seqs.length; i++) {
      assert.ok(seqs[i] > seqs[i - 1], `seqs strictly increase: ${seqs}`);
    }
    // No gap: a fresh replay of the log with the same filter has exactly these events.
    const replay = [];
    const w2 = client.watchEvents({ afterSeq: 0, filter });
    const it2 = w2[Symbol.asyncIterator]();
    replay.push(...(await until(it2, terminalOf(b.runId))));
    await it2.return();
    assert.deepEqual(
      replay.map((e) => e.seq),
      seqs,
      "the resumed watch saw exactly the logged events",
    );
    // Each run: its deltas give its reply, ending with its terminal state.
    for (const run of [a.runId, b.runId]) {
      const mine = seen.filter((e) => e.runId === run);
      const text = mine
        .filter((e) => e.payload.case === "delta")
        .map((e) => e.payload.value.text)
        .join("");
      const last = mine.at(-1);
      assert.equal(last.payload.case, "run");
      assert.equal(last.payload.value.state, RunState.SUCCEEDED);
      assert.equal(text, last.payload.value.replyText);
    }
  } finally {
    await gw.close();
  }
});

test("a run's delta stream follows it across a gateway crash (INTERRUPTED, retried as attempt 2)", async () => {
  const gw = await Gateway.start();
  try {
    const client = connect({ url: gw.url, token: gw.token });
    const run = await client.chat.send({ sessionKey: "mid", message: "/sleep 1500 survive" });
    const updates = [];
    const consume = (async () => {
      for await (const u of run.updates()) updates.push(u);
    })();
    consume.catch(() => {}); // awaited below; avoid an early unhandled-rejection report
    const states = client
      .watchEvents({ afterSeq: 0, filter: { runId: run.runId, kinds: [EventKind.RUN] } })
      [Symbol.asyncIterator]();
    await until(states, (e) => e.payload.value.state === RunState.RUNNING);
    await states.return();
    await gw.restart("SIGKILL"); // kill -9 while RUNNING, then start again on the same port
    await consume;
    const done = updates.at(-1);
    assert.equal(done.type, "done");
    assert.equal(done.run.state, RunState.SUCCEEDED);
    assert.equal(done.run.attempt, 2);
    assert.ok(
      updates.some((u) => u.type === "state" && u.run.state === RunState.INTERRUPTED),
      "saw INTERRUPTED",
    );
    // The deltas after the second attempt started give the reply.
    const second = updates.findIndex((u) => u.type === "state" && u.run.attempt === 2);
    assert.ok(second > 0);
    const text = updates
      .slice(second)
      .filter((u) => u.type === "delta")
      .map((u) => u.text)
      .join("");
    assert.equal(text, done.run.replyText);
    assert.equal(text, "You said: /sleep 1500 survive (turn 1)");
    assert.equal((await run.wait()).state, RunState.SUCCEEDED);
  } finally {
    await gw.close();
  }
});

test("an expired cursor raises CursorExpiredError with oldestSeq", async () => {
  const gw = await Gateway.start({ config: { events: { retention: 5 } } });
  try {
    const client = connect({ url: gw.url, token: gw.token });
    for (let i = 0; i < 3; i++) {
      await (await client.chat.send({ sessionKey: "ret", message: `m${i}` })).wait();
    }
    const st = await client.status();
    assert.ok(st.oldestEventSeq > 2n, `oldest ${st.oldestEventSeq}`);
    const watch = client.watchEvents({ afterSeq: 1 });
    await assert.rejects(
      async () => {
        for await (const _ of watch) {
          /* nothing: the first call fails */
        }
      },
      (e) => {
        assert.ok(e instanceof CursorExpiredError, `${e?.stack}`);
        assert.equal(e.code, "OUT_OF_RANGE");
        assert.equal(e.reason, "CURSOR_EXPIRED");
        assert.equal(e.afterSeq, 1n);
        assert.equal(e.oldestSeq, st.oldestEventSeq);
        return true;
      },
    );
  } finally {
    await gw.close();
  }
});
