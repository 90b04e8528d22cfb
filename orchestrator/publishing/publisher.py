"""Sends events to Redis: pub/sub channels for live readers, a capped stream for replay.

`publish()` is called by the reconcile loop, so it must cost microseconds and never block or
fail: it stamps the time and appends to a bounded in-memory queue. `run()` is the sender task.
It takes batches off the queue, numbers them, and sends each batch as one atomic Lua script
call: per message an XADD to `<prefix>:stream` (entry id `<seq>-0`), then a PUBLISH to
`<prefix>:events` and to `<prefix>:events:<stack>`. XADD comes first and the batch is atomic, so
a reader that subscribes and then reads the stream misses nothing (see event_follow).

`seq` is assigned when a message is taken off the queue, not in `publish()`. The sender has
then talked to Redis at least once and knows the stream's last seq, so numbering continues from
max(seq file, stream tail) even when the file lags; and messages dropped from a full queue never
had a number, so the numbers that go out have no gaps (an `events.dropped` message counts the
loss instead). If Redis is unreachable the queue waits; when it is full the oldest are dropped.
The sender reconnects with capped exponential backoff and logs each outage once.

`wait_confirmed()` lets the reconciler keep its saved task states behind Redis: it returns once
every message published so far is in the stream (or was dropped from a full queue), so a state
file written afterwards never records a transition whose message a crash could still lose.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
import redis.exceptions
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from orchestrator.publishing import channels
from orchestrator import labels, metrics
from orchestrator.support.backoff import doubling
from orchestrator.publishing.events import Event, events_dropped
from orchestrator.publishing.redis_cancel import honour_cancellation
from orchestrator.publishing.seq_store import SeqStore

log = structlog.stdlib.get_logger()

# Anything that means "Redis is not answering properly right now": retried, never raised.
_UNAVAILABLE = (redis.exceptions.RedisError, OSError)
#: Between send attempts once close() was asked (it gives them a few seconds in all).
CLOSING_RETRY_S = 0.1
#: The first reconnect waits this long, doubling up to reconnect_max_delay.
RECONNECT_FIRST = 0.05

# One batch, atomically (a script runs as a whole, like MULTI/EXEC). A script rather than a
# pipeline because the client then encodes one command per batch instead of three per message:
# that is most of the sender's CPU (benchmarks/bench_publisher.py).
# KEYS[1]: the stream. ARGV: maxlen, all-events channel, the two stream field names, then per
# message: seq, its stack's channel ("" if none), the JSON.
_SEND_BATCH = """
local maxlen, everything, seq_field, event_field = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
for i = 5, #ARGV, 3 do
    local seq, stack_channel, message = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, seq .. '-0', seq_field, seq, event_field, message)
    redis.call('PUBLISH', everything, message)
    if stack_channel ~= '' then
        redis.call('PUBLISH', stack_channel, message)
    end
