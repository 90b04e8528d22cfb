"""Engine list/inspect JSON → ContainerState. Pure: no I/O, no aiodocker.

One list call tells status, health (in its status text), labels and published ports. Exit code,
start/finish times, the OOM flag and the engine's error need an inspect; those facts never change
while a container stays in the same state, so they are cached by id (`FactsCache`) and a steady
pass does no inspect at all.

A `die` event is the one exception to "events carry no truth": the engine sends it before its
list stops saying "running", and an inspect then waits (100-200 ms) until the engine has torn the
dead container's network and mounts down. The event already says the process is gone and with
which exit code, so `FactsCache.died` records provisional facts from it: a replacement is planned
at once, off the engine's clean-up. Once the list says "exited" too, the facts stand confirmed
without an inspect when the event told the exit code and an earlier `start` (or inspect) the
start time: the inspect would add nothing (an OOM kill comes as its own event before the `die`;
the engine's error is only ever set by a start that failed, which sends no `die`). That inspect
was one engine round trip on every replacement's critical path, and under a storm of deaths
it waited on the containers' locks (issue 18).
Likewise a `start` event says all an inspect of a running container would (`FactsCache.started`),
so a converging stack of N replicas costs no inspect at all; and the answers to our own create
and start all an inspect of a created or just started container would (`FactsCache.created`,
`FactsCache.start_answered`). The create's matters most under load: an inspect waits for the
container's lock, which its start holds, so a pass that inspected the creates whose starts were
in flight waited for the slowest of them, seconds on a busy engine, and every other stack's pass
waited behind it (issue 18). A start that fails forgets them, so the
next list inspects and reads the engine's error.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from orchestrator import labels
from orchestrator.labels import decimal
from orchestrator.model.observed import ContainerState, EngineStatus, Health, SlotKey

JSON = dict[str, Any]

_HEALTH_IN_STATUS = re.compile(r"\((healthy|unhealthy|health: starting)\)")
#: What the list may still say of a container whose `die` event has come.
_ALIVE_IN_LIST = frozenset({"running", "paused", "restarting"})


@dataclass(frozen=True, slots=True)
class Facts:
    """What only an inspect tells, valid as long as the container stays in `status`."""

    status: str
    exit_code: int | None
    started_at: float | None
    finished_at: float | None
    oom_killed: bool
    error: str
    health: Health | None = None
    #: From a `die` event, not an inspect: newer than a list that still says running.
    provisional: bool = False


class FactsCache:
    """Inspect results by container id; an entry is stale once the listed status differs.

    Forgotten facts are kept aside (not used to answer a list) until the container is destroyed:
    a `die` right after another event still knows when its container started."""

    def __init__(self) -> None:
        self._facts: dict[str, Facts] = {}
        self._forgotten: dict[str, Facts] = {}

    def lookup(self, entry: JSON) -> Facts | None:
        facts = self._facts.get(entry["Id"])
        if facts is None:
            return None
        if facts.provisional:
            if entry["State"] in _ALIVE_IN_LIST:
                return facts  # the list has not caught up with the `die` yet
            if entry["State"] == "exited" and facts.exit_code is not None and facts.started_at is not None:
                # The list agrees with the event, which told all an inspect would: confirmed.
                confirmed = self._facts[entry["Id"]] = dataclasses.replace(facts, provisional=False)
                return confirmed
            return None  # another state, or facts the event could not tell: an inspect says
        if facts.status == "running" and entry["State"] == "created":
            return facts  # a start the list (made before it) has not caught up with
        return facts if facts.status == entry["State"] else None

    def needs_inspect(self, entry: JSON) -> bool:
        # "created" too: a container whose start failed stays "created", and only an inspect
        # shows the engine's error that makes it a failed task rather than a pending one.
        return self.lookup(entry) is None

    def store(self, container_id: str, facts: Facts) -> None:
        self._facts[container_id] = facts
        self._forgotten.pop(container_id, None)

    def started(self, container_id: str, at: float) -> None:
        """A `start` event: running since `at`, all an inspect of a running container would add
        (its health is in the list's status text)."""
        self.store(container_id, Facts("running", None, at, None, False, ""))

    def exit_of(self, container_id: str) -> Facts | None:
        """The container's facts if they say it exited and with which code (a `die` seen)."""
        facts = self._facts.get(container_id)
        return facts if facts is not None and facts.status == "exited" and facts.exit_code is not None else None

    def start_answered(self, container_id: str, at: float) -> None:
        """Our start's answer: running since about `at`, unless its `start` event (which tells
        the engine's own time) or a `die` was seen first. The pass after the start then lists
        it with no inspect, whichever of the answer and the event comes first."""
        current = self._facts.get(container_id)
        if current is None or current.status == "created":
            self.started(container_id, at)

    def created(self, container_id: str) -> None:
        """Our create's answer: created, never started, no error yet."""
        self.store(container_id, Facts("created", None, None, None, False, ""))

    def died(self, container_id: str, exit_code: int | None, at: float, oom_killed: bool = False) -> None:
        """A `die` event: the container has exited (provisional facts, see the module doc)."""
        before = self._facts.get(container_id) or self._forgotten.pop(container_id, None)
        self._facts[container_id] = Facts(
            status="exited",
            exit_code=exit_code,
            started_at=before.started_at if before else None,
            finished_at=at,
            oom_killed=oom_killed,
            error="",
            health=before.health if before else None,
            provisional=True,
        )

    def forget(self, container_id: str | None = None) -> None:
        """Stop trusting one container's facts (an event says it changed), or all (events were
        missed): the next list inspects again."""
        ids = list(self._facts) if container_id is None else [container_id]
        for key in ids:
            if key in self._facts:
                self._forgotten[key] = self._facts.pop(key)

    def drop(self, container_id: str) -> None:
        """The container is gone for good."""
        self._facts.pop(container_id, None)
        self._forgotten.pop(container_id, None)

    def keep_only(self, container_ids: set[str]) -> None:
        for gone in self._facts.keys() - container_ids:
            del self._facts[gone]
        for gone in self._forgotten.keys() - container_ids:
            del self._forgotten[gone]


def facts_from_inspect(data: JSON) -> Facts:
    state = data["State"]
    running = state.get("Status") in ("running", "paused", "restarting")
    return Facts(
        status=state.get("Status", ""),
        exit_code=None if running or state.get("Status") == "created" else state.get("ExitCode"),
        started_at=parse_time(state.get("StartedAt")),
        finished_at=None if running else parse_time(state.get("FinishedAt")),
        oom_killed=bool(state.get("OOMKilled")),
        error=state.get("Error") or "",
        health=(state.get("Health") or {}).get("Status") or None,
    )


def container_state(entry: JSON, facts: Facts | None) -> ContainerState | None:
    """A list entry (+ inspect facts) as our ContainerState; None if it lacks our labels.

    Facts whose status differs from the entry's come from an inspect made after the list, or
    from a `die` event, so they are newer: the engine sends `die` before its list stops saying
    "running"."""
    tags = entry.get("Labels") or {}
    slot = decimal(tags.get(labels.LABEL_SLOT, ""))
    if labels.LABEL_STACK not in tags or labels.LABEL_SERVICE not in tags or slot is None or slot < 1:
        return None
    key = SlotKey(tags[labels.LABEL_STACK], tags[labels.LABEL_SERVICE], slot)
    created_ns = decimal(tags.get(labels.LABEL_CREATED_NS, ""))
    newer = facts is not None and facts.status != entry["State"]
    status = cast(EngineStatus, facts.status if newer and facts is not None else entry["State"])
    return ContainerState(
        id=entry["Id"],
        name=(entry.get("Names") or ["/"])[0].lstrip("/"),
        key=key,
        spec_hash=tags.get(labels.LABEL_SPEC_HASH, ""),
        task_id=tags.get(labels.LABEL_TASK_ID, ""),
        created_at=created_ns / 10**9 if created_ns is not None else float(entry.get("Created", 0)),
        status=status,
        health=facts.health if newer and facts is not None else health_from_status(entry.get("Status", "")),
        exit_code=facts.exit_code if facts else None,
        started_at=facts.started_at if facts else None,
        finished_at=facts.finished_at if facts else None,
        oom_killed=facts.oom_killed if facts else False,
        error=facts.error if facts else "",
        ports=published_ports(entry.get("Ports") or []) if status in ("running", "paused") else {},
        address=first_address(entry) if status in ("running", "paused") else None,
        standby=tags.get(labels.LABEL_STANDBY) == "1",
    )


def first_address(entry: JSON) -> str | None:
    """The replica's IPv4 address on its first network (where the ingress reaches it)."""
    networks = (entry.get("NetworkSettings") or {}).get("Networks") or {}
    for name in sorted(networks):
        address = (networks[name] or {}).get("IPAddress")
        if address:
            return str(address)
    return None


def health_from_status(status: str) -> Health | None:
    """The list's status text carries health: "Up 3 seconds (unhealthy)"."""
    match = _HEALTH_IN_STATUS.search(status)
    if match is None:
        return None
    word = match.group(1)
    return "starting" if word == "health: starting" else cast(Health, word)


def published_ports(ports: list[JSON]) -> dict[str, int]:
    """"80/tcp" -> host port; the first binding wins when a port is bound on IPv4 and IPv6."""
    result: dict[str, int] = {}
    for port in ports:
        if port.get("PublicPort"):
            result.setdefault(f"{port['PrivatePort']}/{port.get('Type', 'tcp')}", int(port["PublicPort"]))
    return result


def parse_time(value: str | None) -> float | None:
    """RFC 3339 with nanoseconds → epoch seconds; the engine's zero time means "never"."""
    if not value or value.startswith("0001-01-01"):
        return None
    # Python parses at most microseconds: cut the fraction to 6 digits.
    value = re.sub(r"(\.\d{6})\d+", r"\1", value).replace("Z", "+00:00")
    return datetime.fromisoformat(value).timestamp()
