// TLS: the gateway with `gateway.tls.autoGenerate`, reached over https:// with its generated
// certificate as the CA, with a pinned fingerprint, with a wrong pin (refused before any
// request is sent) and with plain http:// (a clear error).

import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { ClawplaneError, RunState, TlsError, connect, parseFingerprint, pemFingerprint } from "../dist/index.js";
import { Gateway } from "./gateway.mjs";

/** SHA-256 of the certificate's DER, uppercase hex pairs joined by ":" (computed here). */
function fingerprintOf(pem) {
  const der = new X509Certificate(pem).raw;
  return createHash("sha256").update(der).digest("hex").toUpperCase().match(/../g).join(":");
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

describe("TLS (gateway.tls.autoGenerate)", () => {
  /** @type {Gateway} */
  let gw;
  let certPath;
  let fp;

  before(async () => {
    gw = await Gateway.start({ config: { gateway: { tls: { autoGenerate: true } } } });
    certPath = join(gw.dataDir, "tls", "cert.pem");
    fp = fingerprintOf(readFileSync(certPath, "utf8"));
  });

  after(async () => {
    await gw?.close();
  });

  test("the gateway listens on https://", () => {
    assert.match(gw.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(pemFingerprint(readFileSync(certPath)), fp);
  });

  test("the generated certificate as the CA: chat send + wait, status reports the fingerprint", async () => {
    const client = connect({ url: gw.url, token: gw.token, caFile: certPath });
    const run = await client.chat.send({ sessionKey: "tls-ca", message: "over tls" });
    const final = await run.wait({ timeoutMs: 30_000 });
    assert.equal(final.state, RunState.SUCCEEDED);
    assert.equal(final.replyText, "You said: over tls (turn 1)");
    const st = await client.status();
    assert.equal(st.tlsFingerprint, fp);
    // The PEM text works as well as the file, and "localhost" is in the certificate.
    const byPem = connect({ url: gw.url.replace("127.0.0.1", "localhost"), token: gw.token, ca: readFileSync(certPath, "utf8") });
    assert.equal((await byPem.status()).tlsFingerprint, fp);
  });

  test("a pinned fingerprint is accepted in any accepted spelling, also from the env", async () => {
    const hex = fp.replaceAll(":", "");
    for (const pin of [fp, hex.toLowerCase(), `sha256:${hex}`]) {
      assert.equal(parseFingerprint(pin), fp);
      const client = connect({ url: gw.url, token: gw.token, tlsFingerprint: pin });
      const st = await client.status();
      assert.equal(st.tlsFingerprint, fp, pin);
    }
    const saved = process.env.CLAWPLANE_TLS_FINGERPRINT;
    process.env.CLAWPLANE_TLS_FINGERPRINT = fp;
    try {
      const client = connect({ url: gw.url, token: gw.token });
      const run = await client.agent.run({ message: "pinned" });
      assert.equal((await run.wait({ timeoutMs: 30_000 })).replyText.includes("pinned"), true);
    } finally {
      if (saved === undefined) delete process.env.CLAWPLANE_TLS_FINGERPRINT;
      else process.env.CLAWPLANE_TLS_FINGERPRINT = saved;
    }
  });

  test("a wrong fingerprint is refused with the mismatch error and nothing reaches the gateway", async () => {
    const good = connect({ url: gw.url, token: gw.token, caFile: certPath });
    const before = (await good.status()).lastEventSeq;
    const wrong = "AB:".repeat(31) + "AB";
    const client = connect({ url: gw.url, token: gw.token, tlsFingerprint: wrong.replaceAll(":", "") });
    const started = Date.now();
    const err = await rejects(() => client.chat.send({ sessionKey: "tls-wrong-pin", message: "must not arrive" }));
    assert.ok(err instanceof TlsError, `${err.stack}`);
    assert.equal(err.code, "UNAVAILABLE");
    assert.equal(err.retryable, false);
    assert.equal(err.detail, `certificate fingerprint mismatch: expected ${wrong}, got ${fp}`);
    assert.ok(err.message.includes(`certificate fingerprint mismatch: expected ${wrong}, got ${fp}`), err.message);
    assert.ok(Date.now() - started < 5_000, "refused at once, not retried");
    // A watch ends with the same error instead of reconnecting forever.
    const watch = client.watchEvents({ afterSeq: 0n });
    const werr = await rejects(async () => {
      for await (const _ of watch) assert.fail("no event over a refused connection");
    });
    assert.ok(werr instanceof TlsError);
    // The gateway saw nothing: no session, no new events.
    const nf = await rejects(() => good.sessions.get("tls-wrong-pin"));
    assert.equal(nf.code, "NOT_FOUND");
    assert.equal((await good.status()).lastEventSeq, before);
  });

  test("without a CA or pin the self-signed certificate is not trusted, unless it is the local data dir's", async () => {
    const saved = process.env.CLAWPLANE_DATA_DIR;
    try {
      process.env.CLAWPLANE_DATA_DIR = join(gw.dir, "no-such-dir");
      const client = connect({ url: gw.url, token: gw.token });
      const err = await rejects(() => client.status());
      assert.ok(err instanceof TlsError, `${err.stack}`);
      assert.match(err.message, /self-signed certificate/);
      // A loopback https:// URL trusts <data-dir>/tls/cert.pem by itself.
      process.env.CLAWPLANE_DATA_DIR = gw.dataDir;
      assert.equal((await connect({ url: gw.url, token: gw.token }).status()).tlsFingerprint, fp);
    } finally {
      if (saved === undefined) delete process.env.CLAWPLANE_DATA_DIR;
      else process.env.CLAWPLANE_DATA_DIR = saved;
    }
  });

  test("plain http:// to the https port fails clearly", async () => {
    const plain = gw.url.replace("https://", "http://");
    const client = connect({ url: plain, token: gw.token });
    const err = await rejects(() => client.status());
    assert.ok(err instanceof TlsError, `${err.stack}`);
    assert.equal(err.retryable, false);
    assert.ok(err.message.includes(`serves TLS (https); use ${gw.url}`), err.message);
    // TLS options need an https:// URL.
    const bad = await rejects(async () => connect({ url: plain, token: gw.token, tlsFingerprint: fp }));
    assert.equal(bad.code, "INVALID_ARGUMENT");
  });
});
