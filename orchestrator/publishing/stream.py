"""Reading the event stream back: the one reader for every replay (the API's SSE endpoint
with `since`/Last-Event-ID, the dashboard through it, and `orchestrator events --since`).

Entry ids are `<seq>-0` (publisher.py), so "after seq N" is the exclusive range `(N-0`. Pages
are read one at a time, so a replay of a long stream holds one page in memory. A payload that
is not a JSON message with an integer seq is skipped, not trusted.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from orchestrator.publishing.channels import STREAM_FIELD_EVENT, stream_entry_id

#: Entries read per XRANGE.
PAGE = 500


def text(value: Any) -> str:
    """A Redis reply as str, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else str(value)


def decode(data: Any) -> dict[str, Any] | None:
    """The message in a channel or stream payload, or None if it is not a JSON message with a seq."""
    try:
        message = json.loads(text(data))
    except ValueError:
        return None
    if not isinstance(message, dict) or not isinstance(message.get("seq"), int):
        return None
    return message


async def messages_after(redis: Any, stream: str, seq: int, page: int = PAGE) -> AsyncIterator[dict[str, Any]]:
    """The retained messages with a seq above `seq`, oldest first."""
    last_id = stream_entry_id(seq)
    while entries := await redis.xrange(stream, min="(" + last_id, max="+", count=page):
        for entry_id, fields in entries:
            last_id = text(entry_id)
            data = {text(key): value for key, value in (fields or {}).items()}.get(STREAM_FIELD_EVENT)
            if data is not None and (message := decode(data)) is not None:
                yield message


async def newest_seq(redis: Any, stream: str) -> int:
    """The seq of the stream's last entry; 0 when it is empty."""
    latest = await redis.xrevrange(stream, max="+", min="-", count=1)
    return int(text(latest[0][0]).partition("-")[0]) if latest else 0
