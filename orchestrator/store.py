"""Desired state on disk: what the daemon must keep running, surviving its own restarts.

Layout of the state directory:
    stacks/<name>.json   one deployed stack: its StackSpec, scale overrides, generation
    restarts.json        the restart book (restart history must survive a daemon restart)
    files/<stack>/       secret/config contents written for bind mounts
Every write is atomic (temp file, fsync, rename, fsync of the directory): a crash leaves the old
or the new file, never half of one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dacite

from orchestrator.model import StackSpec, UpdateStatus

_DACITE = dacite.Config(cast=[tuple], strict=True)


@dataclass(frozen=True, slots=True)
class StackRecord:
    spec: StackSpec
    #: Replica counts set by `scale` since the last deploy, by service.
    scale: Mapping[str, int] = field(default_factory=dict)
    #: Bumped by every deploy and scale: "until the next deploy/scale" for given-up slots.
    generation: int = 1
    deployed_at: float = 0.0
    #: Set while `rm` runs: a daemon that died half-way finishes the removal when it starts.
    removing: bool = False
    #: Each service's rolling update (or rollback), the last one it had (orchestrator/updates.py).
    updates: Mapping[str, UpdateStatus] = field(default_factory=dict)

    def replicas(self) -> dict[str, int]:
        """Effective replica count per service (`mode: global` is one replica on one engine)."""
        return {
            name: 1 if svc.mode == "global" else self.scale.get(name, svc.replicas)
            for name, svc in self.spec.services.items()
        }

    def to_plain(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_plain(cls, data: Mapping[str, Any]) -> StackRecord:
        return dacite.from_dict(cls, dict(data), config=_DACITE)


class Store:
    def __init__(self, state_dir: str | Path) -> None:
        self.root = Path(state_dir)
        self._stacks_dir = self.root / "stacks"
        self._stacks_dir.mkdir(parents=True, exist_ok=True)

    # stacks ------------------------------------------------------------------------------
    def load_stacks(self) -> dict[str, StackRecord]:
        records = {}
        for path in sorted(self._stacks_dir.glob("*.json")):
            record = StackRecord.from_plain(json.loads(path.read_text()))
            records[record.spec.name] = record
        return records

    def save_stack(self, record: StackRecord) -> None:
        atomic_write_json(self._stacks_dir / f"{record.spec.name}.json", record.to_plain())

    def delete_stack(self, name: str) -> None:
        (self._stacks_dir / f"{name}.json").unlink(missing_ok=True)

    # restart book and other small documents ----------------------------------------------
    def load_document(self, name: str) -> Any | None:
        path = self.root / name
        if not path.exists():
            return None
        return json.loads(path.read_text())

    def save_document(self, name: str, data: Any) -> None:
        atomic_write_json(self.root / name, data)

    def files_dir(self, stack: str) -> Path:
        return self.root / "files" / stack


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, json.dumps(data, sort_keys=True, indent=1).encode())


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
