"""The publisher against a real Redis: channels, stream, order, outages, the queue bound, and seq
across restarts. Every message received is validated against the shipped JSON Schema."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from orchestrator.publishing import channels
from orchestrator.publishing import events
from orchestrator.publishing.events import Event
from orchestrator.model.observed import SlotKey, TaskState
from orchestrator.publishing.publisher import Publisher
from orchestrator.publishing.seq_store import SeqStore
from tests.integration.conftest import REDIS_URL
from tests.integration.private_redis import PrivateRedis, free_port

pytestmark = pytest.mark.integration

Message = dict[str, Any]
VALIDATOR = jsonschema.Draft202012Validator(events.load_schema())


def running(stack: str, slot: int) -> Event:
    key = SlotKey(stack, "web", slot)
    return events.task_state(key, None, f"t{slot}", TaskState.STARTING, TaskState.RUNNING)


async def receive(pubsub: aioredis.client.PubSub, count: int, timeout: float = 20.0) -> list[tuple[str, Message]]:
    """The next `count` (channel, message) pairs, each validated."""
    received: list[tuple[str, Message]] = []
    async with asyncio.timeout(timeout):
        while len(received) < count:
            reply = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if reply is not None:
                message = json.loads(reply["data"])
                VALIDATOR.validate(message)
                received.append((reply["channel"], message))
    return received


async def stream_messages(client: aioredis.Redis, prefix: str) -> list[Message]:
    entries = await client.xrange(channels.events_stream(prefix))
    messages = []
    for entry_id, fields in entries:
        message = json.loads(fields[channels.STREAM_FIELD_EVENT])
        VALIDATOR.validate(message)
        assert entry_id == channels.stream_entry_id(message["seq"]) and int(fields["seq"]) == message["seq"]
        messages.append(message)
    return messages


async def wait_for_stream(url: str, prefix: str, count: int, timeout: float = 20.0) -> list[Message]:
    """The stream's messages once it holds `count` (and not more)."""
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        async with asyncio.timeout(timeout):
            while (length := await client.xlen(channels.events_stream(prefix))) < count:
                await asyncio.sleep(0.02)
        assert length == count
        return await stream_messages(client, prefix)
    finally:
        await client.aclose()


@pytest.fixture
async def cleanup_stream(redis_client: aioredis.Redis, redis_prefix: str) -> AsyncIterator[None]:
    yield
    await redis_client.delete(channels.events_stream(redis_prefix))


StartPublisher = Callable[..., Publisher]


@pytest.fixture
async def start_publisher(tmp_path: Path, redis_prefix: str) -> AsyncIterator[StartPublisher]:
    """Starts publishers (sender task running) and closes them all after the test."""
    running_ones: list[tuple[Publisher, asyncio.Task[None]]] = []

    def start(url: str, seq_file: Path = tmp_path / "seq", **options: Any) -> Publisher:
        options.setdefault("reconnect_max_delay", 0.2)
        publisher = Publisher(url, redis_prefix, SeqStore(seq_file), **options)
        running_ones.append((publisher, asyncio.create_task(publisher.run())))
        return publisher

    yield start
    for publisher, task in running_ones:
        await publisher.close(timeout=1.0)
        await task


@pytest.fixture
async def private_redis() -> AsyncIterator[PrivateRedis]:
    server = PrivateRedis(free_port())
    try:
        yield server
    finally:
        server.stop()


async def test_messages_reach_both_channels_and_the_stream_in_order(
    redis_client: aioredis.Redis, redis_prefix: str, cleanup_stream: None, start_publisher: StartPublisher
) -> None:
    all_channel = channels.events_channel(redis_prefix)
    shop_channel = channels.events_channel(redis_prefix, "shop")
    async with redis_client.pubsub() as pubsub:
        await pubsub.subscribe(all_channel, shop_channel)
        publisher = start_publisher(REDIS_URL)
        sent = [
            events.stack_deployed("shop"), running("shop", 1), running("blog", 1),
            events.engine_disconnected("event stream closed"), running("shop", 2), events.stack_removed("blog"),
        ]  # fmt: skip
        for event in sent:
            publisher.publish(event)
        received = await receive(pubsub, count=len(sent) + 3)  # + the three shop messages again

    on_all = [message for channel, message in received if channel == all_channel]
    on_shop = [message for channel, message in received if channel == shop_channel]
    assert [(m["seq"], m["type"], m.get("stack")) for m in on_all] == [
        (seq, event.type, event.stack) for seq, event in enumerate(sent, start=1)
    ]
    assert [m["seq"] for m in on_shop] == [1, 2, 5]
    assert await stream_messages(redis_client, redis_prefix) == on_all
    assert publisher.last_seq == 6


