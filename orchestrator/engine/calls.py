"""The one place where aiodocker/aiohttp failures become our errors (errors.py).

aiodocker reports a refused connection as `DockerError(900, ...)` and lets aiohttp errors from
a broken response through; both mean the engine is unreachable. Every other `DockerError` is
the engine refusing a request and keeps its HTTP status.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import aiodocker
import aiohttp

from orchestrator.errors import EngineError, EngineUnavailable

#: aiodocker's status for "could not connect" (not an HTTP status).
_CONNECT_FAILED = 900


#: How long a call the engine left unanswered keeps the engine "unreachable" in /v1/health. The
#: loop retries the call with backoff, so a hung engine keeps the window open while it hangs.
STALL_SHOWN_S = 300.0


class Stalls:
    """The last engine call that timed out. A deadlocked dockerd (moby#46661) still answers a
    ping while every stop and inspect of a running container hangs: this is how health sees it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: tuple[float, str] | None = None

    def timed_out(self, what: str) -> None:
        self._last = (self._clock(), what)

    def recent(self, within: float = STALL_SHOWN_S) -> str:
        """What timed out, and how long ago, if within `within` seconds; else ""."""
        if self._last is None:
            return ""
        at, what = self._last
        ago = self._clock() - at
        return f"the engine left {what} unanswered ({ago:.0f} s ago)" if ago <= within else ""


@contextmanager
def engine_errors(stalls: Stalls | None = None, call: str = "a call") -> Iterator[None]:
    """Our errors for aiodocker's; a timeout (the engine silent past the call's deadline) is
    EngineUnavailable and, with `stalls`, remembered as `call`."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:  # not there at all: no call was left unanswered
        raise EngineUnavailable(f"could not connect to the engine: {exc!r}") from exc
    except TimeoutError as exc:  # aiohttp's read and total timeouts
        if stalls is not None:
            stalls.timed_out(call)
        raise EngineUnavailable(f"the engine did not answer {call} in time") from exc
    except aiodocker.DockerError as exc:
        if exc.status == _CONNECT_FAILED:
            raise EngineUnavailable(exc.message) from exc
        raise EngineError(exc.status, exc.message) from exc
    except (aiohttp.ClientError, ConnectionError) as exc:
        raise EngineUnavailable(f"lost the connection to the engine: {exc!r}") from exc


def is_missing(exc: EngineError) -> bool:
    return exc.status == 404
