"""Print the public OpenAPI document.

`python -m services.placements.openapi > docs/openapi.json` regenerates the committed copy.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from shared.settings import PlacementsSettings

from .bootstrap import create_app


def document() -> dict[str, Any]:
    """The OpenAPI document of the public API (settings do not change it)."""
    return create_app(PlacementsSettings(environment="local")).openapi()


def render() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
