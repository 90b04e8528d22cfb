"""Who may drive the daemon, and the token that says so (docs/api.md, "Access").

The API is root-equivalent: it starts any container, with any bind mount. So:

- the unix socket (`<state_dir>/orchestrator.sock`, 0600) is the local path: whoever can open it
  owns the daemon's files already, and needs no token;
- the TCP listener always requires `Authorization: Bearer <token>`, loopback included: any local
  user can connect to 127.0.0.1. The token is ORCHESTRATOR_TOKEN, or one the daemon generates at
  its first start into `<state_dir>/token` (0600, in a 0700 state dir) and keeps across restarts;
- the CLI finds the token the same way: ORCHESTRATOR_TOKEN, else that file when this user can
  read it. The file's token only ever goes to a loopback address (it belongs to the local daemon).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from pathlib import Path
from urllib.parse import urlsplit

import structlog

from orchestrator.errors import UserError
from orchestrator.settings import Settings
from orchestrator.support.files import atomic_write_bytes

log = structlog.stdlib.get_logger()

TOKEN_FILE = "token"
MAX_TOKEN_LENGTH = 4096
#: Visible ASCII: a header value every client and proxy passes unchanged, compared as bytes.
_TOKEN = re.compile(r"[\x21-\x7e]{1,%d}" % MAX_TOKEN_LENGTH)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def check_token(token: str, where: str) -> str:
    if not _TOKEN.fullmatch(token):
        raise UserError(f"{where}: a token is 1-{MAX_TOKEN_LENGTH} visible ASCII characters "
                        "(no spaces, no control or non-ASCII characters)")
    return token


def token_path(settings: Settings) -> Path:
    return Path(settings.state_dir) / TOKEN_FILE


def daemon_token(settings: Settings) -> str:
    """ORCHESTRATOR_TOKEN, else the state dir's token file, created at the first start."""
    if settings.token:
        return check_token(settings.token, "ORCHESTRATOR_TOKEN")
    path = token_path(settings)
    try:
        _private_dir(path.parent)
        try:
            return _read_token_file(path)
        except FileNotFoundError:
            return _create_token_file(path)
    except OSError as exc:
        raise UserError(f"cannot read or create the API token {path}: {exc.strerror or exc}") from None


def _private_dir(path: Path) -> None:
    """The state dir holds the token and the socket: 0700 when it is ours to set."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    # Never a shared directory someone pointed us at (/tmp is sticky and not ours to close).
    if info.st_uid == os.geteuid() and not info.st_mode & stat.S_ISVTX and info.st_mode & 0o077:
        os.chmod(path, 0o700)
        log.info("state_dir_permissions_tightened", path=str(path), mode="0700")


def _read_token_file(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"the API token {path} is not a regular file")
        if info.st_mode & 0o077:
            raise UserError(f"the API token {path} is readable by other users "
                            f"(mode {stat.S_IMODE(info.st_mode):04o}): delete it to get a new one")
        raw = os.read(fd, MAX_TOKEN_LENGTH + 1)
    finally:
        os.close(fd)
    try:
        return check_token(raw.decode("ascii").strip(), str(path))
    except UnicodeDecodeError:
        raise UserError(f"{path}: the API token is not ASCII text; delete it to get a new one") from None


def _create_token_file(path: Path) -> str:
    """Written whole under a temporary name, then linked in place: a crash leaves no half
    token, and a second daemon starting at the same moment gets the first one's."""
    token = secrets.token_urlsafe(32)
    try:
        atomic_write_bytes(path, (token + "\n").encode("ascii"), replace=False)  # mode 0600
    except FileExistsError:
        return _read_token_file(path)
    log.info("api_token_created", path=str(path))
    return token


def client_host(settings: Settings, explicit: bool) -> str:
    """Where the CLI goes: the host it was given, else the daemon's unix socket when this user
    can open it (no token needed, and no other user can stand in for the daemon there, as one
    could on a loopback port while the daemon is down), else `http://<listen>`."""
    if not explicit and _can_open_socket(Path(settings.socket)):
        return f"unix://{settings.socket}"
    return settings.host


def _can_open_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.stat().st_mode) and os.access(path, os.R_OK | os.W_OK)
    except OSError:
        return False


def client_token(settings: Settings, host: str) -> str:
    """The token the CLI sends to `host`: ORCHESTRATOR_TOKEN, else the token file when this user
    can read it and the host is a loopback address ("" when neither)."""
    if settings.token or not is_loopback_url(host):
        return settings.token
    with contextlib.suppress(OSError, UnicodeDecodeError):
        with open(token_path(settings), "rb") as handle:
            text = handle.read(MAX_TOKEN_LENGTH + 1).decode("ascii").strip()
        if _TOKEN.fullmatch(text):
            return text
    return ""


def is_loopback_url(url: str) -> bool:
    if "://" not in url:
        url = "http://" + url
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme in ("http", "tcp") and host in LOOPBACK_HOSTS


def unauthorized_hint(settings: Settings) -> str:
    """What the CLI prints under a 401: the two ways in."""
    return (f"the daemon wants its API token: set ORCHESTRATOR_TOKEN to it (a daemon that was "
            f"given none keeps the one it made in its state dir, here {token_path(settings)}), "
            f"or, as the daemon's user, use its unix socket: --host unix://{settings.socket}")
