// The emitted .d.ts files type-check a consumer that imports the package by name.

import { execFile } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";

import { SDK_DIR } from "./gateway.mjs";

const exec = promisify(execFile);

test("typings: a TypeScript consumer compiles against @clawplane/sdk", async () => {
  const tsc = join(SDK_DIR, "node_modules", "typescript", "bin", "tsc");
  await exec(process.execPath, [tsc, "-p", join(SDK_DIR, "test", "tsconfig.json")], {
    cwd: SDK_DIR,
    timeout: 60_000,
  }).catch((e) => {
    throw new Error(`tsc failed:\n${e.stdout}\n${e.stderr}`);
  });
});
