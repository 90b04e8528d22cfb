"""Reads the files of a stack's secrets and configs for the conversion to Swarm, bounded.

Swarm holds an object's data in its Raft store, below a limit per kind (objects.MAX_DATA): a
file over it is refused here, naming the key, before anything is read whole or sent. A file that
cannot be read is the user's mistake too (UserError), never a stack trace.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.errors import UserError
from orchestrator.model.spec import StackSpec
from orchestrator.swarm.objects import MAX_DATA, Kind


def read_file_data(stack: StackSpec) -> dict[str, bytes]:
    """Path → content of every file a non-external secret or config of `stack` comes from."""
    data: dict[str, bytes] = {}
    kinds: tuple[Kind, ...] = ("secrets", "configs")
    for kind in kinds:
        for name, spec in getattr(stack, kind).items():
            if spec.external or spec.file is None or spec.file in data:
                continue
            data[spec.file] = _read(Path(spec.file), MAX_DATA[kind], f"{kind}.{name}.file")
    return data


def _read(path: Path, limit: int, key: str) -> bytes:
    try:
        with path.open("rb") as file:
            content = file.read(limit)
    except OSError as exc:
        raise UserError(f"{key}: cannot read {path}: {exc.strerror or exc}") from exc
    if len(content) >= limit:
        raise UserError(f"{key}: {path} is too large for Swarm (it takes less than {limit} bytes)")
    return content
