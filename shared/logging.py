"""structlog configured once per process: JSON lines when not on a terminal, colours on one.

Every logger goes through it: structlog's own, and the standard library's (uvicorn, aiokafka,
FastStream: FastStream's `faststream` logger comes with a coloured handler of its own, which is
taken off, so that no plain ANSI line ends up among the JSON ones).

`shared.kafka.EventPolicy` binds `topic`, `event_id`, `event_type`, `region` and, for round
events, `round_id` with `bind_contextvars` while a message is handled, and `shared.tracing` adds
`trace_id` and `span_id` inside a trace, so every line of a message's handling carries them.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import faststream  # noqa: F401  # sets up its `faststream` logger, reset below
import structlog

from shared.tracing import add_trace_ids

# Loggers that libraries give handlers of their own (and no propagation): theirs are removed.
OWN_HANDLERS = ("faststream", "uvicorn", "uvicorn.error", "uvicorn.access")


def configure_logging(service: str, level: str = "INFO", *, json: bool | None = None) -> None:
    """Configure structlog and the standard library logging (idempotent)."""
    as_json = (not sys.stderr.isatty()) if json is None else json
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        add_trace_ids,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info if as_json else structlog.dev.set_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Route the standard library (uvicorn, aiokafka, faststream) through the same renderer.
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in (*OWN_HANDLERS, *_faststream_access_loggers()):
        library = logging.getLogger(name)
        library.handlers[:] = []
        library.propagate = True
    # Libraries that log every request or message at INFO: only their warnings are kept.
    for noisy in ("aiokafka", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    kafka = logging.getLogger("aiokafka")
    if not any(isinstance(f, _StaleMetadataAtStart) for f in kafka.filters):
        kafka.addFilter(_StaleMetadataAtStart())
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


class _StaleMetadataAtStart(logging.Filter):
    """aiokafka logs, as an error, a lookup of a group's coordinator made before the client
    has its first metadata ("node with id None: StaleMetadata"), and then succeeds: a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and "with id None: StaleMetadata" in record.getMessage():
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _faststream_access_loggers() -> list[str]:
    """FastStream's per-broker loggers (`faststream.access.<broker>`) made so far."""
    return [name for name in logging.root.manager.loggerDict if name.startswith("faststream.")]


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