async def test_ten_thousand_messages_go_out_in_order(
    redis_client: aioredis.Redis, redis_prefix: str, cleanup_stream: None, start_publisher: StartPublisher
) -> None:
    count = 10_000
    async with redis_client.pubsub() as pubsub:
        await pubsub.subscribe(channels.events_channel(redis_prefix))
        publisher = start_publisher(REDIS_URL, queue_limit=count)
        for slot in range(1, count + 1):
            publisher.publish(running("shop", slot))
        received = await receive(pubsub, count=count, timeout=60)
    assert [(m["seq"], m["slot"]) for _, m in received] == [(n, n) for n in range(1, count + 1)]
    assert await redis_client.xlen(channels.events_stream(redis_prefix)) == count


async def test_messages_wait_while_redis_is_down_and_then_go_out_in_order(
    private_redis: PrivateRedis, redis_prefix: str, start_publisher: StartPublisher
) -> None:
    await private_redis.start()
    with capture_logs() as logs:
        publisher = start_publisher(private_redis.url)
        for slot in range(1, 6):
            publisher.publish(running("shop", slot))
        await wait_for_stream(private_redis.url, redis_prefix, 5)

        private_redis.stop()  # the data goes with it: --save "" --appendonly no
        for slot in range(6, 26):
            publisher.publish(running("shop", slot))
        await asyncio.sleep(0.5)  # several failed attempts to send
        assert publisher.queued == 20
        await private_redis.start()
        after = await wait_for_stream(private_redis.url, redis_prefix, 20)

    assert [(m["seq"], m["slot"]) for m in after] == [(n, n) for n in range(6, 26)]
    outage_logs = [entry["event"] for entry in logs if entry["event"].startswith("redis_")]
    assert outage_logs == ["redis_unavailable", "redis_reconnected"]


async def test_a_full_queue_drops_the_oldest_and_says_how_many_first(
    private_redis: PrivateRedis, redis_prefix: str, start_publisher: StartPublisher
) -> None:
    with capture_logs() as logs:
        publisher = start_publisher(private_redis.url, queue_limit=10)  # nothing listens there yet
        for slot in range(1, 26):
            publisher.publish(running("shop", slot))
        await asyncio.sleep(0.3)
        await private_redis.start()
        messages = await wait_for_stream(private_redis.url, redis_prefix, 11)

    assert (messages[0]["seq"], messages[0]["type"], messages[0]["dropped"]) == (1, "events.dropped", 15)
    assert [(m["seq"], m["slot"]) for m in messages[1:]] == [(n - 14, n) for n in range(16, 26)]
    assert [entry["event"] for entry in logs].count("event_queue_overflowed") == 1


async def test_a_batch_whose_reply_was_lost_is_not_sent_twice(
    private_redis: PrivateRedis, redis_prefix: str, start_publisher: StartPublisher
) -> None:
    await private_redis.start()
    blocker = aioredis.Redis.from_url(private_redis.url)
    try:
        publisher = start_publisher(private_redis.url, socket_timeout=0.3)
        publisher.publish(running("shop", 1))
        await wait_for_stream(private_redis.url, redis_prefix, 1)
        # The server stalls; the batch sent meanwhile times out on our side, but the server
        # runs it once it wakes. The publisher must find it in the stream and not resend it.
        stall = asyncio.create_task(blocker.execute_command("DEBUG", "SLEEP", "1"))
        await asyncio.sleep(0.1)
        for slot in range(2, 6):
            publisher.publish(running("shop", slot))
        await stall
        publisher.publish(running("shop", 6))
        messages = await wait_for_stream(private_redis.url, redis_prefix, 6)
    finally:
        await blocker.aclose()
    assert [(m["seq"], m["slot"]) for m in messages] == [(n, n) for n in range(1, 7)]


