"""structlog set-up: JSON lines when stderr is not a terminal, a readable console otherwise.

Every line goes through one chain, structlog's own events and the standard library's records
alike (aiohttp.server, asyncio… through structlog's ProcessorFormatter), so the log is all JSON
and all of it passes the two rules that keep secrets out of it:

- tracebacks are rendered without local variables (structlog shows them by default, and a
  frame's locals hold request bodies, stack records, the token);
- the last step before rendering replaces every registered secret (the API token, the Redis
  password) wherever it occurs in the event (`redact`): a defence in depth behind the rule that
  no log call is given a record, a spec, an environment or a request body at all.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer

REDACTED = "***"


class Redactor:
    """A processor that replaces every registered secret in an event's values."""

    def __init__(self) -> None:
        self._secrets: tuple[str, ...] = ()

    def add(self, *values: str) -> None:
        # Longest first, so a secret that contains another one is replaced whole.
        known = {*self._secrets, *(v for v in values if v)}
        self._secrets = tuple(sorted(known, key=len, reverse=True))

    def clean(self, value: Any) -> Any:
        if not self._secrets or value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, Mapping):
            return {self.clean(k): self.clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self.clean(v) for v in value]
        text = value if isinstance(value, str) else str(value)
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def __call__(self, _logger: Any, _method: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
        cleaned: Mapping[str, Any] = self.clean(event) if self._secrets else event
        return cleaned


#: The daemon's one redactor: `redact` registers what it must never print.
REDACTOR = Redactor()


def redact(*secrets: str) -> None:
    REDACTOR.add(*secrets)


def configure_logging(level: str = "info", json: bool | None = None,
                      stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    if json is None:
        json = not stream.isatty()
    numeric_level = logging.getLevelName(level.upper())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Tracebacks become data here, before the redactor reads them: never with locals.
        structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
        if json else structlog.processors.format_exc_info,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json
        else structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[*shared, REDACTOR, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging(shared, renderer, numeric_level, stream)


def _route_stdlib_logging(shared: list[structlog.types.Processor], renderer: structlog.types.Processor,
                          level: int, stream: TextIO) -> None:
    """The standard library's records (aiohttp, asyncio, redis…) through the same chain."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, REDACTOR, renderer],
    ))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
