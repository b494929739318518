"""structlog set-up, done once by the composition root."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(*, level: str, fmt: str) -> None:
    """Send structlog and stdlib logging to stderr, as JSON lines or for a console."""
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))
    # The libraries' own per-connection chatter is noise next to our structured events.
    for name in (
        "websockets",
        "uvicorn.access",
        "aiosqlite",
        "asyncio",
        "alembic",
        "amqtt",
        "transitions",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
