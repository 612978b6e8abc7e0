// Starts an agent run and prints {"runId": ..., "sessionKey": ...} once the gateway has
// accepted it (does not wait for the reply). Used by the cross-language tests.
//
//   node examples/run.mjs <message>      (CLAWPLANE_URL / CLAWPLANE_TOKEN)

import { ClawplaneError, connect } from "@clawplane/sdk";

const message = process.argv.slice(2).join(" ");
if (!message) {
  console.error("usage: node examples/run.mjs <message>");
  process.exit(2);
}
try {
  const run = await connect().agent.run({ message });
  console.log(JSON.stringify({ runId: run.runId, sessionKey: run.sessionKey }));
} catch (e) {
  if (e instanceof ClawplaneError) {
    console.error(`error: ${e.message}`);
    process.exit(1);
  }
  throw e;
}
