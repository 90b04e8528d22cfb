"""`orchestrator events`: replay the stream from a seq, then follow live, with no gap and no duplicate.

The order matters: subscribe to the channel first, then read the stream, then print live
messages newer than the last one printed. The publisher adds each message to the stream before
publishing it, in one transaction per batch, so every message is either in the stream when we
read it or arrives on the channel we already listen to; de-duplicating by seq removes the overlap.
A lost connection is retried with backoff, resuming after the last seq printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from orchestrator import labels
from orchestrator.support.backoff import doubling
from orchestrator.publishing.redis_cancel import honour_cancellation
from orchestrator.publishing.redis_url import shown_url

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PREFIX = "orchestrator"
_REPLAY_CHUNK = 1000
_UNAVAILABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)

Message = dict[str, Any]


def redis_target(env: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """(Redis URL, key/channel prefix) from ORCHESTRATOR_REDIS_URL and ORCHESTRATOR_PREFIX."""
    return env.get("ORCHESTRATOR_REDIS_URL", DEFAULT_REDIS_URL), env.get("ORCHESTRATOR_PREFIX", DEFAULT_PREFIX)


class Follower:
    """Prints (through `emit`) every message from `since` on, for one stack or all of them."""

    def __init__(
        self, client: aioredis.Redis, prefix: str, emit: Callable[[Message], None],
        stack: str | None = None, since: int | None = None,
    ) -> None:  # fmt: skip
        self._client = client
        self._prefix = prefix
        self._emit = emit
        self._stack = stack
        #: The last seq printed; None until the first one when following live only.
        self.last_seq: int | None = None if since is None else since - 1

    async def run(self, warn: Callable[[str], None] = lambda text: None) -> None:
        """Follows until cancelled. Fails only if Redis never answered at all."""
        failures = 0
        ever_connected = False
        while True:
            honour_cancellation()
            try:
                async with self._client.pubsub() as pubsub:
                    await self._subscribe(pubsub)
                    ever_connected = True
                    failures = 0
                    await self._replay(warn)
                    await self._follow(pubsub)
            except _UNAVAILABLE as exc:
                if not ever_connected:
                    raise
                failures += 1
                warn(f"lost Redis ({exc}); reconnecting")
                await asyncio.sleep(doubling(failures, 0.1, 5.0))

    async def _subscribe(self, pubsub: aioredis.client.PubSub) -> None:
        await pubsub.subscribe(labels.events_channel(self._prefix, self._stack))
        while True:  # wait for the confirmation: only then is nothing published missed
            reply = await pubsub.get_message(timeout=5.0)
            if reply is not None and reply["type"] == "subscribe":
                return

    async def _replay(self, warn: Callable[[str], None]) -> None:
        if self.last_seq is None:
            return
        start = labels.stream_entry_id(self.last_seq + 1)
        stream = labels.events_stream(self._prefix)
        first = True
        while entries := await self._client.xrange(stream, min=start, count=_REPLAY_CHUNK):
            # The client decodes responses: ids and fields are str; an entry has its fields.
            read = [(str(entry_id), fields or {}) for entry_id, fields in entries]
            oldest = int(read[0][1].get(labels.STREAM_FIELD_SEQ, 0))
            if first and self.last_seq >= 0 and oldest > self.last_seq + 1:
                warn(f"messages {self.last_seq + 1}..{oldest - 1} are no longer in the stream")
            first = False
            for _entry_id, fields in read:
                self._offer(json.loads(fields[labels.STREAM_FIELD_EVENT]))
            start = "(" + read[-1][0]  # exclusive: after the last entry read

    async def _follow(self, pubsub: aioredis.client.PubSub) -> None:
        # Short waits rather than listen(): each return is a chance to honour a cancellation.
        while True:
            honour_cancellation()
            reply = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if reply is not None and reply["type"] == "message":
                self._offer(json.loads(reply["data"]))

    def _offer(self, message: Message) -> None:
        if self.last_seq is not None and message["seq"] <= self.last_seq:
            return  # seen already (replay and live overlap)
        self.last_seq = message["seq"]
        if self._stack is None or message.get("stack") == self._stack:
            self._emit(message)


def format_line(message: Message) -> str:
    """`seq time type stack/service.slot from→to details reason`, for people."""
    where = "/".join(message[key] for key in ("stack", "service") if key in message)
    if "slot" in message:
        where += f".{message['slot']}"
    parts = [str(message["seq"]), message["time"], message["type"], where]
    if "from" in message or "to" in message:
        parts.append(f"{message.get('from', '?')}→{message.get('to', '?')}")
    if "container_id" in message:
        parts.append(message["container_id"][:12])
    if "replicas" in message:
        running = message.get("running")
        parts.append(f"replicas={message['replicas']}" if running is None else f"running={running}/{message['replicas']}")
    for key, label in (("exit_code", "exit="), ("delay_s", "delay="), ("dropped", "dropped=")):
        if key in message:
            parts.append(f"{label}{message[key]}" + ("s" if key == "delay_s" else ""))
    if "reason" in message:
        parts.append(message["reason"])
    return " ".join(part for part in parts if part)


def follow_events(stack: str | None, since: int | None, as_json: bool) -> int:
    """The `orchestrator events` command: runs until interrupted; exit code 1 if Redis is away."""
    redis_url, prefix = redis_target()
    try:
        parse_url(redis_url)
    except ValueError as exc:  # redis-py's word for a URL it cannot use
        print(f"orchestrator events: ORCHESTRATOR_REDIS_URL={shown_url(redis_url)}: {exc}", file=sys.stderr)
        return 1

    def emit(message: Message) -> None:
        print(json.dumps(message, separators=(",", ":")) if as_json else format_line(message), flush=True)

    def warn(text: str) -> None:
        print(f"orchestrator events: {text}", file=sys.stderr, flush=True)

    async def main() -> None:
        # No silent retries in the client: a lost connection must reach Follower.run, which
        # replays what was missed meanwhile.
        client = aioredis.Redis.from_url(
            redis_url, decode_responses=True, socket_connect_timeout=5.0, retry=Retry(NoBackoff(), 0)
        )
        try:
            await Follower(client, prefix, emit, stack=stack, since=since).run(warn)
        finally:
            await client.aclose()

    try:
        asyncio.run(main())
    except _UNAVAILABLE as exc:
        warn(f"cannot reach Redis at {shown_url(redis_url)}: {exc}")
        return 1

    return 0
