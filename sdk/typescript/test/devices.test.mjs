// devices.list / devices.approve with a real pairing request: an Ed25519 device does
// DeviceService/Challenge + ConnectDevice (v3 signed payload), gets PAIRING_REQUIRED with a
// requestId, the operator lists and approves it, the device then receives a token that
// carries exactly its scopes (MISSING_SCOPE for more).

import assert from "node:assert/strict";
import { createHash, generateKeyPairSync, sign } from "node:crypto";
import { after, before, test } from "node:test";

import { ClawplaneError, EventKind, connect } from "../dist/index.js";
import { Gateway } from "./gateway.mjs";

/** A device identity: raw public key (base64url) and id (hex SHA-256 of the raw key). */
function newDevice() {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const pk = publicKey.export({ format: "jwk" }).x; // raw 32 bytes, base64url, no padding
  const id = createHash("sha256").update(Buffer.from(pk, "base64url")).digest("hex");
  return { pk, id, privateKey };
}

/** Challenge → signed ConnectDeviceRequest (v3 payload) → ConnectDevice. */
async function connectDevice(client, dev, scopes, token = "") {
  const ch = await client.raw.devices.challenge({});
  const signedAt = ch.ts;
  const payload = [
    "v3",
    dev.id,
    "cli",
    "cli",
    "operator",
    scopes.join(","),
    String(signedAt),
    token,
    ch.nonce.trim(),
    "linux",
    "",
  ].join("|");
  const signature = sign(null, Buffer.from(payload), dev.privateKey).toString("base64url");
  try {
    return await client.raw.devices.connectDevice({
      device: { id: dev.id, publicKey: dev.pk, signature, signedAt, nonce: ch.nonce },
      clientId: "cli",
      clientMode: "cli",
      role: "operator",
      scopes,
      platform: "linux",
      deviceFamily: "",
      displayName: "ts sdk test device",
      token,
    });
  } catch (e) {
    throw ClawplaneError.from(e);
  }
}

let gw;
let operator;

before(async () => {
  gw = await Gateway.start({ config: { gateway: { nodes: { pairing: { autoApproveLocal: false } } } } });
  operator = connect({ url: gw.url, token: gw.token });
});

after(async () => {
  await gw?.close();
});

test("devices.list on an empty gateway; approving an unknown id is NOT_FOUND", async () => {
  const list = await operator.devices.list();
  assert.deepEqual(list.pending, []);
  assert.deepEqual(list.paired, []);
  await assert.rejects(operator.devices.approve("no-such-request"), (e) => {
    assert.ok(e instanceof ClawplaneError);
    assert.equal(e.code, "NOT_FOUND");
    assert.equal(e.reason, "PAIRING_REQUEST_NOT_FOUND");
    assert.equal(e.metadata.requestId, "no-such-request");
    return true;
  });
});

test("pairing: PAIRING_REQUIRED → devices.list → devices.approve → device token with its scopes", async () => {
  const anonymous = connect({ url: gw.url, token: null });
  const dev = newDevice();
  const head = (await operator.status()).lastEventSeq;

  // Filing a pairing request needs a shared credential (the gateway token here).
  const err = await connectDevice(operator, dev, ["operator.read"]).then(
    () => assert.fail("pairing should be required"),
    (e) => e,
  );
  assert.ok(err instanceof ClawplaneError, `${err}`);
  assert.equal(err.code, "FAILED_PRECONDITION");
  assert.equal(err.reason, "PAIRING_REQUIRED");
  assert.equal(err.metadata.reason, "not-paired");
  const requestId = err.metadata.requestId;
  assert.ok(requestId, "requestId in the metadata");

  const list = await operator.devices.list();
  const pending = list.pending.find((p) => p.requestId === requestId);
  assert.ok(pending, JSON.stringify(list.pending.map((p) => p.requestId)));
  assert.equal(pending.deviceId, dev.id);
  assert.deepEqual(pending.scopes, ["operator.read"]);

  const approved = await operator.devices.approve(requestId);
  assert.equal(approved.requestId, requestId);
  assert.equal(approved.device?.deviceId, dev.id);

  const after = await operator.devices.list();
  assert.ok(after.paired.some((d) => d.deviceId === dev.id));
  assert.ok(!after.pending.some((p) => p.requestId === requestId));

  // The pairing shows up in the event feed.
  const types = [];
  const w = operator.watchEvents({ afterSeq: head, filter: { kinds: [EventKind.DEVICE] } });
  for await (const ev of w) {
    types.push(ev.payload.value.type);
    if (ev.payload.value.type === "pair.approved") break;
  }
  assert.deepEqual(types, ["pair.requested", "pair.approved"]);

  // Now the device gets a token carrying exactly operator.read.
  const ok = await connectDevice(anonymous, dev, ["operator.read"]);
  assert.ok(ok.deviceToken);
  assert.deepEqual(ok.scopes, ["operator.read"]);
  const device = connect({ url: gw.url, token: ok.deviceToken });
  const caller = await device.caller();
  assert.equal(caller.credential, "device-token");
  assert.equal(caller.deviceId, dev.id);
  await device.status(); // operator.read suffices

  // Writing needs operator.write: MISSING_SCOPE with typed metadata.
  await assert.rejects(device.chat.send({ sessionKey: "main", message: "hi" }), (e) => {
    assert.ok(e instanceof ClawplaneError);
    assert.equal(e.code, "PERMISSION_DENIED");
    assert.equal(e.reason, "MISSING_SCOPE");
    assert.equal(e.metadata.missingScope, "operator.write");
    return true;
  });
});
