"""Fixtures: one shared gateway (hooks enabled, for the MISSING_SCOPE check) and clients."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import clawplane  # noqa: E402
from clawplane_harness import HOOKS_TOKEN, Gateway  # noqa: E402


@pytest.fixture(scope="session")
def gateway() -> Iterator[Gateway]:
    gw = Gateway({"hooks": {"enabled": True, "token": HOOKS_TOKEN}})
    try:
        yield gw
    finally:
        gw.close()


@pytest.fixture(scope="session")
def client(gateway: Gateway) -> Iterator[clawplane.Client]:
    c = clawplane.connect(gateway.url, gateway.token)
    try:
        yield c
    finally:
        c.close()
