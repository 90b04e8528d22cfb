"""Dangerous options: settings of a stack that give its containers power over the host. Whoever
may deploy is root-equivalent while these are allowed; `ORCHESTRATOR_DANGEROUS_OPTIONS=deny`
makes the daemon refuse them (the default `warn` lists each one in the deploy answer and in
`orchestrator config`). The loader applies the policy (stackfile/__init__.py); this module only
finds them, without I/O except resolving symlinks of host paths.

What counts (only what the daemon applies: keys it ignores, such as `privileged`, `devices`,
`pid`, `ipc`, `network_mode` or `security_opt`, have no effect and are warned about as unsupported):
- `cap_add` of a capability outside the engine's default set, or ALL (as `privileged` gives);
- a bind mount (a service volume, or a top-level volume of the local driver with `o: bind`) of
  `/`, of the engine's socket, of a host system path, or of a directory that holds one;
- a secret's or config's `file:`, an env_file or a build context under a host system path (the
  daemon reads or bind-mounts it for the caller);
- joining the engine's `host` network (an external network named host: the host's network stack).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.model.spec import ServiceSpec, StackSpec

#: The capabilities every container has (the engine's default set): adding one changes nothing.
DEFAULT_CAPABILITIES = frozenset(
    "CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP SETPCAP NET_BIND_SERVICE "
    "SYS_CHROOT KILL AUDIT_WRITE".split()
)
ENGINE_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock",
                  "/var/run/containerd/containerd.sock")
#: Host paths whose contents (or a bind of them) give power over the host or its secrets.
SYSTEM_PATHS = ("/etc", "/proc", "/sys", "/dev", "/boot", "/root", "/run", "/var/run", "/var/lib",
                "/var/log", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")

Keys = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Danger:
    #: Where it is in the stack file, e.g. ("services", "web", "cap_add", 0).
    keys: Keys
    #: What it does, e.g. "adds the capability SYS_ADMIN".
    what: str

    @property
    def path(self) -> str:
        return key_path(self.keys)


def key_path(keys: Keys) -> str:
    """("services", "web", "cap_add", 0) -> "services.web.cap_add[0]"."""
    text = ""
    for key in keys:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else key)
    return text


def find_dangerous(stack: StackSpec, resolve: Callable[[str], str] = os.path.realpath) -> tuple[Danger, ...]:
    """Every dangerous option of `stack`, in file order (services, then volumes, secrets, configs)."""
    found: list[Danger] = []
    for service in stack.services.values():
        found.extend(_service_dangers(stack, service, resolve))
    for name, volume in stack.volumes.items():
        device = volume.driver_opts.get("device", "")
        if volume.driver in (None, "local") and "bind" in volume.driver_opts.get("o", "").split(",") and device:
            note = host_path_note(device, resolve)
            if note:
                found.append(Danger(("volumes", name, "driver_opts"), f"bind-mounts {note}"))
    for kind, objects in (("secrets", stack.secrets), ("configs", stack.configs)):
        for name, spec in objects.items():
            note = host_path_note(spec.file, resolve) if spec.file else None
            if note:
                found.append(Danger((kind, name, "file"), f"bind-mounts {note} into containers"))
    return tuple(found)


def _service_dangers(stack: StackSpec, service: ServiceSpec, resolve: Callable[[str], str]) -> list[Danger]:
    base: Keys = ("services", service.name)
    found = []
    for index, name in enumerate(service.cap_add):
        capability = name.strip().upper().removeprefix("CAP_")
        if capability == "ALL":
            found.append(Danger((*base, "cap_add", index), "adds every capability (as privileged does)"))
        elif capability not in DEFAULT_CAPABILITIES:
            found.append(Danger((*base, "cap_add", index), f"adds the capability {capability}"))
    for index, mount in enumerate(service.volumes):
        note = host_path_note(mount.source, resolve) if mount.type == "bind" and mount.source else None
        if note:
            access = "read-only" if mount.read_only else "read-write"
            found.append(Danger((*base, "volumes", index), f"bind-mounts {note}, {access}"))
    for attachment in service.networks:
        network = stack.networks.get(attachment.network)
        if network is not None and network.external and network.engine_name == "host":
            found.append(Danger((*base, "networks"), f"joins the host's network stack (network {attachment.network!r} is the engine's host network)"))
    if service.build is not None and not _is_url(service.build.context):
        note = host_path_note(service.build.context, resolve)
        if note:
            found.append(Danger((*base, "build"), f"builds an image from {note}"))
    return found


def host_path_note(path: str, resolve: Callable[[str], str] = os.path.realpath) -> str | None:
    """What a host path gives a container, or None for an ordinary path: checked as given and
    with symlinks resolved (the engine follows them)."""
    for candidate in dict.fromkeys((_normal(path), _normal(resolve(path)))):
        if candidate == "/":
            return "the host's root directory /"
        if candidate in ENGINE_SOCKETS:
            return f"the engine's socket {candidate} (root on the host)"
        for system in SYSTEM_PATHS:
            if candidate == system or candidate.startswith(system + "/"):
                return f"host system path {candidate}"
            if system.startswith(candidate + "/"):
                return f"{candidate}, which holds host system path {system}"
    return None


def _normal(path: str) -> str:
    """`//etc/./x/..` -> `/etc` (POSIX keeps a leading `//`; the kernel does not care)."""
    return posixpath.normpath("/" + path.lstrip("/"))


def _is_url(context: str) -> bool:
    return "://" in context or context.startswith("git@")
