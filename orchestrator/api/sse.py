"""`GET /v1/events`: the Redis event stream as Server-Sent Events.

`id:` is the message's gapless `seq`. A client resumes with `Last-Event-ID` (what browsers send
on reconnect) or `?since=N`: everything retained with seq > N is replayed, then live messages
follow. If the stream was trimmed past N, an `event: gap` tells the client what it missed.
Stream entries are the publisher's: id `<seq>-0`, the JSON message in field `event`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import structlog
from aiohttp import web
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator.api import bodies
from orchestrator.api.errors import RequestError, error_response
from orchestrator.api.state import REDIS, SETTINGS, STOPPING
from orchestrator.labels import STREAM_FIELD_EVENT, events_stream, stream_entry_id

log = structlog.stdlib.get_logger()

PAGE = 500
POLL_MS = 1000
KEEPALIVE_S = 15.0

Entry = tuple[str, dict[str, Any]]


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_entry(entry_id: Any, fields: dict[Any, Any]) -> Entry | None:
    """(stream id, message) or None for an entry that is not a JSON message with a seq."""
    data = {_decode(k): v for k, v in fields.items()}.get(STREAM_FIELD_EVENT)
    try:
        message = json.loads(_decode(data)) if data is not None else None
    except ValueError:
        return None
    if not isinstance(message, dict) or not isinstance(message.get("seq"), int):
        return None
    return _decode(entry_id), message


async def entries(redis: Any, stream: str, since: int | None) -> AsyncIterator[Entry | None]:
    """Retained messages with seq > since (entry ids are `<seq>-0`), then live ones; None
    after each quiet poll. since=None: live messages only."""
    if since is None:
        latest = await redis.xrevrange(stream, max="+", min="-", count=1)
        last_id = _decode(latest[0][0]) if latest else "0-0"
    else:
        last_id = stream_entry_id(since)
        while page := await redis.xrange(stream, min="(" + last_id, max="+", count=PAGE):
            for entry_id, fields in page:
                last_id = _decode(entry_id)
                if (parsed := parse_entry(entry_id, fields)) is not None:
                    yield parsed
    block_ms = _block_ms(redis)
    while True:
        try:
            answer = await redis.xread({stream: last_id}, block=block_ms, count=PAGE)
        except RedisTimeoutError:
            # A busy machine answered a quiet poll after the socket timeout: still a quiet poll.
            answer = None
        if not answer:
            yield None
        for entry_id, fields in answer[0][1] if answer else ():
            last_id = _decode(entry_id)
            if (parsed := parse_entry(entry_id, fields)) is not None:
                yield parsed


def _block_ms(redis: Any) -> int:
    """How long one XREAD may block: short, so shutdown ends a quiet stream promptly, and
    under the client's socket timeout, which would otherwise end the read as a timeout."""
    kwargs = redis.connection_pool.connection_kwargs
    timeout = kwargs.get("socket_timeout") or kwargs.get("orig_socket_timeout")
    if not timeout:
        return POLL_MS
    return max(50, min(POLL_MS, int(timeout * 1000 * 0.5)))


def format_event(message: dict[str, Any]) -> bytes:
    kind = str(message.get("type", "message")).replace("\n", " ")
    return f"id: {message['seq']}\nevent: {kind}\ndata: {json.dumps(message)}\n\n".encode()


def _since(request: web.Request) -> tuple[int | None, str]:
    """The seq to resume after, and where it came from (the header wins, as browsers send it)."""
    header = request.headers.get("Last-Event-ID")
    if header:
        return bodies.parse_count(header, "Last-Event-ID", bodies.MAX_SEQ), "Last-Event-ID"
    raw = request.query.get("since")
    if raw is None:
        return None, "since"
    return bodies.parse_count(raw, "since", bodies.MAX_SEQ), "since"


async def newest_seq(redis: Any, stream: str) -> int:
    """The seq of the stream's last entry (ids are `<seq>-0`); 0 when it is empty."""
    latest = await redis.xrevrange(stream, max="+", min="-", count=1)
    return int(_decode(latest[0][0]).partition("-")[0]) if latest else 0


async def events(request: web.Request) -> web.StreamResponse:
    since, since_key = _since(request)
    stack = request.query.get("stack")
    if stack is not None:
        bodies.check_stack_name(stack, "stack")
    redis = request.app[REDIS]
    if redis is None:
        return error_response(503, "events_unavailable", "the daemon has no Redis connection")
    stream = events_stream(request.app[SETTINGS].prefix)
    try:
        newest = await newest_seq(redis, stream)
    except (OSError, RedisError) as exc:
        return error_response(503, "events_unavailable", f"Redis is not reachable: {exc}")
    if since is not None and since > newest:
        # A seq this daemon never sent: an empty 200 would leave the client waiting forever.
        raise RequestError(f"{since_key}={since} is newer than the newest message (seq {newest})",
                           path=since_key)
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    await _stream(request, response, entries(redis, stream, since), since, stack)
    return response


async def _stream(request: web.Request, response: web.StreamResponse,
                  source: AsyncIterator[Entry | None], since: int | None, stack: str | None) -> None:
    stopping = request.app[STOPPING]
    expected = None if since is None else since + 1
    written = time.monotonic()
    try:
        async for entry in source:
            if stopping.is_set():
                break
            if entry is None:
                # A comment now and then keeps proxies from closing the stream and lets us
                # notice a client that went away.
                if time.monotonic() - written >= KEEPALIVE_S:
                    await response.write(b": keepalive\n\n")
                    written = time.monotonic()
                continue
            written = time.monotonic()
            message = entry[1]
            if expected is not None and message["seq"] > expected:
                # Trimmed from the capped stream (or never kept): say what the client missed.
                gap = {"from": expected, "to": message["seq"] - 1}
                await response.write(f"event: gap\ndata: {json.dumps(gap)}\n\n".encode())
            expected = None
            if stack is None or message.get("stack") == stack:
                await response.write(format_event(message))
    except (OSError, RedisError) as exc:
        # Headers are sent: end the stream; the client resumes with Last-Event-ID.
        log.warning("event_stream_ended", error=str(exc))
