"""`python -m services.matching.asyncapi`: print the service's AsyncAPI document (JSON)."""

from __future__ import annotations

import json

from services.matching.bootstrap import asyncapi


def render() -> str:
    return json.dumps(asyncapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
