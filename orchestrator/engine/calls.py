"""The one place where aiodocker/aiohttp failures become our errors (errors.py).

aiodocker reports a refused connection as `DockerError(900, ...)` and lets aiohttp errors from
a broken response through; both mean the engine is unreachable. Every other `DockerError` is
the engine refusing a request and keeps its HTTP status.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import aiodocker
import aiohttp

from orchestrator.errors import EngineError, EngineUnavailable

#: aiodocker's status for "could not connect" (not an HTTP status).
_CONNECT_FAILED = 900


@contextmanager
def engine_errors() -> Iterator[None]:
    try:
        yield
    except aiodocker.DockerError as exc:
        if exc.status == _CONNECT_FAILED:
            raise EngineUnavailable(exc.message) from exc
        raise EngineError(exc.status, exc.message) from exc
    except (aiohttp.ClientError, ConnectionError) as exc:
        raise EngineUnavailable(f"lost the connection to the engine: {exc!r}") from exc


def is_missing(exc: EngineError) -> bool:
    return exc.status == 404
