// node --test tests/tools/node-dns-guard.test.cjs: the guard refuses outside names (callback
// and promise forms), logs them, and lets localhost names and loopback literals through.
"use strict";
const test = require("node:test");
const assert = require("node:assert");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { execFileSync } = require("node:child_process");

const guard = path.join(__dirname, "node-dns-guard.cjs");

function runGuarded(script) {
  const log = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "dns-guard-")), "log.jsonl");
  const out = execFileSync(process.execPath, ["-e", script], {
    env: { ...process.env, NODE_OPTIONS: `--require ${guard}`, DNS_GUARD_LOG: log },
    encoding: "utf8",
  });
  const lines = fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n").filter(Boolean) : [];
  return { out: JSON.parse(out), log: lines.map((l) => JSON.parse(l)) };
}

test("outside names are refused and logged", () => {
  const { out, log } = runGuarded(`
    const dns = require("node:dns");
    dns.lookup("registry.example.com", (err) => {
      dns.promises.lookup("api.example.org").catch((err2) => {
        process.stdout.write(JSON.stringify([err && err.code, err2.code, err2.hostname]));
      });
    });`);
  assert.deepStrictEqual(out, ["ENOTFOUND", "ENOTFOUND", "api.example.org"]);
  assert.deepStrictEqual(log.map((l) => l.host), ["registry.example.com", "api.example.org"]);
  assert.ok(log[0].stack.length > 0, "a refused lookup records where it came from");
});

test("localhost names and loopback literals resolve", () => {
  const { out, log } = runGuarded(`
    const dns = require("node:dns");
    Promise.all(["localhost", "127.0.0.1", "::1"].map((h) => dns.promises.lookup(h)))
      .then((r) => process.stdout.write(JSON.stringify(r.map((a) => a.address))));`);
  assert.strictEqual(out.length, 3);
  assert.ok(out.every((a) => a === "::1" || a.startsWith("127.")), JSON.stringify(out));
  assert.deepStrictEqual(log, []);
});
