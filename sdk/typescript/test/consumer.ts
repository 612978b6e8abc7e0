// Compiled (not run) by test/types.test.mjs: the published typings, as a TypeScript user
// sees them through the package's `exports` ("@clawplane/sdk", "@clawplane/sdk/web").

import {
  ClawplaneError,
  EventKind,
  RunState,
  connect,
  createTransport,
  type Event,
  type Run,
  type RunHandle,
  type RunUpdate,
} from "@clawplane/sdk";
import { connect as connectWeb } from "@clawplane/sdk/web";
import type { GrpcCodeName } from "@clawplane/sdk";

export async function demo(): Promise<string> {
  const client = connect({ url: "http://127.0.0.1:18789", token: "t" });
  const run: RunHandle = await client.agent.run({ message: "hi" });
  let text = "";
  for await (const delta of run) text += delta;
  for await (const u of run.updates()) {
    const x: RunUpdate = u;
    if (x.type === "done") {
      const r: Run = x.run;
      const s: RunState = r.state;
      void s;
    }
  }
  const final: Run = await run.wait({ timeoutMs: 1000 });
  const watch = client.watchEvents({ afterSeq: 0n, filter: { kinds: [EventKind.RUN] } });
  for await (const ev of watch) {
    const e: Event = ev;
    const seq: bigint = e.seq;
    void seq;
    break;
  }
  try {
    await client.devices.approve("x");
  } catch (e) {
    if (e instanceof ClawplaneError) {
      const code: GrpcCodeName = e.code;
      const reason: string | undefined = e.reason;
      const md: Readonly<Record<string, string>> = e.metadata;
      const fv: string[] = e.fieldViolations.map((v) => v.field);
      void [code, reason, md, fv];
    }
  }
  const web = connectWeb({ url: "http://127.0.0.1:18789" });
  await web.status();
  void createTransport({ url: "http://x", protocol: "grpc-web" });
  // @ts-expect-error: unknown request fields are rejected
  await client.chat.send({ sessionKey: "main", message: "x", bogus: 1 });
  return text + final.replyText;
}
