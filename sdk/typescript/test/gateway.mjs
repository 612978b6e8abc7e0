// Starts the real clawplane gateway for the tests, exactly like the Rust conformance
// harness (tests/tests/conformance/harness.rs `start_again`):
//   clawplane serve --port 0 --bind 127.0.0.1 --data-dir <tmp> --config <tmp>/config.json5
// with HOME=<tmp>, CLAWPLANE_* removed, and exactly one stdout line
// `clawplane listening on http://127.0.0.1:PORT`.

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, openSync, closeSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const SDK_DIR = resolve(here, "..");
export const BIN = process.env.CLAWPLANE_BIN
  ? resolve(process.env.CLAWPLANE_BIN)
  : resolve(SDK_DIR, "../../target/debug/clawplane");

const START_TIMEOUT_MS = 20_000;

export class Gateway {
  /**
   * @param {object} [opts]
   * @param {object} [opts.config] extra config merged at the top level (JSON, valid JSON5)
   * @param {boolean} [opts.generatedToken] configure no token: the gateway generates
   *   `<data-dir>/gateway.token` (read into `token` once it listens)
   */
  static async start(opts = {}) {
    if (!existsSync(BIN)) {
      throw new Error(
        `clawplane binary not found at ${BIN}: run \`cargo build -p clawplane-server\` in the repo root or set CLAWPLANE_BIN`,
      );
    }
    const gw = new Gateway(opts.config ?? {}, opts.generatedToken ?? false);
    try {
      await gw.startAgain();
    } catch (e) {
      await gw.close();
      throw e;
    }
    return gw;
  }

  constructor(extraConfig, generatedToken = false) {
    this.dir = mkdtempSync(join(tmpdir(), "clawplane-ts-"));
    this.dataDir = this.dir;
    this.token = generatedToken ? undefined : randomBytes(24).toString("hex");
    this.configPath = join(this.dir, "config.json5");
    this.stderrPath = join(this.dir, "stderr.log");
    const gateway = { ...(extraConfig.gateway ?? {}), ...(generatedToken ? {} : { auth: { token: this.token } }) };
    const config = { ...extraConfig, gateway };
    writeFileSync(this.configPath, JSON.stringify(config, null, 2));
    this.child = undefined;
    this.port = 0;
    this.url = "";
    this.starts = 0;
  }

  /** Spawns the gateway on the same data dir and config; `--port` is the previous port after a restart. */
  async startAgain() {
    if (this.child) throw new Error("harness: startAgain while the gateway is still running");
    this.starts += 1;
    const env = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (!k.startsWith("CLAWPLANE_")) env[k] = v;
    }
    env.HOME = this.dataDir;
    env.RUST_BACKTRACE = "1";
    const errFd = openSync(this.stderrPath, "a");
    const child = spawn(
      BIN,
      [
        "serve",
        "--port",
        String(this.port),
        "--bind",
        "127.0.0.1",
        "--data-dir",
        this.dataDir,
        "--config",
        this.configPath,
      ],
      { env, stdio: ["ignore", "pipe", errFd] },
    );
    closeSync(errFd);
    this.child = child;
    const exited = new Promise((res) => child.once("exit", (code, sig) => res({ code, sig })));
    this.exited = exited;
    const lines = createInterface({ input: child.stdout });
    const other = [];
    const url = await new Promise((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`gateway did not start in ${START_TIMEOUT_MS} ms\n${this.stderr()}`)), START_TIMEOUT_MS);
      lines.on("line", (line) => {
        const m = line.trim().match(/^clawplane listening on (\S+)$/);
        if (m) {
          clearTimeout(timer);
          res(m[1]);
        } else {
          other.push(line);
        }
      });
      exited.then(({ code, sig }) => {
        clearTimeout(timer);
        rej(new Error(`gateway exited (${code ?? sig}) before listening\n${this.stderr()}`));
      });
    });
    if (other.length) {
      await this.stop();
      throw new Error(`harness: stdout must carry exactly one line, got ${JSON.stringify(other)}`);
    }
    this.url = url;
    this.port = Number(new URL(url).port);
    this.token ??= readFileSync(join(this.dataDir, "gateway.token"), "utf8").trim();
  }

  stderr() {
    try {
      return readFileSync(this.stderrPath, "utf8");
    } catch {
      return "";
    }
  }

  /** SIGTERM (or `signal`) and wait for the exit (SIGKILL after 10 s). */
  async stop(signal = "SIGTERM") {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await this.exited;
      clearTimeout(t);
    }
  }

  async restart(signal = "SIGTERM") {
    await this.stop(signal);
    await this.startAgain();
  }

  async close() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes. */
export async function eventually(fn, { timeoutMs = 10_000, intervalMs = 50, what = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
