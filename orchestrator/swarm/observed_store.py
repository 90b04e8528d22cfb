"""Where the Swarm watcher keeps the states it last published (`Known`): in Redis, beside the
event stream, so that every manager's daemon finds them.

The daemon on the cluster (stacks/orchestrator-on-swarm.yml) is a Swarm service: when its node
is lost, Swarm starts it on another manager, with an empty volume. A file on the old node's disk
would be lost with it, and the new daemon would tell every task's state once more; the same key
in Redis makes it go on where the old one stopped. The key is written before the messages of a
relist are handed to the publisher (watcher.py), and the stream's last seq is the publisher's
starting point (publisher.py), so the new daemon neither repeats a message nor leaves a gap.

Redis not answering is `ObservedStoreUnavailable`: the watcher then publishes nothing (it could
not record it) and tries again at its next relist.
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from orchestrator.publishing import channels
from orchestrator.swarm.observed import Known

#: Far above any real `Known` (a task is ~100 bytes; Swarm keeps 5 tasks a slot): a bigger value
#: is not ours, and reading it whole could exhaust the daemon's memory.
MAX_BYTES = 64 << 20


class ObservedStoreUnavailable(Exception):
    """Redis did not answer a read or a write of the watcher's state."""


class ObservedStore:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._client = client
        self.key = channels.swarm_observed_key(prefix)

    async def load(self) -> Known:
        """What the previous daemon published; nothing known (every task told once) when the key
        is missing or unreadable."""
        try:
            size = await self._client.strlen(self.key)
            raw = await self._client.get(self.key) if 0 < size <= MAX_BYTES else None
        except redis.exceptions.ResponseError:  # not a string: not ours (the next save replaces it)
            raw = None
        except (redis.exceptions.RedisError, OSError) as exc:
            raise ObservedStoreUnavailable(f"Redis: {exc}") from exc
        return Known.from_plain(_parse(raw))

    async def save(self, known: Known) -> None:
        try:
            await self._client.set(self.key, json.dumps(known.to_plain(), separators=(",", ":")))
        except (redis.exceptions.RedisError, OSError) as exc:
            raise ObservedStoreUnavailable(f"Redis: {exc}") from exc


def _parse(raw: bytes | str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
