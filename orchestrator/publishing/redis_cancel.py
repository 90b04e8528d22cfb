"""A workaround shared by every loop that talks to Redis.

redis-py (8.1) can swallow a cancellation that lands mid-command: it finishes the command and
returns as if nothing happened. A loop that keeps talking to Redis then never ends when it is
cancelled (a daemon's shutdown, Ctrl-C on `orchestrator events`), so it checks for one itself."""

from __future__ import annotations

import asyncio


def honour_cancellation() -> None:
    """Raise CancelledError if the current task has been asked to cancel."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
