"""`GET /v1/events`: the Redis event stream as Server-Sent Events.

`id:` is the message's gapless `seq`. A client resumes with `Last-Event-ID` (what browsers send
on reconnect) or `?since=N`: everything retained with seq > N is replayed from the stream, then
live messages follow from the daemon's channel through the shared subscription of
event_hub.py (which also says why nothing falls between the two). If the stream was trimmed
past N, an `event: gap` tells the client what it missed. Stream entries are the publisher's: id
`<seq>-0`, the JSON message in field `event`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from orchestrator.api import bodies
from orchestrator.api.errors import RequestError, error_response
from orchestrator.api.event_hub import Follower, StreamEnded, encode
from orchestrator.api.state import EVENT_HUB, REDIS, SETTINGS, STOPPING
from orchestrator.publishing.channels import events_stream
from orchestrator.publishing.stream import messages_after, newest_seq

log = structlog.stdlib.get_logger()

KEEPALIVE_S = 15.0


def _since(request: web.Request) -> tuple[int | None, str]:
    """The seq to resume after, and where it came from (the header wins, as browsers send it)."""
    header = request.headers.get("Last-Event-ID")
    if header:
        return bodies.parse_count(header, "Last-Event-ID", bodies.MAX_SEQ), "Last-Event-ID"
    raw = request.query.get("since")
    if raw is None:
        return None, "since"
    return bodies.parse_count(raw, "since", bodies.MAX_SEQ), "since"


async def events(request: web.Request) -> web.StreamResponse:
    since, since_key = _since(request)
    stack = request.query.get("stack")
    if stack is not None:
        bodies.check_stack_name(stack, "stack")
    redis, hub = request.app[REDIS], request.app[EVENT_HUB]
    if redis is None or hub is None:
        return error_response(503, "events_unavailable", "the daemon has no Redis connection")
    stream = events_stream(request.app[SETTINGS].prefix)
    try:
        async with hub.follow() as follower:  # subscribed first, then the replay: no gap
            newest = await newest_seq(redis, stream)
            if since is not None and since > newest:
                # A seq this daemon never sent: an empty 200 would leave the client waiting forever.
                raise RequestError(f"{since_key}={since} is newer than the newest message "
                                   f"(seq {newest})", path=since_key)
            response = web.StreamResponse(headers={
                "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            })
            await response.prepare(request)
            await _stream(request, response, follower, stream, since, stack)
            return response
    except (OSError, RedisError) as exc:  # before the answer began (_stream catches its own)
        return error_response(503, "events_unavailable", f"Redis is not reachable: {exc}")


async def _stream(request: web.Request, response: web.StreamResponse, follower: Follower,
                  stream: str, since: int | None, stack: str | None) -> None:
    stopping = request.app[STOPPING]
    last = since  # the seq of the last message handled; the channel repeats what the replay sent
    written = time.monotonic()

    async def send(message: dict[str, Any], encoded: bytes | None = None) -> None:
        nonlocal last, written
        if last is not None and message["seq"] > last + 1 and last == since:
            # Trimmed from the capped stream (or never kept): say what the client missed.
            gap = {"from": last + 1, "to": message["seq"] - 1}
            await response.write(f"event: gap\ndata: {json.dumps(gap)}\n\n".encode())
        last = message["seq"]
        if stack is None or message.get("stack") == stack:
            await response.write(encoded or encode(message))
            written = time.monotonic()

    try:
        if since is not None:
            async for message in messages_after(request.app[REDIS], stream, since):
                await send(message)
        while not stopping.is_set():
            live = await follower.next(timeout=KEEPALIVE_S)
            if live is None:
                # A comment now and then keeps proxies from closing the stream and lets us
                # notice a client that went away.
                if time.monotonic() - written >= KEEPALIVE_S:
                    await response.write(b": keepalive\n\n")
                    written = time.monotonic()
            elif last is None or live[0]["seq"] > last:
                await send(*live)
    except StreamEnded as exc:
        log.info("event_stream_ended", reason=str(exc))
    except (OSError, RedisError) as exc:
        # Headers are sent: end the stream; the client resumes with Last-Event-ID.
        log.warning("event_stream_ended", error=str(exc))
