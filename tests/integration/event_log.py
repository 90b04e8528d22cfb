"""Reading what a real daemon published, and checking it the way a subscriber would rely on it.

`StreamLog` reads the daemon's Redis stream in order, validates every message against the JSON
Schema and checks that `seq` rises by one per message. `take_until` hands the messages out in
phases ("everything since the last phase, up to the one that says the step is done"), so a test
compares each step's messages as a whole. `lifecycles` groups task.state messages by task.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import redis.asyncio as aioredis

from orchestrator import labels
from orchestrator.publishing.events import load_schema

Message = dict[str, Any]

_VALIDATOR = jsonschema.Draft202012Validator(load_schema())

#: A replica's start, as task.state transitions.
STARTED = [("new", "created"), ("created", "starting"), ("starting", "running")]
#: A replica the daemon stops and removes (scale-down, rm).
STOPPED = [("running", "shutdown"), ("shutdown", "removed")]


class StreamLog:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._client = client
        self._stream = labels.events_stream(prefix)
        self._after = "-"
        self.messages: list[Message] = []
        self._handed_out = 0

    async def poll(self) -> list[Message]:
        """Read what was added to the stream since the last poll; checks every message."""
        start = self._after if self._after == "-" else f"({self._after}"
        entries = await self._client.xrange(self._stream, min=start)
        fresh = []
        for entry_id, fields in entries:
            message = json.loads(fields[labels.STREAM_FIELD_EVENT])
            _VALIDATOR.validate(message)
            assert int(fields[labels.STREAM_FIELD_SEQ]) == message["seq"]
            assert entry_id == labels.stream_entry_id(message["seq"])
            if self.messages:
                assert message["seq"] == self.messages[-1]["seq"] + 1, (
                    f"seq gap or repeat: {self.messages[-1]['seq']} then {message['seq']}"
                )
            self.messages.append(message)
            fresh.append(message)
            self._after = entry_id
        return fresh

    async def take_until(
        self, done: Callable[[Message], bool], timeout: float = 60.0, settle: float = 0.3
    ) -> list[Message]:
        """The messages after the previous phase up to and including the first that is `done`.

        Waits `settle` seconds more so that stragglers of this phase show up in it, not in the
        next one."""
        async with asyncio.timeout(timeout):
            while (end := self._find(done)) is None:
                await self.poll()
                await asyncio.sleep(0.05)
        await asyncio.sleep(settle)
        await self.poll()
        end = self._find(done)
        assert end is not None
        phase = self.messages[self._handed_out : end + 1]
        self._handed_out = end + 1
        return phase

    async def take_phase(
        self, done: Callable[[list[Message]], bool], timeout: float = 60.0, settle: float = 0.3
    ) -> list[Message]:
        """Every message after the previous phase, once they satisfy `done` (and `settle` later)."""
        async with asyncio.timeout(timeout):
            while not done(self.rest()):
                await self.poll()
                await asyncio.sleep(0.05)
        await asyncio.sleep(settle)
        await self.poll()
        phase = self.rest()
        self._handed_out = len(self.messages)
        return phase

    def rest(self) -> list[Message]:
        """Messages read but not yet handed out by `take_until`."""
        return self.messages[self._handed_out :]

    def _find(self, done: Callable[[Message], bool]) -> int | None:
        return next((i for i in range(self._handed_out, len(self.messages)) if done(self.messages[i])), None)


def is_(type_: str, **fields: Any) -> Callable[[Message], bool]:
    """A predicate: a message of `type_` whose fields include `fields`."""
    return lambda m: m["type"] == type_ and all(m.get(k) == v for k, v in fields.items())


@dataclass
class Lifecycle:
    """One task's task.state messages, in order."""

    task_id: str
    slot: int
    transitions: list[tuple[str, str]] = field(default_factory=list)
    container_ids: set[str] = field(default_factory=set)
    exit_codes: list[int | None] = field(default_factory=list)


def lifecycles(messages: list[Message]) -> dict[str, Lifecycle]:
    """task_id → its transitions, in the order they were published."""
    found: dict[str, Lifecycle] = {}
    for m in messages:
        if m["type"] != "task.state":
            continue
        life = found.setdefault(m["task_id"], Lifecycle(m["task_id"], m["slot"]))
        assert life.slot == m["slot"], f"task {m['task_id']} changed slot"
        life.transitions.append((m["from"], m["to"]))
        life.exit_codes.append(m.get("exit_code"))
        if "container_id" in m:
            life.container_ids.add(m["container_id"])
    for life in found.values():
        assert len(life.container_ids) == 1, f"task {life.task_id}: container ids {life.container_ids}"
    return found


def service_counts(messages: list[Message], service: str) -> list[tuple[str, int, int]]:
    """(type, running, replicas) of the service.converged/degraded messages of `service`."""
    return [
        (m["type"], m["running"], m["replicas"])
        for m in messages
        if m["type"] in ("service.converged", "service.degraded") and m["service"] == service
    ]


def kinds(messages: list[Message]) -> list[str]:
    """Each message as a short word, for comparing a whole phase: `task.state` as `from→to`."""
    return [f"{m['from']}→{m['to']}" if m["type"] == "task.state" else m["type"] for m in messages]
