// What every SDK does alike, against a live gateway: the token from the local gateway's
// data dir, the default and per-call time limits, and cancellation.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { ClawplaneError, DEFAULT_WAIT_MS, RunState, connect, isTerminal } from "../dist/index.js";
import { Gateway } from "./gateway.mjs";

/** Sets (or, for undefined, removes) env vars while `fn` runs. */
function withEnv(vars, fn) {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const set = (vs) => {
    for (const [k, v] of Object.entries(vs)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  set(vars);
  try {
    return fn();
  } finally {
    set(saved);
  }
}

async function rejects(fn) {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof ClawplaneError, `expected a ClawplaneError, got ${e?.stack ?? e}`);
    return e;
  }
  assert.fail("expected the call to fail");
}

describe("defaults every SDK shares", () => {
  /** @type {Gateway} */
  let gw;
  let client;
  let empty;

  before(async () => {
    gw = await Gateway.start({ generatedToken: true });
    client = connect({ url: gw.url, token: gw.token });
    empty = mkdtempSync(join(tmpdir(), "clawplane-ts-empty-"));
  });

  after(async () => {
    await gw?.close();
    if (empty) rmSync(empty, { recursive: true, force: true });
  });

  test("a loopback URL without a token uses <data-dir>/gateway.token; env tokens come first", async () => {
    const none = { CLAWPLANE_TOKEN: undefined, CLAWPLANE_GATEWAY_TOKEN: undefined, OPENCLAW_GATEWAY_TOKEN: undefined };
    const fromFile = withEnv({ ...none, CLAWPLANE_DATA_DIR: gw.dataDir }, () => connect({ url: gw.url }));
    assert.equal((await fromFile.caller()).credential, "gateway-token");
    // CLAWPLANE_TOKEN, then CLAWPLANE_GATEWAY_TOKEN, win over the file.
    const wrong = withEnv({ ...none, CLAWPLANE_TOKEN: "not-the-token", CLAWPLANE_DATA_DIR: gw.dataDir }, () =>
      connect({ url: gw.url }),
    );
    assert.equal((await rejects(() => wrong.status())).reason, "TOKEN_INVALID");
    const gwEnv = withEnv({ ...none, CLAWPLANE_GATEWAY_TOKEN: gw.token, CLAWPLANE_DATA_DIR: empty }, () =>
      connect({ url: gw.url }),
    );
    assert.equal((await gwEnv.caller()).credential, "gateway-token");
    // OpenClaw's variable stands in for ours (a migrating user's environment).
    const ocEnv = withEnv({ ...none, OPENCLAW_GATEWAY_TOKEN: gw.token, CLAWPLANE_DATA_DIR: empty }, () =>
      connect({ url: gw.url }),
    );
    assert.equal((await ocEnv.caller()).credential, "gateway-token");
    // No file in the data dir, or token: null: nothing is sent.
    const noFile = withEnv({ ...none, CLAWPLANE_DATA_DIR: empty }, () => connect({ url: gw.url }));
    assert.equal((await rejects(() => noFile.status())).reason, "TOKEN_MISSING");
    const explicitNone = withEnv({ ...none, CLAWPLANE_DATA_DIR: gw.dataDir }, () => connect({ url: gw.url, token: null }));
    assert.equal((await rejects(() => explicitNone.status())).reason, "TOKEN_MISSING");
  });

  test("wait() returns the run as it stands when its timeout passes (default 30 s)", async () => {
    assert.equal(DEFAULT_WAIT_MS, 30_000);
    const run = await client.agent.run({ message: "/sleep 5000 slow" });
    try {
      const t0 = Date.now();
      const now = await run.wait({ timeoutMs: 300 });
      const took = Date.now() - t0;
      assert.ok(!isTerminal(now), `still going, got ${RunState[now.state]}`);
      assert.ok(took >= 250 && took < 3000, `returned after ${took} ms`);
    } finally {
      await run.cancel();
    }
  });

  test("a verb whose timeoutMs has passed fails with DEADLINE_EXCEEDED and sends nothing", async () => {
    const err = await rejects(() => client.chat.send({ sessionKey: "ts-too-late", message: "hi" }, { timeoutMs: 0 }));
    assert.equal(err.code, "DEADLINE_EXCEEDED");
    assert.match(err.message, /timeout of 0 ms/);
    assert.equal((await rejects(() => client.sessions.get("ts-too-late"))).code, "NOT_FOUND");
    // A generous limit changes nothing.
    const ok = await client.chat.send({ sessionKey: "ts-in-time", message: "hi" }, { timeoutMs: 10_000 });
    assert.equal((await ok.wait()).state, RunState.SUCCEEDED);
  });

  test("an AbortSignal cancels a wait (not the run) and a verb before it is sent", async () => {
    const run = await client.agent.run({ message: "/sleep 5000 abort the wait" });
    try {
      const ac = new AbortController();
      const t0 = Date.now();
      setTimeout(() => ac.abort(), 200);
      const err = await rejects(() => run.wait({ timeoutMs: 20_000, signal: ac.signal }));
      assert.equal(err.code, "CANCELLED");
      assert.ok(Date.now() - t0 < 2000, `aborted after ${Date.now() - t0} ms`);
      assert.equal((await run.get()).state, RunState.RUNNING, "the run goes on");
      const aborted = AbortSignal.abort();
      const e2 = await rejects(() => client.chat.send({ sessionKey: "ts-aborted", message: "hi" }, { signal: aborted }));
      assert.equal(e2.code, "CANCELLED");
      assert.equal((await rejects(() => client.sessions.get("ts-aborted"))).code, "NOT_FOUND");
    } finally {
      await run.cancel();
    }
  });
});
