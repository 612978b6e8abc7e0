"""Starts the real ``clawplane`` gateway for the tests, exactly like the Rust conformance
harness (tests/tests/conformance/harness.rs ``start_again``):

    clawplane serve --port 0 --bind 127.0.0.1 --data-dir <tmp> --config <tmp>/config.json5

with ``{gateway: {auth: {token: "<random>"}}}`` merged into the config, ``HOME=<tmp>`` and
every ``CLAWPLANE_*`` variable removed; stdout must carry exactly one line,
``clawplane listening on http://127.0.0.1:PORT`` (``https://`` with ``gateway.tls``). Restarts reuse the same data dir, config
and port (``--port <port>``).

The binary is ``$CLAWPLANE_BIN``, default ``<repo>/target/debug/clawplane``.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT = 30.0
EXIT_TIMEOUT = 30.0
LISTENING = "clawplane listening on "
#: The hooks token of the shared test gateway (`hooks.enabled`), for the MISSING_SCOPE check.
HOOKS_TOKEN = "hooktok"


def gateway_bin() -> str:
    path = os.environ.get("CLAWPLANE_BIN") or str(REPO / "target" / "debug" / "clawplane")
    if not os.access(path, os.X_OK):
        raise RuntimeError(
            f"clawplane binary not found at {path}: build it with `cargo build -p clawplane-server` "
            "(from the repository root) or set CLAWPLANE_BIN"
        )
    return path


def _merge_token(config: dict[str, Any], token: str) -> dict[str, Any]:
    cfg = json.loads(json.dumps(config))
    auth = cfg.setdefault("gateway", {}).setdefault("auth", {})
    auth.setdefault("token", token)
    return cfg


class Gateway:
    """A running (or stopped) ``clawplane serve`` with its own temporary data dir."""

    def __init__(self, config: Optional[dict[str, Any]] = None, *, generated_token: bool = False) -> None:
        """``generated_token``: configure no token, so the gateway generates
        ``<data dir>/gateway.token`` (read into :attr:`token` once it listens)."""
        self.bin = gateway_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="clawplane-pysdk-"))
        self.data_dir = self.dir
        cfg = json.loads(json.dumps(config or {})) if generated_token else _merge_token(config or {}, f"test-{uuid.uuid4().hex}")
        self.token: str = "" if generated_token else cfg["gateway"]["auth"]["token"]
        self.config_path = self.dir / "config.json5"
        self.config_path.write_text(json.dumps(cfg, indent=2) + "\n")
        self.stderr_path = self.dir / "stderr.log"
        self.proc: Optional[subprocess.Popen[str]] = None
        self.port = 0
        self.url = ""
        self.starts = 0
        self.start()
        if generated_token:
            self.token = (self.data_dir / "gateway.token").read_text().strip()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Starts the gateway: on a free port the first time, on the same port after."""
        assert self.proc is None, "harness: start while the gateway is still running"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self._spawn()
                return
            except _PortBusy:
                # The previous process's socket may linger briefly after a restart.
                if time.monotonic() > deadline:
                    raise RuntimeError(f"harness: port {self.port} stayed busy\n{self.stderr()}") from None
                time.sleep(0.2)

    def _spawn(self) -> None:
        self.starts += 1
        with open(self.stderr_path, "a") as log:
            log.write(f"===== harness: start #{self.starts} =====\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWPLANE_")}
        env["HOME"] = str(self.dir)
        env["RUST_BACKTRACE"] = "1"
        cmd = [
            self.bin, "serve",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--data-dir", str(self.data_dir),
            "--config", str(self.config_path),
        ]
        log = open(self.stderr_path, "a")
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, env=env,
                text=True, bufsize=1,
            )
        finally:
            log.close()
        lines: "queue.Queue[Optional[str]]" = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, name="gateway-stdout", daemon=True).start()
        other: list[str] = []
        deadline = time.monotonic() + START_TIMEOUT
        url: Optional[str] = None
        while url is None:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                proc.kill()
                proc.wait()
                raise RuntimeError(
                    f"harness: no `{LISTENING}http://…` line within {START_TIMEOUT}s; other stdout: "
                    f"{other!r}\n----- stderr -----\n{self.stderr()}"
                ) from None
            if line is None:
                rc = proc.wait()
                text = self.stderr()
                if self.port and "in use" in text.split("===== harness: start #")[-1].lower():
                    raise _PortBusy()
                raise RuntimeError(
                    f"harness: gateway exited ({rc}) before its listening line; other stdout: {other!r}\n"
                    f"----- stderr -----\n{text}"
                )
            if line.strip().startswith(LISTENING):
                url = line.strip()[len(LISTENING):]
            else:
                other.append(line)
        if other:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"harness: stdout must carry exactly one line, got {other!r} before it")
        assert url.startswith(("http://", "https://")), url
        self.url = url.rstrip("/")
        self.port = int(self.url.rsplit(":", 1)[1])
        self.proc = proc

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signals the gateway (SIGTERM: graceful) and waits for it to exit."""
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"harness: gateway did not exit within {EXIT_TIMEOUT}s\n{self.stderr()}") from None

    def restart(self) -> None:
        """SIGTERM, wait for exit, start again with the same port, data dir and config."""
        rc = self.stop()
        assert rc == 0, f"gateway exited with {rc} on SIGTERM\n{self.stderr()}"
        self.start()

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ helpers

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def env(self) -> dict[str, str]:
        """The environment for a child process that should talk to this gateway."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWPLANE_")}
        env["CLAWPLANE_URL"] = self.url
        env["CLAWPLANE_TOKEN"] = self.token
        return env


class _PortBusy(Exception):
    pass
