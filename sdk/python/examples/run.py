"""Starts an agent run and prints {"runId": ..., "sessionKey": ...} once the gateway has
accepted it (does not wait for the reply). Used by the cross-language tests.

    python examples/run.py <message>        (CLAWPLANE_URL / CLAWPLANE_TOKEN)
"""

from __future__ import annotations

import json
import sys

import clawplane


def main(argv: list[str]) -> int:
    message = " ".join(argv)
    if not message:
        print("usage: python examples/run.py <message>", file=sys.stderr)
        return 2
    try:
        with clawplane.connect() as client:
            run = client.agent_run(message)
    except clawplane.ClawplaneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"runId": run.run_id, "sessionKey": run.session_key}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