async def test_seq_continues_without_gap_across_publisher_restarts(
    tmp_path: Path, redis_client: aioredis.Redis, redis_prefix: str, cleanup_stream: None
) -> None:
    seq_file = tmp_path / "seq"

    async def one_daemon_life(slots: range) -> list[int]:
        publisher = Publisher(REDIS_URL, redis_prefix, SeqStore(seq_file))
        sender = asyncio.create_task(publisher.run())
        for slot in slots:
            publisher.publish(running("shop", slot))
        await publisher.close(timeout=5.0)
        await sender
        return [m["seq"] for m in await stream_messages(redis_client, redis_prefix)]

    assert await one_daemon_life(range(1, 6)) == [1, 2, 3, 4, 5]
    assert seq_file.read_text() == "5\n"
    assert await one_daemon_life(range(6, 11)) == list(range(1, 11))

    seq_file.write_text("3\n")  # a crash before the file caught up: the stream's tail wins
    assert await one_daemon_life(range(11, 13)) == list(range(1, 13))

    await redis_client.delete(channels.events_stream(redis_prefix))  # Redis lost its data: the file wins
    assert await one_daemon_life(range(13, 15)) == [13, 14]
    assert seq_file.read_text() == "14\n"


async def test_close_gives_up_after_its_timeout_while_redis_is_away(
    private_redis: PrivateRedis, tmp_path: Path, redis_prefix: str
) -> None:
    publisher = Publisher(private_redis.url, redis_prefix, SeqStore(tmp_path / "seq"), reconnect_max_delay=0.2)
    sender = asyncio.create_task(publisher.run())
    publisher.publish(running("shop", 1))
    with capture_logs() as logs:
        async with asyncio.timeout(5):
            await publisher.close(timeout=0.3)
            await sender  # ends normally, not cancelled
    assert not sender.cancelled()
    stopped = [entry for entry in logs if entry["event"] == "publisher_stopped_with_unsent_events"]
    assert [entry["unsent"] for entry in stopped] == [1]
    assert not (tmp_path / "seq").exists()  # nothing was numbered, nothing to remember



async def test_cancelling_the_sender_mid_send_stops_it(
    redis_prefix: str, cleanup_stream: None, tmp_path: Path
) -> None:
    """redis-py can swallow a cancellation that lands inside a command; the sender must stop
    all the same (the daemon's shutdown cancels it while events are flowing)."""
    for attempt in range(30):
        publisher = Publisher(REDIS_URL, redis_prefix, SeqStore(tmp_path / "seq"), batch_size=1)
        sender = asyncio.create_task(publisher.run())
        for slot in range(1, 200):
            publisher.publish(running("shop", slot))
        await asyncio.sleep(0.0003 * (attempt % 10))
        sender.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(sender, 2)


async def test_wait_confirmed_returns_once_redis_holds_every_message_and_never_waits_on_an_outage(
    private_redis: PrivateRedis, redis_prefix: str, start_publisher: StartPublisher
) -> None:
    """The reconciler's tracker writes wait on it (at-least-once delivery across a SIGKILL)."""
    await private_redis.start()
    publisher = start_publisher(private_redis.url)
    client = aioredis.Redis.from_url(private_redis.url, decode_responses=True)
    try:
        for round_ in range(3):
            for slot in range(1, 201):
                publisher.publish(running("shop", slot))
            await publisher.wait_confirmed(600)  # (a hang fails the test's own timeout)
            assert await client.xlen(channels.events_stream(redis_prefix)) == 200 * (round_ + 1)
    finally:
        await client.aclose()

    with capture_logs() as logs:
        private_redis.stop()
        publisher.publish(running("shop", 1))
        while not any(entry["event"] == "redis_unavailable" for entry in logs):
            await asyncio.sleep(0.02)
        async with asyncio.timeout(60):  # far below the 600 s it was given: it did not wait
            await publisher.wait_confirmed(600)
    assert publisher.queued == 1
