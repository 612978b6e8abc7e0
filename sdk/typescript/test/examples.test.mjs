// The README's quickstart and the cross-language helpers (examples/run.mjs, wait.mjs) run
// against a live gateway, configured only through CLAWPLANE_URL / CLAWPLANE_TOKEN.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";

import { Gateway, SDK_DIR } from "./gateway.mjs";

const exec = promisify(execFile);
let gw;

before(async () => {
  gw = await Gateway.start();
});
after(async () => {
  await gw?.close();
});

function node(script, args) {
  const env = { ...process.env, CLAWPLANE_URL: gw.url, CLAWPLANE_TOKEN: gw.token };
  return exec(process.execPath, [join(SDK_DIR, "examples", script), ...args], {
    env,
    cwd: SDK_DIR,
    timeout: 30_000,
  });
}

test("examples/quickstart.mjs streams and prints the reply", async () => {
  const { stdout } = await node("quickstart.mjs", ["hi", "there"]);
  assert.match(stdout, /^gateway \d+\.\d+\.\d+/m);
  assert.match(stdout, /^run [0-9a-f-]{36} in agent:main:main$/m);
  assert.match(stdout, /^reply: You said: hi there \(turn 1\)$/m);
  assert.match(stdout, /^state: SUCCEEDED$/m);
});

test("examples/run.mjs + examples/wait.mjs", async () => {
  const started = JSON.parse((await node("run.mjs", ["/sleep 100 cross language"])).stdout);
  assert.match(started.runId, /^[0-9a-f-]{36}$/);
  assert.equal(started.sessionKey, "agent:main:main");
  const run = JSON.parse((await node("wait.mjs", [started.runId])).stdout);
  assert.equal(run.runId, started.runId);
  assert.equal(run.state, "RUN_STATE_SUCCEEDED");
  assert.match(run.replyText, /^You said: \/sleep 100 cross language \(turn \d+\)$/);
  assert.equal(run.origin, "RUN_ORIGIN_AGENT");

  await assert.rejects(node("wait.mjs", ["no-such-run"]), (e) => {
    assert.equal(e.code, 1);
    assert.match(e.stderr, /RUN_NOT_FOUND/);
    return true;
  });
});
