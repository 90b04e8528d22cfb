"""The one atomic file write: a crash leaves the old file or the new one, never half of one.

Written whole under a temporary name in the same directory, flushed and fsynced, then renamed
into place (or linked, when an existing file must win), then the directory is fsynced so that
the rename itself survives a power cut. Blocking: call it from a thread when on the event loop.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: Path, payload: bytes, *, replace: bool = True) -> None:
    """Write `payload` to `path` atomically (mode 0600, as mkstemp makes it). With
    `replace=False` an existing file is kept and FileExistsError raised: of two writers racing
    to create it, the first one wins whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # unlike rename, never replaces an existing file
    finally:
        Path(tmp).unlink(missing_ok=True)
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Makes a rename in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["atomic_write_bytes", "fsync_directory"]
