"""`GET /v1/events`: the Redis event stream as Server-Sent Events.

`id:` is the message's gapless `seq`. A client resumes with `Last-Event-ID` (what browsers send
on reconnect) or `?since=N`: everything retained with seq > N is replayed, then live messages
follow. If the stream was trimmed past N, an `event: gap` tells the client what it missed.
Stream entries carry the JSON message in their `data` field (the publisher's format).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from orchestrator.api import bodies
from orchestrator.api.errors import RequestError, error_response
from orchestrator.api.state import REDIS, SETTINGS, STOPPING
from orchestrator.labels import events_stream

log = structlog.stdlib.get_logger()

PAGE = 500
KEEPALIVE_MS = 15_000

Entry = tuple[str, dict[str, Any]]


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_entry(entry_id: Any, fields: dict[Any, Any]) -> Entry | None:
    """(stream id, message) or None for an entry that is not a JSON message with a seq."""
    data = {_decode(k): v for k, v in fields.items()}.get("data")
    try:
        message = json.loads(_decode(data)) if data is not None else None
    except ValueError:
        return None
    if not isinstance(message, dict) or not isinstance(message.get("seq"), int):
        return None
    return _decode(entry_id), message


async def replay(redis: Any, stream: str, since: int) -> tuple[str, list[Entry]]:
    """Retained messages with seq > since (oldest first) and the stream id to follow from.

    Reads backwards page by page and stops at the first seq <= since: a recent resume costs
    one page, whatever the stream's length.
    """
    newer: list[Entry] = []
    upper = "+"
    last_id = "0-0"
    while True:
        page = await redis.xrevrange(stream, max=upper, min="-", count=PAGE)
        if last_id == "0-0" and page:
            last_id = _decode(page[0][0])
        done = len(page) < PAGE
        for entry_id, fields in page:
            parsed = parse_entry(entry_id, fields)
            if parsed is None:
                continue
            if parsed[1]["seq"] <= since:
                done = True
                break
            newer.append(parsed)
        if done:
            break
        upper = "(" + _decode(page[-1][0])
    newer.reverse()
    return last_id, newer


async def follow(redis: Any, stream: str, last_id: str) -> AsyncIterator[Entry | None]:
    """Live messages after `last_id`; None every KEEPALIVE_MS without one."""
    while True:
        answer = await redis.xread({stream: last_id}, block=KEEPALIVE_MS, count=PAGE)
        if not answer:
            yield None
            continue
        for entry_id, fields in answer[0][1]:
            last_id = _decode(entry_id)
            parsed = parse_entry(entry_id, fields)
            if parsed is not None:
                yield parsed


def format_event(message: dict[str, Any]) -> bytes:
    kind = str(message.get("type", "message")).replace("\n", " ")
    return f"id: {message['seq']}\nevent: {kind}\ndata: {json.dumps(message)}\n\n".encode()


def _since(request: web.Request) -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.query.get("since")
    if raw is None:
        return None
    if not raw.isdigit():
        raise RequestError(f"Last-Event-ID/since must be a sequence number, not {raw!r}",
                           path="since")
    return int(raw)


async def events(request: web.Request) -> web.StreamResponse:
    since = _since(request)
    stack = request.query.get("stack")
    if stack is not None:
        bodies.check_name(stack, "stack")
    redis = request.app[REDIS]
    if redis is None:
        return error_response(503, "events_unavailable", "the daemon has no Redis connection")
    stream = events_stream(request.app[SETTINGS].prefix)
    try:
        last_id, backlog = await replay(redis, stream, since) if since is not None else (
            await _latest_id(redis, stream), [])
    except (OSError, RedisError) as exc:
        return error_response(503, "events_unavailable", f"Redis is not reachable: {exc}")
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    await _stream(request, response, redis, stream, last_id, backlog, since, stack)
    return response


async def _latest_id(redis: Any, stream: str) -> str:
    page = await redis.xrevrange(stream, max="+", min="-", count=1)
    return _decode(page[0][0]) if page else "0-0"


async def _stream(request: web.Request, response: web.StreamResponse, redis: Any, stream: str,
                  last_id: str, backlog: list[Entry], since: int | None, stack: str | None) -> None:
    if since is not None and backlog and backlog[0][1]["seq"] > since + 1:
        gap = {"from": since + 1, "to": backlog[0][1]["seq"] - 1}
        await response.write(f"event: gap\ndata: {json.dumps(gap)}\n\n".encode())
    stopping = request.app[STOPPING]
    try:
        for _, message in backlog:
            await _send(response, message, stack)
        async for entry in follow(redis, stream, last_id):
            if stopping.is_set():
                break
            if entry is None:
                await response.write(b": keepalive\n\n")
            else:
                await _send(response, entry[1], stack)
    except (OSError, RedisError) as exc:
        # Headers are sent: end the stream; the client resumes with Last-Event-ID.
        log.warning("event_stream_ended", error=str(exc))


async def _send(response: web.StreamResponse, message: dict[str, Any], stack: str | None) -> None:
    if stack is None or message.get("stack") == stack:
        await response.write(format_event(message))
