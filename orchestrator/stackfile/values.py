"""Strings the engine refuses, refused at load time instead: each rule takes the text a stack file
gives and returns it (normalised where the engine normalises) or raises ValueError with a message
for the user. Without these a bad value is accepted, stored, and then fails every container
creation or start (a rejected task, retried) — or, for a name like `../../etc`, reaches the engine
as a path.

The rules follow what engine 20.10 and runc accept (checked against the engine where it answers
at creation, from their documented formats where only the start fails): docs/stackfile.md lists
them. NUL characters are refused everywhere (interpolate.py): the engine's strings are C strings.
"""

from __future__ import annotations

import ipaddress
import re
import signal

from orchestrator.model.ranges import MAX_HOSTNAME
from orchestrator.stackfile.problems import quote

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def plain(text: str, what: str = "value") -> str:
    """No control characters (newline, tab, ...): the engine writes it into a file or a line."""
    if _CONTROL.search(text):
        raise ValueError(f"{what} {quote(text)} must not contain control characters such as a newline")
    return text


# --------------------------------------------------------------------------- names

#: Volume and network names (and our secret/config file names): what the engine accepts.
_ENGINE_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}")
_HOSTNAME = re.compile(r"[a-zA-Z0-9_]([a-zA-Z0-9_.-]*[a-zA-Z0-9_])?")


