"""A `build:` context directory -> the tar archive the engine's builder reads, as the docker CLI
sends it: `.dockerignore` honoured (engine/dockerignore.py), the Dockerfile and .dockerignore
always sent, entries owned by root, symlinks kept as links, directories walked in name order.

The archive is written to a temporary file, not memory, by a thread (the work is file I/O), and
the upload streams from that file. It is bounded: at most `max_files` entries and `max_bytes`
of archive (ContextLimits, from the settings max_build_context_files/bytes); a context that is
no directory, or is a system directory (`/`, /proc, /sys, /dev, or inside the last three), is
refused before anything is read; the walk looks at ten times `max_files` entries at most, the
excluded ones included. A refusal is ContextRefused with the reason; images.py turns
it into ImageUnavailable, so the replicas show as `rejected` with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import stat
import tarfile
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from orchestrator.engine.dockerignore import IgnorePatterns, MatchState, PatternError, read_dockerignore

#: Never a build context: the whole machine, or the kernel's and devices' pseudo-files.
SYSTEM_ROOTS = (Path("/"), Path("/proc"), Path("/sys"), Path("/dev"))
#: A .dockerignore larger than this is refused (it is a list of patterns).
MAX_DOCKERIGNORE_BYTES = 1 << 20
_BLOCK = tarfile.BLOCKSIZE


class ContextRefused(Exception):
    """The context cannot be sent; the message says why."""


@dataclass(frozen=True, slots=True)
class ContextLimits:
    max_bytes: int = 512 * 1024 * 1024
    max_files: int = 100_000


@contextlib.asynccontextmanager
async def context_archive(directory: Path, dockerfile: str | None, limits: ContextLimits) -> AsyncIterator[BinaryIO]:
    """The context's archive, in a temporary file opened at its start, removed afterwards."""
    stop = threading.Event()
    with tempfile.TemporaryFile(prefix="orchestrator-build-") as out:
        try:
            await asyncio.to_thread(write_archive, directory, dockerfile, limits, out, stop)
        finally:
            stop.set()  # a cancelled caller does not leave the thread writing
        out.seek(0)
        yield out


def write_archive(
    directory: Path, dockerfile: str | None, limits: ContextLimits, out: BinaryIO, stop: threading.Event | None = None
) -> int:
    """Write the context's tar to `out`; returns the number of entries. Raises ContextRefused."""
    root = check_context(directory)
    ignore = _ignore_patterns(root, dockerfile)
    entries = 0
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for relative, full in _walk(root, ignore, limits.max_files * 10):
            if stop is not None and stop.is_set():
                raise ContextRefused("archiving was cancelled")
            entries += 1
            if entries > limits.max_files:
                raise ContextRefused(
                    f"build context {root} has more than {limits.max_files} files and directories "
                    "after .dockerignore (setting max_build_context_files)")
            _add(archive, full, relative, limits)
    return entries


def check_context(directory: Path) -> Path:
    """The context's real path, or ContextRefused."""
    try:
        root = directory.resolve(strict=True)
    except (OSError, RuntimeError):
        raise ContextRefused(f"build context {directory} does not exist") from None
    if not root.is_dir():
        raise ContextRefused(f"build context {directory} is not a directory")
    if root == SYSTEM_ROOTS[0] or any(root == r or r in root.parents for r in SYSTEM_ROOTS[1:]):
        raise ContextRefused(f"build context {directory} is a system directory: refused")
    return root


def _ignore_patterns(root: Path, dockerfile: str | None) -> IgnorePatterns:
    """.dockerignore's patterns, plus exceptions for the files the builder always needs."""
    path = root / ".dockerignore"
    patterns: list[str] = []
    if path.is_file():
        if path.stat().st_size > MAX_DOCKERIGNORE_BYTES:
            raise ContextRefused(f"{path} is larger than {MAX_DOCKERIGNORE_BYTES >> 20} MiB")
        try:
            patterns = read_dockerignore(path.read_text(encoding="utf-8", errors="replace"))
        except OSError as exc:
            raise ContextRefused(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        ignore = IgnorePatterns(patterns)
        # As the CLI does: excluded or not, these two go to the builder, which drops them.
        for needed in (".dockerignore", posixpath.normpath(dockerfile or "Dockerfile")):
            if ignore.excluded(needed)[0]:
                patterns.append("!" + needed)
        return IgnorePatterns(patterns)
    except PatternError as exc:
        raise ContextRefused(f"{path}: {exc}") from None


def _walk(root: Path, ignore: IgnorePatterns, look_limit: int) -> Iterator[tuple[str, str]]:
    """(relative path, full path) of every entry to send, depth first in name order (as Go's
    WalkDir); an excluded directory is not entered unless an exception may re-include something
    in it. Excluded entries cost a look too: at most `look_limit` in all."""
    looked_at = 0

    def listing(relative_dir: str) -> Iterator[tuple[str, bool]]:
        nonlocal looked_at
        full_dir = os.path.join(root, relative_dir)
        names = []
        try:
            with os.scandir(full_dir) as entries:
                for entry in entries:
                    looked_at += 1
                    if looked_at > look_limit:
                        raise ContextRefused(
                            f"build context {root} holds more than {look_limit} entries, excluded "
                            "ones included (ten times the setting max_build_context_files)")
                    names.append((entry.name, entry.is_dir(follow_symlinks=False)))
        except OSError as exc:
            raise ContextRefused(f"cannot read {full_dir}: {exc.strerror or exc}") from None
        return iter(sorted(names))

    # One frame per open directory: its path, its match results for its children, its names.
    stack: list[tuple[str, MatchState | None, Iterator[tuple[str, bool]]]] = [("", None, listing(""))]
    while stack:
        relative_dir, state, names = stack[-1]
        entry = next(names, None)
        if entry is None:
            stack.pop()
            continue
        name, is_dir = entry
        relative = f"{relative_dir}/{name}" if relative_dir else name
        skip, own_state = ignore.excluded(relative, state)
        if not skip:
            yield relative, os.path.join(root, relative)
        if is_dir and (not skip or ignore.may_reinclude_under(relative)):
            stack.append((relative, own_state, listing(relative)))


def _add(archive: tarfile.TarFile, full: str, relative: str, limits: ContextLimits) -> None:
    try:
        info = archive.gettarinfo(full, arcname=relative)
    except OSError as exc:
        raise ContextRefused(f"cannot read {full}: {exc.strerror or exc}") from None
    if info is None:  # a socket: the CLI skips them too
        return
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    size = info.size if info.isreg() else 0
    after = archive.offset + _BLOCK * 3 + _padded(size)  # header (+ a PAX header), data
    if after > limits.max_bytes:
        raise ContextRefused(
            f"build context is larger than {limits.max_bytes} bytes after .dockerignore (at "
            f"{relative}; setting max_build_context_bytes)")
    if not info.isreg():
        archive.addfile(info)
        return
    with _open_regular(full) as data:
        try:
            archive.addfile(info, data)
        except OSError as exc:  # shrank while we read it
            raise ContextRefused(f"cannot read {full}: {exc}") from None


@contextlib.contextmanager
def _open_regular(full: str) -> Iterator[BinaryIO]:
    """The file, unless it was swapped for a link or a FIFO since it was listed (a FIFO would
    block the read forever)."""
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise ContextRefused(f"cannot read {full}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as data:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ContextRefused(f"{full} changed while the context was archived")
        yield data


def _padded(size: int) -> int:
    return -(-size // _BLOCK) * _BLOCK
