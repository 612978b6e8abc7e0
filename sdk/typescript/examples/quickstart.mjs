// Quickstart: connect, start an agent run, stream the reply as it is produced, wait for
// the final run, print it.
//
//   CLAWPLANE_URL=http://127.0.0.1:18789 CLAWPLANE_TOKEN=... node examples/quickstart.mjs "hello"

import { ClawplaneError, connect, runStateName } from "@clawplane/sdk";

const message = process.argv.slice(2).join(" ") || "Hello from the TypeScript SDK";

// URL and token default to CLAWPLANE_URL (else http://127.0.0.1:18789) and CLAWPLANE_TOKEN.
const client = connect();

try {
  const status = await client.status();
  console.log(`gateway ${status.version}, default model ${status.defaultModel}`);

  // An idempotency key (UUID) is generated, so the submission is safe to retry.
  const run = await client.agent.run({ message });
  console.log(`run ${run.runId} in ${run.sessionKey}`);

  // Iterating the handle yields reply deltas until the run reaches a terminal state.
  process.stdout.write("reply: ");
  for await (const text of run) process.stdout.write(text);
  process.stdout.write("\n");

  const final = await run.wait({ timeoutMs: 60_000 });
  console.log(`state: ${runStateName(final.state)}`);
  console.log(`reply text: ${final.replyText}`);
  if (final.error) console.log(`error: ${final.error.reason}: ${final.error.message}`);
} catch (e) {
  if (e instanceof ClawplaneError) {
    // Typed error details from google.rpc.ErrorInfo / BadRequest.
    console.error(`failed: ${e.code} ${e.reason ?? ""} ${JSON.stringify(e.metadata)} ${e.rawMessage}`);
    process.exit(1);
  }
  throw e;
}