def engine_name(text: str) -> str:
    if not _ENGINE_NAME.fullmatch(text):
        raise ValueError(
            f"{quote(text)} is not a name the engine accepts: 1-255 characters a-z, A-Z, 0-9, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return text


def hostname(text: str) -> str:
    if len(text) > MAX_HOSTNAME or not _HOSTNAME.fullmatch(text):
        raise ValueError(
            f"invalid hostname {quote(text)}: 1-{MAX_HOSTNAME} characters a-z, A-Z, 0-9, '-', '_' or '.', "
            "not starting or ending with '-' or '.'"
        )
    return text


def env_name(text: str) -> str:
    """An environment variable's name: not empty, no '=' (the engine splits `NAME=value` at it)."""
    if not text or "=" in text:
        raise ValueError(f"invalid variable name {quote(text)}: it must not be empty or contain '='")
    return plain(text, "variable name")


def label_key(text: str) -> str:
    if not text:
        raise ValueError("a label key must not be empty")
    return plain(text, "label key")


# --------------------------------------------------------------------------- addresses


def ip_address(text: str) -> str:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{quote(text)} is not an IP address") from None
    return text


def subnet(text: str) -> str:
    try:
        ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{quote(text)} is not a subnet like 10.0.0.0/24") from None
    return text.strip()


def extra_hosts(entry: str) -> list[str]:
    """`host=ip`, `host:ip` or `host=ip1,ip2` (compose-go's forms) -> the engine's `host:ip`s."""
    host, sep, addresses = entry.partition("=") if "=" in entry else entry.partition(":")
    if not sep or not host or not addresses:
        raise ValueError(f"{quote(entry)} must be 'host=ip' or 'host:ip'")
    return [extra_host(f"{host}={address}") for address in addresses.split(",")]


def extra_host(entry: str) -> str:
    """`host:ip` or `host=ip` (compose's two forms; an IPv6 address may be in brackets) -> the
    engine's `host:ip`. `host-gateway` is the engine's name for the host's address."""
    host, sep, address = entry.partition("=") if "=" in entry else entry.partition(":")
    if not sep or not host or not address:
        raise ValueError(f"{quote(entry)} must be 'host:ip' or 'host=ip'")
    if ":" in host:
        raise ValueError(f"{quote(entry)}: the host name {quote(host)} must not contain ':'")
    plain(host, "host name")
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    if address != "host-gateway":
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ValueError(f"{quote(entry)}: {quote(address)} is not an IP address (or host-gateway)") from None
    return f"{host}:{address}"


# --------------------------------------------------------------------------- kernel names

#: Every Linux capability (capability(7)), without the CAP_ prefix.
CAPABILITIES = frozenset(
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE "
    "NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO "
    "SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME "
    "SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG "
    "WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE".split()
)


def capability(text: str) -> str:
    """`sys_admin`, `CAP_SYS_ADMIN` or `ALL` -> `SYS_ADMIN` / `ALL` (the engine's spelling rules)."""
    name = text.strip().upper().removeprefix("CAP_")
    if name != "ALL" and name not in CAPABILITIES:
        raise ValueError(f"unknown capability {quote(text)} (see capabilities(7), e.g. NET_ADMIN, or ALL)")
    return text


#: go-units' ulimit names, as the engine reads them.
ULIMITS = frozenset(
    "as core cpu data fsize locks memlock msgqueue nice nofile nproc rss rtprio rttime sigpending stack".split()
)


def ulimit_name(text: str) -> str:
    if text not in ULIMITS:
        raise ValueError(f"unknown ulimit {quote(text)} (one of {', '.join(sorted(ULIMITS))})")
    return text


#: Sysctls a container may set (its own namespaces), as runc validates them.
_SYSCTL_NAMES = frozenset(
    "kernel.msgmax kernel.msgmnb kernel.msgmni kernel.sem kernel.shmall kernel.shmmax kernel.shmmni "
    "kernel.shm_rmid_forced kernel.domainname".split()
)
_SYSCTL_PREFIXES = ("net.", "fs.mqueue.")


def sysctl_name(text: str) -> str:
    if text in _SYSCTL_NAMES or (text.startswith(_SYSCTL_PREFIXES) and not _CONTROL.search(text)):
        return text
    raise ValueError(
        f"sysctl {quote(text)} is not namespaced, so a container cannot set it "
        "(allowed: net.*, fs.mqueue.*, kernel.msg*, kernel.sem, kernel.shm*, kernel.domainname)"
    )


_RT_SIGNAL = re.compile(r"(?:SIG)?RTM(?:IN\+|AX-)(\d{1,2})", re.ASCII)


def signal_name(text: str) -> str:
    """`SIGTERM`, `TERM`, `15`, `SIGRTMIN+3`: what the engine's signal parser takes."""
    name = text.strip().upper()
    if name.isascii() and name.isdigit():
        if 1 <= int(name) <= 64:
            return text
    elif (name if name.startswith("SIG") else f"SIG{name}") in signal.Signals.__members__:
        return text
    elif (match := _RT_SIGNAL.fullmatch(name)) and int(match.group(1)) <= 30:
        return text
    raise ValueError(f"unknown signal {quote(text)} (e.g. SIGTERM, SIGINT, 15)")


# --------------------------------------------------------------------------- tmpfs and images

_TMPFS_SIZE = re.compile(r"\d{1,19}[kmgtpeKMGTPE]?|\d{1,3}%", re.ASCII)  # the kernel's memparse suffixes
_TMPFS_MODE = re.compile(r"0?[0-7]{1,4}")
_TMPFS_ID = re.compile(r"\d{1,10}", re.ASCII)
_TMPFS_OPTION = re.compile(r"[a-z_]+(=[a-zA-Z0-9_.:/+-]*)?")


def tmpfs_entry(entry: str) -> str:
    """`/path[:options]` of a service's `tmpfs:` list; size/mode/uid/gid are checked, other
    mount options need only look like one (the kernel knows more than we should list)."""
    path, _colon, options = entry.partition(":")
    if not path.startswith("/"):
        raise ValueError(f"tmpfs path {quote(path)} must be absolute")
    plain(path, "tmpfs path")
    for option in filter(None, options.split(",")):
        name, _eq, value = option.partition("=")
        rules = {"size": _TMPFS_SIZE, "mode": _TMPFS_MODE, "uid": _TMPFS_ID, "gid": _TMPFS_ID}
        rule = rules.get(name, _TMPFS_OPTION)
        if not rule.fullmatch(value if name in rules else option):
            raise ValueError(f"invalid tmpfs option {quote(option)} in {quote(entry)}")
    return entry


# distribution's reference grammar: [domain[:port]/]path[/path...][:tag][@digest]
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::\d+)?"
_REFERENCE = re.compile(
    rf"(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH_PART}(?:/{_PATH_PART})*)"
    r"(?::[\w][\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?",
    re.ASCII,
)


def image_reference(text: str) -> str:
    """An image reference the engine can parse: lowercase repository, tag, digest, optional registry."""
    match = _REFERENCE.fullmatch(text)
    name_length = len(match.group("domain") or "") + len(match.group("path")) if match else 0
    if match is None or name_length > 255:
        raise ValueError(
            f"invalid image reference {quote(text)}: a lowercase name like busybox, "
            "registry.example.com:5000/team/app:1.2, optionally with @sha256:<digest>"
        )
    return text
