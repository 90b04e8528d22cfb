"""swarm/observed_store.py against the real Redis: the Swarm watcher's published states, kept
where every manager's daemon finds them."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from orchestrator.publishing.channels import swarm_observed_key
from orchestrator.swarm.observed import Known
from orchestrator.swarm.observed_store import ObservedStore, ObservedStoreUnavailable

pytestmark = [pytest.mark.integration]


async def test_saved_states_load_back_and_what_is_not_ours_counts_as_nothing_known(
        redis_client: aioredis.Redis, redis_prefix: str) -> None:
    store = ObservedStore(redis_client, redis_prefix)
    key = swarm_observed_key(redis_prefix)
    try:
        assert await store.load() == Known()
        known = Known(tasks={"t1": ["running", "shop", "web", 1, "node-1"]}, nodes={"n1": ["ready", "active"]},
                      updates={"s1": ["completed", "2026-12-01T00:00:00Z"]})
        await store.save(known)
        assert await store.load() == known
        for damaged in ("{not json", "[1, 2]", ""):
            await redis_client.set(key, damaged)
            assert await store.load() == Known()
        await redis_client.delete(key)
        await redis_client.rpush(key, "a list")  # another type: not ours, and the next save replaces it
        assert await store.load() == Known()
        await store.save(known)
        assert await store.load() == known
    finally:
        await redis_client.delete(key)


async def test_a_redis_that_does_not_answer_is_told_as_such() -> None:
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    store = ObservedStore(client, "nowhere")
    try:
        with pytest.raises(ObservedStoreUnavailable, match="Redis"):
            await store.load()
        with pytest.raises(ObservedStoreUnavailable, match="Redis"):
            await store.save(Known())
    finally:
        await client.aclose()
