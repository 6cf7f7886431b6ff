"""Print the AsyncAPI document: what the service consumes and what its outbox publishes.

`python -m services.placements.asyncapi > docs/asyncapi-placements.json` regenerates the
committed copy (a unit test fails when it is stale).
"""

from __future__ import annotations

import json
import sys

from .bootstrap import asyncapi


def render() -> str:
    return json.dumps(asyncapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
