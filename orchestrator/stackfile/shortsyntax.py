"""The one-string forms of ports and volumes. Each parser raises ValueError for the user."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from orchestrator.model.spec import PortSpec
from orchestrator.stackfile import values
from orchestrator.stackfile.problems import quote

_PROTOCOLS = ("tcp", "udp", "sctp")
_RANGE = re.compile(r"(\d{1,5})(?:-(\d{1,5}))?", re.ASCII)


def parse_port_range(text: str) -> tuple[int, int]:
    match = _RANGE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"invalid port {quote(text)}")
    start = int(match.group(1))
    end = int(match.group(2)) if match.group(2) else start
    if not (0 < start <= end <= 65535):
        raise ValueError(f"invalid port range {quote(text)} (ports are 1-65535, start <= end)")
    return start, end


def parse_port(spec: Any) -> list[PortSpec]:
    """`[[IP:](HOST|RANGE):](PORT|RANGE)[/PROTOCOL]`; IPv6 hosts in brackets (`[::1]:80:80`)."""
    if isinstance(spec, bool) or not isinstance(spec, (str, int)):
        raise ValueError("a port must be a string like \"8080:80\" or a mapping")
    text = str(spec).strip()
    text, _slash, protocol = text.partition("/")
    protocol = protocol or "tcp"
    if protocol not in _PROTOCOLS:
        raise ValueError(f"invalid protocol {quote(protocol)} in port {quote(spec)} (tcp, udp or sctp)")
    host_ip, published, target = _split_port(text, spec)
    if host_ip is not None:
        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            raise ValueError(f"invalid port {quote(spec)}: {quote(host_ip)} is not an IP address") from None
    target_start, target_end = parse_port_range(target)
    if not published:
        return [PortSpec(target=t, protocol=protocol, host_ip=host_ip) for t in range(target_start, target_end + 1)]  # type: ignore[arg-type]
    pub_start, pub_end = parse_port_range(published)
    count = target_end - target_start + 1
    if count == 1:  # a host range for one port: the engine would take any free one; we take the first
        return [PortSpec(target=target_start, published=pub_start, protocol=protocol, host_ip=host_ip)]  # type: ignore[arg-type]
    if pub_end - pub_start + 1 != count:
        raise ValueError(
            f"port {quote(spec)}: the published range and the target range must have the same size"
        )
    return [
        PortSpec(target=target_start + i, published=pub_start + i, protocol=protocol, host_ip=host_ip)  # type: ignore[arg-type]
        for i in range(count)
    ]


def _split_port(text: str, spec: Any) -> tuple[str | None, str, str]:
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1 : close + 2] != ":":
            raise ValueError(f"invalid port {quote(spec)}: bad IPv6 address")
        host_ip = text[1:close]
        published, _colon, target = text[close + 2 :].rpartition(":")
        if not target:
            raise ValueError(f"invalid port {quote(spec)}")
        return host_ip, published, target
    parts = text.split(":")
    if len(parts) == 1:
        return None, "", parts[0]
    if len(parts) == 2:
        return None, parts[0], parts[1]
    # IP:HOST:PORT, where an unbracketed IPv6 address holds colons itself.
    return ":".join(parts[:-2]) or None, parts[-2], parts[-1]


def host_range_note(spec: Any) -> str | None:
    """For `8000-8010:80` (a host range for one container port), what the daemon does with it."""
    text = str(spec).strip().partition("/")[0]
    try:
        _host_ip, published, target = _split_port(text, spec)
    except ValueError:
        return None
    if "-" in published and "-" not in target:
        return range_note(published)
    return None


def range_note(published: str) -> str:
    first = published.split("-")[0]
    return (f"a published range ({published}) for one container port: port {first}, the first of the range,"
            " is published (the daemon's ingress listens on one port per service port)")


def port_merge_key(item: Any) -> Any:
    """Ports are unique by (ip, target, published, protocol) when files are merged."""
    if hasattr(item, "get"):
        return (item.get("host_ip"), item.get("target"), str(item.get("published")), item.get("protocol", "tcp"))
    ports = parse_port(item)
    first = ports[0]
    return (first.host_ip, first.target, str(first.published), first.protocol) if len(ports) == 1 else str(item)


# --------------------------------------------------------------------------- volumes

_ACCESS = {"rw", "ro"}
_SELINUX = {"z", "Z"}
_CONSISTENCY = {"cached", "delegated", "consistent"}
_PROPAGATION = {"shared", "rshared", "slave", "rslave", "private", "rprivate"}


@dataclass(frozen=True, slots=True)
class ShortVolume:
    type: str  # "volume" | "bind"
    source: str | None
    target: str
    read_only: bool = False
    propagation: str | None = None
    nocopy: bool = False
    #: Options that were valid but have no meaning here (z, Z, cached, ...).
    ignored: tuple[str, ...] = ()


def parse_volume(spec: Any) -> ShortVolume:
    """`[SOURCE:]TARGET[:OPTIONS]`, split as compose-go splits it: at each ':' except the one of
    a drive letter (`C:`). One field is an anonymous volume at that container path; a source
    starting with `.`, `/` or `~` is a bind mount, anything else names a volume. So `/data:ro`
    mounts /data at "ro" (refused: not an absolute path), as compose reads it."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("a volume must be a string like \"data:/var/lib/data\" or a mapping")
    values.plain(spec, "volume")
    fields = _volume_fields(spec)
    if "" in fields:
        raise ValueError(f"invalid volume {quote(spec)}: an empty part between ':'")
    if len(fields) > 3:
        raise ValueError(f"invalid volume {quote(spec)}: too many ':'")
    source, target = (None, fields[0]) if len(fields) == 1 else (fields[0], fields[1])
    for path in (source, target):
        if path is not None and is_windows_path(path):
            raise WindowsPath(f"volume {quote(spec)}: {windows_note(path)}")
    if not target.startswith("/"):
        if source is None:
            raise ValueError(
                f"invalid volume {quote(spec)}: one path is an anonymous volume at that container path, which must be"
                f" absolute; to mount the named volume {quote(target)} write {quote(target + ':/container/path')}"
            )
        hint = ""
        if len(fields) == 2 and set(target.split(",")) <= _ACCESS | _SELINUX | _CONSISTENCY | _PROPAGATION | {"nocopy"}:
            hint = f" (compose reads {quote(spec)} as {quote(source)} mounted at {quote(target)}; an anonymous volume with options needs the long syntax)"
        raise ValueError(f"invalid volume {quote(spec)}: the container path {quote(target)} must be absolute{hint}")
    read_only, propagation, nocopy, ignored = False, None, False, []
    for option in filter(None, (fields[2] if len(fields) == 3 else "").split(",")):
        if option in _ACCESS:
            read_only = option == "ro"
        elif option in _PROPAGATION:
            propagation = option
        elif option == "nocopy":
            nocopy = True
        elif option in _SELINUX | _CONSISTENCY:
            ignored.append(option)
        else:
            raise ValueError(f"invalid volume {quote(spec)}: unknown option {quote(option)} (ro, rw, nocopy, a propagation, z, Z)")
    kind = "bind" if source and source.startswith((".", "/", "~")) else "volume"
    return ShortVolume(kind, source, target, read_only, propagation, nocopy, tuple(ignored))


def _volume_fields(spec: str) -> list[str]:
    """`spec` split at ':', a single letter before ':' being a drive letter (compose-go's rule)."""
    fields, current = [], ""
    for char in spec:
        if char == ":" and not (len(current) == 1 and current.isalpha()):
            fields.append(current)
            current = ""
        else:
            current += char
    return [*fields, current]


_WINDOWS_PATH = re.compile(r"[A-Za-z]:(?:[\\/]|$)|\\\\")


class WindowsPath(ValueError):
    """A volume with a Windows path: valid compose, but no Linux engine can mount it."""


def is_windows_path(path: str) -> bool:
    """`C:\\data`, `c:/data`, `\\\\.\\pipe\\docker_engine`: paths of a Windows host or container."""
    return bool(_WINDOWS_PATH.match(path))


def windows_note(path: str) -> str:
    return (
        f"{quote(path)} is a Windows path (a drive letter or a named pipe), not supported on a Linux engine"
        + (" (a one-letter volume name before ':' reads as a drive letter, as in compose)" if path[1:3] == ":/" else "")
    )


def volume_merge_key(item: Any) -> Any:
    """Volumes are unique by target when files are merged."""
    if hasattr(item, "get"):
        return item.get("target")
    return parse_volume(item).target
