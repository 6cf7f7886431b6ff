"""Reading a running service's Prometheus metrics, as an operator's scraper does."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


async def metric_total(url: str, sample: str, **labels: str) -> float:
    """The sum of `sample`'s values at `url`/metrics over the series matching `labels`."""
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{url}/metrics")).text
    return sum(
        float(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )
