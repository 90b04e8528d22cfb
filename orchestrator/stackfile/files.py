"""Files a stack names: env_file and `.env` (read here), secret and config `file:` (bind-mounted
into containers by the engine). The daemon runs as root and reads them for an API caller, so:

- only regular files: a directory, FIFO, socket or device is refused (a FIFO would block the
  read forever, /dev/zero would never end);
- never under /proc, /sys or /dev, after following symlinks: /proc/self/environ is the daemon's
  own environment (its token), and those trees are live kernel data, not files;
- at most `Limits.max_file_size` bytes: a read stops one byte past the limit;
- an error never quotes what the file holds.

Nothing is opened for reading before it passed the checks (opening some devices acts: a
watchdog starts counting). The file is first opened with O_PATH, which only names it; the checks
look at what that names (fstat, and /proc/self/fd for its real path), and the read reopens that
same file, so a path swapped for a symlink between the check and the read cannot slip through.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from orchestrator.settings import env_name

#: Kernel trees no stack may take a file from.
KERNEL_TREES = ("/proc", "/sys", "/dev")


def too_big(path: Path, max_size: int) -> str:
    """The refusal of a file over the size limit: the limit, and the setting that raises it."""
    return f"{path} is larger than {max_size} bytes ({env_name('max_file_size')} raises the limit)"


class NamedFileError(Exception):
    """A file a stack names cannot be used; the message is for the user and holds no content."""


class MissingFile(NamedFileError):
    """The file does not exist (an env_file with `required: false` may be missing)."""


def read_named_file(path: Path, max_size: int) -> str:
    """The text of a file a stack names (UTF-8), checked as above."""
    handle = _open_checked(path, max_size)
    try:
        fd = _reopen(handle, path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    finally:
        os.close(handle)
    try:
        data = _read_at_most(fd, max_size + 1)
    finally:
        os.close(fd)
    if len(data) > max_size:  # the size fstat gave is not the last word (a growing file)
        raise NamedFileError(too_big(path, max_size))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise NamedFileError(f"{path} is not UTF-8 text") from None


def check_mountable_file(path: Path, max_size: int) -> None:
    """A secret's or config's `file:`, which the engine bind-mounts: the same checks, no read."""
    os.close(_open_checked(path, max_size))


def in_kernel_tree(path: str) -> bool:
    return any(path == tree or path.startswith(tree + "/") for tree in KERNEL_TREES)


def _open_checked(path: Path, max_size: int) -> int:
    """A descriptor that names `path` (O_PATH: nothing is really opened) once it passed the checks."""
    try:
        fd = os.open(path, _NAME_ONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise MissingFile(f"file {path} does not exist") from None
    except OSError as exc:
        raise NamedFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NamedFileError(f"{path} is not a regular file ({_kind(info.st_mode)})")
        if in_kernel_tree(_opened_path(fd, path)):
            raise NamedFileError(f"{path} is under {', '.join(KERNEL_TREES)}: files there are never read")
        if info.st_size > max_size:
            raise NamedFileError(too_big(path, max_size))
    except BaseException:
        os.close(fd)
        raise
    return fd


#: Linux's O_PATH; elsewhere a non-blocking read-only open (a FIFO must not block it).
_NAME_ONLY = getattr(os, "O_PATH", os.O_RDONLY | os.O_NONBLOCK)


def _reopen(handle: int, path: Path, flags: int) -> int:
    """Open for reading the very file `handle` names."""
    try:
        return os.open(f"/proc/self/fd/{handle}", flags)
    except FileNotFoundError:  # no /proc: the path again
        return os.open(path, flags)
    except OSError as exc:
        raise NamedFileError(f"cannot read {path}: {exc.strerror or exc}") from None


def _opened_path(fd: int, path: Path) -> str:
    """Where the open file really is: the kernel's answer, else the path with symlinks resolved."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)


def _read_at_most(fd: int, count: int) -> bytes:
    chunks, total = [], 0
    while total < count:
        chunk = os.read(fd, min(count - total, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a file"
