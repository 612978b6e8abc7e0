// Waits for a run to reach a terminal state and prints the final Run as (proto3) JSON.
// Exit status 0 when the run finished (whatever its state), 1 on error or timeout.
//
//   node examples/wait.mjs <runId> [timeoutMs]      (CLAWPLANE_URL / CLAWPLANE_TOKEN)

import { toJson } from "@bufbuild/protobuf";
import { ClawplaneError, RunSchema, connect, isTerminal } from "@clawplane/sdk";

const [runId, timeout] = process.argv.slice(2);
if (!runId) {
  console.error("usage: node examples/wait.mjs <runId> [timeoutMs]");
  process.exit(2);
}
try {
  const run = await connect().agent.wait(runId, { timeoutMs: Number(timeout ?? 120_000) });
  console.log(JSON.stringify(toJson(RunSchema, run)));
  if (!isTerminal(run)) {
    console.error(`error: run ${runId} did not finish in time`);
    process.exit(1);
  }
} catch (e) {
  if (e instanceof ClawplaneError) {
    console.error(`error: ${e.message}`);
    process.exit(1);
  }
  throw e;
}
