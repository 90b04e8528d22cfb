"""The stack files deployed through the daemon on Swarm, kept in Swarm itself (for `inspect`).

The daemon on the cluster (stacks/orchestrator-on-swarm.yml) may be started on another manager
at any time, with an empty volume: what it needs to find again must live where every manager
reads it. Swarm's Raft store is such a place, and a Swarm config is the object made for a small
document: each deploy through the daemon keeps the stack's record (the `StackRecord` the engine
backend keeps in its state directory) as the config `orchestrator-stack-<stack hash>-<content
hash>`, labelled with the stack's namespace (so `orchestrator rm` and `docker stack rm` remove it
with the stack) and `orchestrator.stack-record=<stack>`; the older ones are removed once it
exists. It has no `orchestrator.object` label, so it is never taken for a versioned secret or
config of the stack (objects.stale_objects).

A config is readable by whoever reaches the manager's API, as the services' own specs are;
secrets' contents (`environment:` secrets) are left out of the record. A record over Swarm's
config size is not kept (inspect then shows what the services say, as for a stack deployed by
`docker stack deploy`).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import dacite
import structlog

from orchestrator.errors import EngineError
from orchestrator.labels import LABEL_STACK, LABEL_SWARM_NAMESPACE
from orchestrator.loop.store import StackRecord
from orchestrator.engine.swarm import SwarmManager
from orchestrator.swarm.objects import MAX_DATA
from orchestrator.swarm.observed import parse_time

log = structlog.stdlib.get_logger()

LABEL_STACK_RECORD = "orchestrator.stack-record"


def record_config(record: StackRecord) -> dict[str, Any] | None:
    """The `POST /configs/create` body of a stack's record; None when it is over Swarm's size."""
    stack = record.spec.name
    secrets = {name: dataclasses.replace(secret, content=None) for name, secret in record.spec.secrets.items()}
    kept = dataclasses.replace(record, spec=dataclasses.replace(record.spec, secrets=secrets))
    data = json.dumps(kept.to_plain(), sort_keys=True, separators=(",", ":")).encode()
    if len(data) >= MAX_DATA["configs"]:
        return None
    name = f"orchestrator-stack-{_digest(stack.encode())}-{_digest(data)}"
    return {
        "Name": name,
        "Labels": {LABEL_SWARM_NAMESPACE: stack, LABEL_STACK: stack, LABEL_STACK_RECORD: stack},
        "Data": base64.b64encode(data).decode(),
    }


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def newest_records(listed: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, StackRecord]]:
    """Stack → (config id, record) of the newest readable record config of each stack."""
    newest: dict[str, tuple[float, str, StackRecord]] = {}
    for config in listed:
        spec = config.get("Spec") or {}
        stack = (spec.get("Labels") or {}).get(LABEL_STACK_RECORD)
        record = _record(spec.get("Data"))
        if not stack or record is None or record.spec.name != stack:
            continue
        created = parse_time(config.get("CreatedAt"))
        if stack not in newest or created > newest[stack][0]:
            newest[stack] = (created, config["ID"], record)
    return {stack: (config_id, record) for stack, (_, config_id, record) in newest.items()}


def _record(data: Any) -> StackRecord | None:
    if not isinstance(data, str):
        return None
    try:
        return StackRecord.from_plain(json.loads(base64.b64decode(data, validate=True)))
    except (ValueError, TypeError, dacite.DaciteError) as exc:  # damaged, or of another layout
        log.warning("swarm_stack_record_unreadable", error=type(exc).__name__)
        return None


class SwarmRecords:
    def __init__(self, manager: SwarmManager) -> None:
        self._m = manager

    async def load(self) -> dict[str, StackRecord]:
        listed = await self._m.listed("configs", {"label": [LABEL_STACK_RECORD]})
        return {stack: record for stack, (_, record) in newest_records(listed).items()}

    async def save(self, record: StackRecord) -> None:
        """Keep `record` as the stack's newest, then remove the older ones."""
        body = record_config(record)
        if body is None:
            log.warning("swarm_stack_record_too_large", stack=record.spec.name)
            return
        try:
            await self._m.create("configs", body)
        except EngineError as exc:
            if exc.status != 409:  # 409: this very content is kept already
                raise
        await self._remove_others(record.spec.name, keep=body["Name"])

    async def _remove_others(self, stack: str, keep: str) -> None:
        for config in await self._m.listed("configs", {"label": [f"{LABEL_STACK_RECORD}={stack}"]}):
            if (config.get("Spec") or {}).get("Name") != keep:
                await self._m.delete("configs", config["ID"])
