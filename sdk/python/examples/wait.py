"""Waits for a run to finish and prints the final Run as canonical proto3 JSON on one line
(e.g. {"runId": "...", "state": "RUN_STATE_SUCCEEDED", ...}). Exit status 0 when the run
finished (whatever its state), 1 on error or when it did not finish in time.

    python examples/wait.py <runId> [timeoutSeconds]      (CLAWPLANE_URL / CLAWPLANE_TOKEN)
"""

from __future__ import annotations

import json
import sys

from google.protobuf import json_format

import clawplane


def main(argv: list[str]) -> int:
    if not argv or len(argv) > 2:
        print("usage: python examples/wait.py <runId> [timeoutSeconds]", file=sys.stderr)
        return 2
    timeout = float(argv[1]) if len(argv) > 1 else 120.0
    try:
        with clawplane.connect() as client:
            run = client.wait_run(argv[0], timeout)
    except clawplane.ClawplaneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(json_format.MessageToDict(run), separators=(",", ":")))
    if not clawplane.is_terminal(run):
        print(f"error: run {argv[0]} did not finish in time", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