end
return (#ARGV - 4) / 3
"""


@dataclass(frozen=True, slots=True)
class _Numbered:
    """A message with its seq, taken off the queue and not yet confirmed by Redis."""

    seq: int
    stack: str | None
    json: str


class Publisher:
    def __init__(
        self,
        redis_url: str,
        prefix: str,
        seq_store: SeqStore,
        queue_limit: int = 10_000,
        stream_maxlen: int = 10_000,
        batch_size: int = 200,
        persist_interval: float = 0.5,
        reconnect_max_delay: float = 5.0,
        socket_timeout: float = 10.0,
    ) -> None:
        # No retries inside the client: the sender owns reconnecting, with its own backoff.
        self._client = aioredis.Redis.from_url(
            redis_url, decode_responses=True, socket_connect_timeout=2.0, socket_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),
        )  # fmt: skip
        self._send_batch = self._client.register_script(_SEND_BATCH)
        self._prefix = prefix
        self._stream = channels.events_stream(prefix)
        self._all_channel = channels.events_channel(prefix)
        self._seq_store = seq_store
        self._queue_limit = queue_limit
        self._stream_maxlen = stream_maxlen
        self._batch_size = batch_size
        self._persist_interval = persist_interval
        self._reconnect_max_delay = reconnect_max_delay

        self._queue: deque[tuple[Event, float]] = deque()
        self._dropped = 0
        self._dropped_at = 0.0
        self._wakeup = asyncio.Event()
        self._unconfirmed: list[_Numbered] = []
        #: Of `_unconfirmed`, the messages `publish()` queued (not an `events.dropped`).
        self._unconfirmed_published = 0
        #: Messages ever given to publish(), and of those the ones Redis confirmed or the full
        #: queue dropped: the positions `wait_confirmed()` compares.
        self._published_total = 0
        self._settled_total = 0
        self._confirm_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._seq = seq_store.load()  # last seq handed out
        self._confirmed = self._seq  # last seq Redis acknowledged
        self._persisted = self._seq
        self._persisted_at = time.monotonic()
        self._persisting: asyncio.Task[None] | None = None
        self._connected = False
        self._outage_since: float | None = None
        self._closing = False
        self._close_requested = asyncio.Event()
        self._abandoned = False
        self._runner: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()

    @property
    def last_seq(self) -> int:
        """The last seq Redis acknowledged."""
        return self._confirmed

    @property
    def queued(self) -> int:
        return len(self._queue) + len(self._unconfirmed)

    def publish(self, event: Event) -> None:
        """Queue `event` for sending. Never blocks, never raises; call it from the event loop."""
        now = time.time()
        if len(self._queue) >= self._queue_limit:
            self._queue.popleft()
            if not self._dropped:
                log.warning("event_queue_overflowed", limit=self._queue_limit)
            self._dropped += 1
            self._dropped_at = now
            metrics.EVENTS_DROPPED.inc()
            self._settle(1)
        self._queue.append((event, now))
        self._published_total += 1
        self._wakeup.set()

    async def wait_confirmed(self, timeout: float) -> None:
        """Return once Redis has confirmed every message published so far (or the full queue
        dropped it), or after `timeout` seconds; at once while Redis is away or once the
        publisher is closed, so that nobody waits on an outage."""
        target = self._published_total
        if self._settled_total >= target or not self._sending():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._confirm_waiters.append((target, waiter))
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(waiter)
        except TimeoutError:
            pass
        finally:
            if (target, waiter) in self._confirm_waiters:
                self._confirm_waiters.remove((target, waiter))

    def _sending(self) -> bool:
        """Not closed, and Redis answers (or has not failed yet): a confirmation is coming."""
        return not self._stopped.is_set() and self._outage_since is None

    def _settle(self, count: int) -> None:
        """`count` more published messages are confirmed or dropped: wake who waited for them."""
        self._settled_total += count
        self._release_waiters(lambda target: target <= self._settled_total)

    def _release_waiters(self, due: Callable[[int], bool]) -> None:
        keep = []
        for target, waiter in self._confirm_waiters:
            if not due(target):
                keep.append((target, waiter))
            elif not waiter.done():
                waiter.set_result(None)
        self._confirm_waiters = keep

    async def run(self) -> None:
        """The sender: runs until `close()` (or cancellation), sending in order."""
        if self._stopped.is_set():
            return  # closed before it started
        self._runner = asyncio.current_task()
        try:
            await self._send_until_closed()
        except asyncio.CancelledError:
            if not self._abandoned:
                raise
            if self._runner is not None:
                self._runner.uncancel()  # close() gave up waiting: a normal end
        finally:
            await self._finish()

    async def close(self, timeout: float = 5.0) -> None:
        """Send what can be sent within `timeout` seconds, then stop `run()` and save the seq."""
        self._closing = True
        self._close_requested.set()
        self._wakeup.set()
        if self._runner is None:
            await asyncio.sleep(0)  # a sender task created just now gets to start
        if self._runner is None or self._runner.done():
            await self._finish()
            return
        try:
            async with asyncio.timeout(timeout):
                await self._stopped.wait()
        except TimeoutError:
            self._abandoned = True
            self._runner.cancel()
            await self._stopped.wait()

    # ----------------------------------------------------------------------- the sender

    async def _send_until_closed(self) -> None:
        failures = 0
        while True:
            honour_cancellation()  # or shutdown could wait forever (redis_cancel.py)
            if not (self._queue or self._dropped or self._unconfirmed):
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            try:
                await self._send_available()
                failures = 0
            except _UNAVAILABLE as exc:
                self._note_outage(exc)
                failures += 1
                await self._pause(doubling(failures, RECONNECT_FIRST, self._reconnect_max_delay))

    async def _pause(self, delay: float) -> None:
        """The reconnect backoff, cut short by close(): its few seconds of grace are better
        spent trying again (Redis may be back) than sleeping out a long delay."""
        if self._closing:
            await asyncio.sleep(min(delay, CLOSING_RETRY_S))
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._close_requested.wait()

    async def _send_available(self) -> None:
        if not self._connected:
            await self._resume()
        while self._queue or self._dropped or self._unconfirmed:
            if not self._unconfirmed:
                self._unconfirmed = self._take_batch()
            await self._send(self._unconfirmed)
            metrics.EVENTS_PUBLISHED.inc(len(self._unconfirmed))
            self._confirmed = self._unconfirmed[-1].seq
            self._batch_confirmed()
            self._maybe_persist()

    def _batch_confirmed(self) -> None:
        self._unconfirmed = []
        published, self._unconfirmed_published = self._unconfirmed_published, 0
        self._settle(published)

    async def _resume(self) -> None:
        """On (re)connecting: learn the stream's last seq and forget what it already holds.

        A batch is one transaction, so a batch whose reply was lost is either wholly in the
        stream (then it is not sent again) or not at all."""
        newest = await self._client.xrevrange(self._stream, count=1)
        # decode_responses: the entry id is a str ("<ms>-<seq>", our seq in the first part)
        tail = int(str(newest[0][0]).partition("-")[0]) if newest else 0
        if self._unconfirmed and self._unconfirmed[-1].seq <= tail:
            self._batch_confirmed()  # the stream holds the whole batch already
        else:
            self._unconfirmed = [message for message in self._unconfirmed if message.seq > tail]
        self._seq = max(self._seq, tail)
        self._confirmed = max(self._confirmed, tail)
        self._connected = True
        if self._outage_since is not None:
            log.info(
                "redis_reconnected", outage_s=round(time.monotonic() - self._outage_since, 3),
                queued=self.queued, dropped=self._dropped,
            )  # fmt: skip
            self._outage_since = None

    def _take_batch(self) -> list[_Numbered]:
        batch: list[_Numbered] = []
        if self._dropped:
            batch.append(self._number(events_dropped(self._dropped), self._dropped_at))
            self._dropped = 0
        published = 0
        while self._queue and len(batch) < self._batch_size:
            batch.append(self._number(*self._queue.popleft()))
            published += 1
        self._unconfirmed_published = published
        return batch

    def _number(self, event: Event, stamped: float) -> _Numbered:
        self._seq += 1
        return _Numbered(self._seq, event.stack, event.to_json(self._seq, stamped))

    async def _send(self, batch: list[_Numbered]) -> None:
        arguments: list[str | int] = [
            self._stream_maxlen, self._all_channel, channels.STREAM_FIELD_SEQ, channels.STREAM_FIELD_EVENT
        ]  # fmt: skip
        for message in batch:
            stack_channel = "" if message.stack is None else channels.events_channel(self._prefix, message.stack)
            arguments += (message.seq, stack_channel, message.json)
        await self._send_batch(keys=[self._stream], args=arguments)

    def _note_outage(self, exc: BaseException) -> None:
        self._connected = False
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            log.warning("redis_unavailable", error=str(exc) or type(exc).__name__, queued=self.queued)
        self._release_waiters(lambda target: True)  # nobody waits on an outage

    # ----------------------------------------------------------------------- the seq file

    def _maybe_persist(self) -> None:
        """Save the seq in the background, at most every `persist_interval` seconds."""
        due = time.monotonic() - self._persisted_at >= self._persist_interval
        if due and self._confirmed != self._persisted and self._persisting is None:
            self._persisting = asyncio.create_task(self._persist(self._confirmed))

    async def _persist(self, seq: int) -> None:
        try:
            await asyncio.to_thread(self._seq_store.save, seq)
            self._persisted = seq
        except OSError as exc:
            log.error("seq_file_write_failed", path=str(self._seq_store.path), error=str(exc))
        finally:
            self._persisted_at = time.monotonic()
            self._persisting = None

    async def _finish(self) -> None:
        if self._stopped.is_set():
            return
        if self._persisting is not None:
            await self._persisting
        if self._confirmed != self._persisted:
            await self._persist(self._confirmed)
        await self._client.aclose()
        if self.queued:
            log.warning("publisher_stopped_with_unsent_events", unsent=self.queued, dropped=self._dropped)
        self._stopped.set()
        self._release_waiters(lambda target: True)
