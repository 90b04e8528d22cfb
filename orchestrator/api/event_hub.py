"""One Redis subscription for every open event stream (`GET /v1/events`, sse.py).

Each stream used to poll the Redis stream with an XREAD loop of its own, a round trip a second
while nothing happened: five open dashboards doubled the daemon's idle CPU. Now live messages
come from the daemon's channel (`<prefix>:events`), read by one subscriber task and handed to
every follower's queue, encoded once. A follower subscribes before it replays what it missed
from the stream (XRANGE) and skips what the channel repeats: the publisher adds each message to
the stream and publishes it in the same script, so nothing falls between the two
(docs/events.md, "Replay").

The subscriber runs only while somebody follows, and blocks on its socket in between: an idle
stream costs nothing but its keepalive. A follower that does not keep up (its queue is full) is
ended, as is every follower when Redis fails or the daemon stops: the client resumes from the
last seq it got, so nothing is lost, and a slow reader never makes the daemon hold more than
`queue_limit` messages for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import structlog
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator.publishing.stream import decode

log = structlog.stdlib.get_logger()

#: Messages waiting for one follower (as many as the stream keeps by default).
QUEUE_LIMIT = 10_000
_END = object()

#: A live message: the parsed JSON (for its seq and stack) and its SSE encoding.
Live = tuple[dict[str, Any], bytes]


class StreamEnded(Exception):
    """The follower was ended: Redis failed, the daemon stops, or it fell too far behind."""


def encode(message: dict[str, Any]) -> bytes:
    """One SSE event: `id:` the seq, `event:` the type, `data:` the JSON message."""
    kind = str(message.get("type", "message")).replace("\n", " ")
    return f"id: {message['seq']}\nevent: {kind}\ndata: {json.dumps(message)}\n\n".encode()


class Follower:
    """One stream's view of the live messages."""

    def __init__(self, limit: int) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue(limit)
        self.ended = ""

    def offer(self, item: Live) -> bool:
        """False when the queue is full: the follower has fallen behind."""
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            return False
        return True

    def end(self, reason: str) -> None:
        self.ended = self.ended or reason
        with contextlib.suppress(asyncio.QueueFull):  # a full queue ends once it is drained
            self._queue.put_nowait(_END)

    async def next(self, timeout: float) -> Live | None:
        """The next live message, or None after `timeout` seconds without one."""
        if self.ended and self._queue.empty():
            raise StreamEnded(self.ended)
        try:
            async with asyncio.timeout(timeout):
                item = await self._queue.get()
        except TimeoutError:
            return None
        if item is _END:
            raise StreamEnded(self.ended)
        return item  # type: ignore[no-any-return]


class EventHub:
    def __init__(self, redis: Any, channel: str, queue_limit: int = QUEUE_LIMIT) -> None:
        self._redis = redis
        self._channel = channel
        self._queue_limit = queue_limit
        self._followers: set[Follower] = set()
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    @contextlib.asynccontextmanager
    async def follow(self) -> AsyncIterator[Follower]:
        """A follower, subscribed when this yields (raises OSError/RedisError if it cannot be)."""
        follower = Follower(self._queue_limit)
        self._followers.add(follower)
        try:
            await self._subscribe()
            yield follower
        finally:
            self._followers.discard(follower)
            if not self._followers and self._task is not None:
                self._task.cancel()
                self._task = None

    def close(self) -> None:
        """End every follower now (the daemon stops)."""
        for follower in list(self._followers):
            follower.end("the daemon is stopping")
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _subscribe(self) -> None:
        if self._task is None or self._task.done():
            self._subscribed = asyncio.Event()
            self._task = asyncio.create_task(self._run(self._subscribed), name="event-hub")
        task, subscribed = self._task, asyncio.create_task(self._subscribed.wait())
        try:
            await asyncio.wait({task, subscribed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            subscribed.cancel()
        if not self._subscribed.is_set():
            raise task.exception() or RedisError("the event subscription ended")

    async def _run(self, subscribed: asyncio.Event) -> None:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            subscribed.set()
            while True:
                try:
                    reply = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                except RedisTimeoutError:
                    continue  # a client whose socket timeout ends even a blocking read
                if reply is not None and (message := decode(reply.get("data"))) is not None:
                    self._deliver((message, encode(message)))
        except (OSError, RedisError) as exc:
            log.warning("event_subscription_failed", error=str(exc))
            for follower in list(self._followers):
                follower.end(f"Redis: {exc}")
            if not subscribed.is_set():
                raise  # the follower waiting in _subscribe answers 503
        finally:
            with contextlib.suppress(OSError, RedisError):
                await asyncio.shield(pubsub.aclose())

    def _deliver(self, item: Live) -> None:
        for follower in list(self._followers):
            if not follower.offer(item):
                self._followers.discard(follower)
                follower.end(f"fell more than {self._queue_limit} messages behind")
