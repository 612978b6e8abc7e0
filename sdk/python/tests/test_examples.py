"""The README's quickstart and the cross-language examples run against a live gateway."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from clawplane_harness import Gateway

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(gw: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], env=gw.env(), capture_output=True, text=True, timeout=120
    )


def test_quickstart_runs(gateway: Gateway) -> None:
    r = _run(gateway, str(EXAMPLES / "quickstart.py"))
    assert r.returncode == 0, r.stderr
    assert "You said: hello from Python (turn " in r.stdout
    assert "state: RUN_STATE_SUCCEEDED" in r.stdout
    assert "expected error: NOT_FOUND SESSION_NOT_FOUND" in r.stdout
    assert "You said: hello from asyncio (turn " in r.stdout


def test_run_and_wait_examples(gateway: Gateway) -> None:
    r = _run(gateway, str(EXAMPLES / "run.py"), "examples", "say", "hi")
    assert r.returncode == 0, r.stderr
    accepted = json.loads(r.stdout)
    assert set(accepted) == {"runId", "sessionKey"}
    w = _run(gateway, str(EXAMPLES / "wait.py"), accepted["runId"])
    assert w.returncode == 0, w.stderr
    run = json.loads(w.stdout)
    assert run["runId"] == accepted["runId"]
    assert run["sessionKey"] == accepted["sessionKey"]
    assert run["state"] == "RUN_STATE_SUCCEEDED"
    assert run["replyText"].startswith("You said: examples say hi (turn ")
    bad = _run(gateway, str(EXAMPLES / "wait.py"), "no-such-run")
    assert bad.returncode == 1
    assert "RUN_NOT_FOUND" in bad.stderr


def test_readme_example_is_the_quickstart() -> None:
    readme = (EXAMPLES.parent / "README.md").read_text()
    block = readme.split("```python\n", 1)[1].split("```", 1)[0]
    source = (EXAMPLES / "quickstart.py").read_text()
    body = source.split('"""', 2)[2].lstrip("\n")  # without the module docstring
    assert block.strip() == body.strip(), "README.md's example differs from examples/quickstart.py"
