"""Cross-language: a run started by one SDK is waited on by another, against one live gateway.

- TypeScript starts (``node sdk/typescript/examples/run.mjs <msg>``), Python waits (in process
  and with ``sdk/python/examples/wait.py``).
- Python starts (``sdk/python/examples/run.py <msg>``), Go waits (``go run ./examples/wait
  <runId>`` from sdk/go, built once here) and TypeScript waits
  (``node sdk/typescript/examples/wait.mjs <runId>``).

Contracts: run prints ``{"runId": ..., "sessionKey": ...}``; wait prints the final Run as
canonical proto3 JSON (``runId``, ``state`` = ``RUN_STATE_SUCCEEDED``, ``replyText``, ...).
A missing toolchain or example is a failure with a message saying what is missing, never a
skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

import clawplane
from clawplane import run_pb2
from clawplane_harness import Gateway

REPO = Path(__file__).resolve().parents[2]
TS_DIR = REPO / "sdk" / "typescript"
GO_DIR = REPO / "sdk" / "go"
PY_EXAMPLES = REPO / "sdk" / "python" / "examples"
TIMEOUT = 180


def _need(path: Path, what: str) -> None:
    if not path.exists():
        pytest.fail(f"cross-language test: {what} is missing: {path.relative_to(REPO)} does not exist", pytrace=False)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"cross-language test: `{name}` is not on PATH", pytrace=False)
    return found


def _run(cmd: list[str], gw: Gateway, cwd: Path, what: str) -> str:
    try:
        r = subprocess.run(cmd, cwd=cwd, env=gw.env(), capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what}: `{' '.join(cmd)}` did not finish within {TIMEOUT}s", pytrace=False)
    if r.returncode != 0:
        pytest.fail(
            f"{what}: `{' '.join(cmd)}` exited {r.returncode}\n--- stdout ---\n{r.stdout}\n--- stderr ---\n{r.stderr}",
            pytrace=False,
        )
    return r.stdout


def _json_line(out: str, what: str) -> dict[str, Any]:
    lines = [l for l in out.splitlines() if l.strip()]
    if not lines:
        pytest.fail(f"{what}: printed nothing on stdout", pytrace=False)
    try:
        value = json.loads(lines[-1])
    except json.JSONDecodeError as e:
        pytest.fail(f"{what}: last stdout line is not JSON ({e}): {lines[-1]!r}", pytrace=False)
    assert isinstance(value, dict), f"{what}: expected a JSON object, got {value!r}"
    return value


def _check_accepted(accepted: dict[str, Any], what: str) -> str:
    assert isinstance(accepted.get("runId"), str) and accepted["runId"], f"{what}: no runId in {accepted}"
    assert isinstance(accepted.get("sessionKey"), str) and accepted["sessionKey"], f"{what}: no sessionKey in {accepted}"
    return str(accepted["runId"])


def _check_final_json(run: dict[str, Any], run_id: str, message: str, what: str) -> None:
    assert run.get("runId") == run_id, f"{what}: runId {run.get('runId')!r} != {run_id!r} in {run}"
    assert run.get("state") == "RUN_STATE_SUCCEEDED", f"{what}: state {run.get('state')!r} in {run}"
    assert str(run.get("replyText", "")).startswith(f"You said: {message} (turn "), f"{what}: replyText in {run}"


@pytest.fixture(scope="module")
def ts_examples() -> Path:
    _tool("node")
    _need(TS_DIR / "examples" / "run.mjs", "the TypeScript SDK's run example")
    _need(TS_DIR / "examples" / "wait.mjs", "the TypeScript SDK's wait example")
    _need(TS_DIR / "node_modules", "the TypeScript SDK's dependencies (run `npm ci` in sdk/typescript)")
    _need(TS_DIR / "dist" / "index.js", "the TypeScript SDK's build (run `npm run build` in sdk/typescript)")
    return TS_DIR / "examples"


@pytest.fixture(scope="module")
def go_wait(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    go = _tool("go")
    _need(GO_DIR / "go.mod", "the Go SDK")
    _need(GO_DIR / "examples" / "wait" / "main.go", "the Go SDK's wait example")
    out = tmp_path_factory.mktemp("go") / "wait"
    r = subprocess.run(
        [go, "build", "-o", str(out), "./examples/wait"], cwd=GO_DIR, capture_output=True, text=True, timeout=600
    )
    if r.returncode != 0:
        pytest.fail(f"`go build ./examples/wait` in sdk/go failed:\n{r.stderr}", pytrace=False)
    yield str(out)


def _python_run(gw: Gateway, message: str) -> str:
    out = _run([sys.executable, str(PY_EXAMPLES / "run.py"), message], gw, REPO, "Python examples/run.py")
    return _check_accepted(_json_line(out, "Python run.py"), "Python run.py")


def test_typescript_run_python_waits(gateway: Gateway, ts_examples: Path) -> None:
    message = f"from typescript {uuid.uuid4().hex[:8]}"
    out = _run(["node", str(ts_examples / "run.mjs"), message], gateway, TS_DIR, "TypeScript run.mjs")
    run_id = _check_accepted(_json_line(out, "TypeScript run.mjs"), "TypeScript run.mjs")
    with clawplane.connect(gateway.url, gateway.token) as client:
        run = client.wait_run(run_id, 60)
        assert run.state == run_pb2.RUN_STATE_SUCCEEDED
        assert run.message == message
        assert run.reply_text.startswith(f"You said: {message} (turn ")
        # Python's streaming view of the same (finished) run.
        assert "".join(client.run_handle(run_id).deltas()) == run.reply_text
    out = _run([sys.executable, str(PY_EXAMPLES / "wait.py"), run_id], gateway, REPO, "Python examples/wait.py")
    _check_final_json(_json_line(out, "Python wait.py"), run_id, message, "Python wait.py")


def test_python_run_go_waits(gateway: Gateway, go_wait: str) -> None:
    message = f"/sleep 300 from python to go {uuid.uuid4().hex[:8]}"
    run_id = _python_run(gateway, message)
    out = _run([go_wait, run_id], gateway, GO_DIR, "Go examples/wait")
    _check_final_json(_json_line(out, "Go wait"), run_id, message, "Go wait")


def test_python_run_typescript_waits(gateway: Gateway, ts_examples: Path) -> None:
    message = f"/sleep 300 from python to typescript {uuid.uuid4().hex[:8]}"
    run_id = _python_run(gateway, message)
    out = _run(["node", str(ts_examples / "wait.mjs"), run_id], gateway, TS_DIR, "TypeScript wait.mjs")
    _check_final_json(_json_line(out, "TypeScript wait.mjs"), run_id, message, "TypeScript wait.mjs")
