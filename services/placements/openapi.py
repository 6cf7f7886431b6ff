"""Print the public OpenAPI document.

`python -m services.placements.openapi > docs/openapi.json` regenerates the committed copy (a
unit test fails when it is stale).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from .bootstrap import openapi


def document() -> dict[str, Any]:
    """The OpenAPI document of the public API (settings do not change it)."""
    return openapi()


def render() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
