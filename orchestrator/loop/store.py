"""Desired state on disk: what the daemon must keep running, surviving its own restarts.

Layout of the state directory:
    stacks/<name>.json   one deployed stack: its StackSpec, scale overrides, generation
    restarts.json        the restart book (restart history must survive a daemon restart)
    tasks.json           the task tracker (published states, marks "stopped on purpose")
    *.json.journal       what changed in those two since their last snapshot (journal.py)
    files/<stack>/       secret/config contents written for bind mounts
Every write is atomic (temp file, fsync, rename, fsync of the directory): a crash leaves the old
or the new file, never half of one.

A file that cannot be read or parsed anyway (a disk error, a hand edit, a record of a newer
daemon) never stops the daemon: it is moved aside as `<name>.corrupt-<UTC time>`, logged once at
error level with its path and why, and the daemon starts without it. A stack record set aside
makes its stack unknown: its containers are then left alone, as another daemon's would be.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dacite
import structlog

from orchestrator.model.plan import UpdateStatus
from orchestrator.support.files import atomic_write_bytes
from orchestrator.model.spec import StackSpec

log = structlog.stdlib.get_logger()

_DACITE = dacite.Config(cast=[tuple], strict=True)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StackRecord:
    spec: StackSpec
    #: Replica counts set by `scale` since the last deploy, by service.
    scale: Mapping[str, int] = field(default_factory=dict)
    #: Bumped by every deploy and scale: "until the next deploy/scale" for given-up slots.
    generation: int = 1
    deployed_at: float = 0.0
    #: Set by `rm` before anything is removed; the record is deleted when all is gone, so a
    #: daemon that died half-way finishes the removal when it starts (orchestrator/loop/removal.py).
    removing: bool = False
    #: `rm --volumes`: the stack's named volumes go too.
    remove_volumes: bool = False
    #: Each service's rolling update (or rollback), the last one it had (orchestrator/planning/updates.py).
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


#: No state file the daemon writes comes near this (a stack record of 1,000 services is a few MB):
#: a bigger one is damage, and reading it whole could exhaust the daemon's memory at start.
MAX_STATE_FILE_BYTES = 256 << 20


class Store:
    def __init__(self, state_dir: str | Path) -> None:
        self.root = Path(state_dir)
        self._stacks_dir = self.root / "stacks"
        self._stacks_dir.mkdir(parents=True, exist_ok=True)

    # stacks ------------------------------------------------------------------------------
    def load_stacks(
        self, refuse: Callable[[StackRecord], str | None] = lambda record: None
    ) -> dict[str, StackRecord]:
        """Every readable stack record; the others are set aside (see the module docstring),
        as is one `refuse` gives a reason against (over a limit the daemon now has)."""
        records = {}
        for path in sorted(self._stacks_dir.glob("*.json")):
            record = self._read(path, StackRecord.from_plain)
            if record is None:
                continue
            reason = (f"it holds stack {record.spec.name!r}, not {path.stem!r}"
                      if record.spec.name != path.stem else refuse(record))
            if reason is not None:
                set_aside(path, reason)
            else:
                records[record.spec.name] = record
        return records

    def save_stack(self, record: StackRecord) -> None:
        atomic_write_json(self._stacks_dir / f"{record.spec.name}.json", record.to_plain())

    def delete_stack(self, name: str) -> None:
        (self._stacks_dir / f"{name}.json").unlink(missing_ok=True)

    # restart book and other small documents ----------------------------------------------
    def load_document(self, name: str, parse: Callable[[Any], T] = lambda data: data) -> T | None:
        """`parse` of the document's JSON; None when it does not exist or was set aside."""
        return self._read(self.root / name, parse)

    def _read(self, path: Path, parse: Callable[[Any], T]) -> T | None:
        try:
            with path.open("rb") as file:
                raw = file.read(MAX_STATE_FILE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            set_aside(path, f"cannot be read: {exc.strerror or type(exc).__name__}")
            return None
        if len(raw) > MAX_STATE_FILE_BYTES:
            set_aside(path, f"it is over {MAX_STATE_FILE_BYTES} bytes")
            return None
        try:
            return parse(json.loads(raw))
        # Whatever a damaged or foreign file makes the parser raise: the daemon must start.
        except Exception as exc:  # noqa: BLE001
            set_aside(path, _why_unparsable(exc))
            return None

    def save_document(self, name: str, data: Any) -> None:
        atomic_write_json(self.root / name, data)

    def files_dir(self, stack: str) -> Path:
        return self.root / "files" / stack


def set_aside(path: Path, reason: str) -> Path | None:
    """Move an unusable state file out of the way (kept for a post-mortem) and say so once."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for n in range(1, 100):
        if not target.exists():
            break
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    try:
        os.replace(path, target)
    except OSError as exc:
        log.error("state_file_unusable", path=str(path), reason=reason,
                  error=f"cannot move it aside: {exc.strerror or type(exc).__name__}")
        return None
    log.error("state_file_set_aside", path=str(path), moved_to=str(target), reason=reason)
    return target


def _why_unparsable(exc: Exception) -> str:
    """Where and how the file is wrong, never what it holds (a record carries environment
    values, and exception messages quote the values they choke on)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text at byte {exc.start}"
    field_path = getattr(exc, "field_path", None)  # dacite's errors name the field
    where = f" at {field_path}" if field_path else ""
    return f"not a valid document ({type(exc).__name__}{where})"


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, json.dumps(data, sort_keys=True, indent=1).encode())



