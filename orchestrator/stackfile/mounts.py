"""What a service mounts: volumes (short and long syntax: volume, bind, tmpfs) and its uses of
top-level secrets and configs."""

from __future__ import annotations

from typing import Any

from orchestrator.model.spec import FileReference, MountSpec
from orchestrator.stackfile.problems import Where
from orchestrator.stackfile import values
from orchestrator.stackfile.reader import Section, resolve_path, sub_section
from orchestrator.stackfile.shortsyntax import WindowsPath, is_windows_path, parse_volume, windows_note

_LONG_KEYS = ("type", "source", "target", "read_only", "bind", "volume", "tmpfs", "image", "consistency")
#: Mount types of the compose-spec that one Linux engine cannot make, and why.
_OTHER_TYPES = {
    "npipe": "npipe mounts (Windows named pipes) are not supported on a Linux engine",
    "cluster": "cluster volumes (Swarm CSI volumes) are not supported on one engine",
    "image": "image mounts are not supported by this orchestrator",
}


def read_volumes(service: Section) -> tuple[MountSpec, ...]:
    mounts: list[MountSpec] = []
    for item, path, where in service.seq("volumes"):
        mount = _short(item, path, where, service) if isinstance(item, str) else _long(item, path, where, service)
        if mount is not None:
            mounts.append(mount)
    return tuple(mounts)


def _short(item: str, path: str, where: Where, service: Section) -> MountSpec | None:
    try:
        short = parse_volume(item)
    except WindowsPath as exc:
        service.ctx.deploy_only(where, path, str(exc))
        return None
    except ValueError as exc:
        service.ctx.problems.error(where, path, str(exc))
        return None
    for option in short.ignored:
        service.ctx.problems.warn(path, f"volume option {option!r} has no effect here; ignored")
    source = resolve_path(short.source, service.ctx.base_for(where)) if short.type == "bind" and short.source else short.source
    return MountSpec(
        type=short.type,  # type: ignore[arg-type]
        target=short.target,
        source=source,
        read_only=short.read_only,
        bind_propagation=short.propagation,
        volume_nocopy=short.nocopy,
    )


def _long(item: Any, path: str, where: Where, service: Section) -> MountSpec | None:
    section = sub_section(item, path, where, service.ctx, "a string or a mapping")
    if section is None:
        return None
    section.check_keys(_LONG_KEYS, {"consistency": "consistency has no effect on Linux; ignored"})
    kind = section.choice("type", ("volume", "bind", "tmpfs", *_OTHER_TYPES), None)
    if kind in _OTHER_TYPES:
        section.deploy_only("type", _OTHER_TYPES[kind])
        return None
    if kind is None:
        if "type" not in section:
            section.error(None, "a volume needs a type (volume, bind or tmpfs)")
        return None
    target = section.checked("target", values.plain)
    source = section.checked("source", values.plain)
    for key, path in (("target", target), ("source", source)):
        if path and is_windows_path(path):
            section.deploy_only(key, windows_note(path))
            return None
    if not target or not target.startswith("/"):
        section.error("target", "a volume needs an absolute container path as target")
        return None
    if kind == "bind":
        if not source:
            section.error("source", "a bind mount needs a source path")
            return None
        source = resolve_path(source, service.ctx.base_for(section.where("source")))
    elif kind == "tmpfs" and source:
        section.error("source", "a tmpfs mount takes no source")
    bind, volume, tmpfs = _options(section, "bind", kind), _options(section, "volume", kind), _options(section, "tmpfs", kind)
    propagation = create_host_path = nocopy = size = mode = None
    if bind is not None:
        bind.check_keys(
            ("propagation", "create_host_path"),
            {"selinux": "SELinux relabelling is not supported; ignored", "recursive": "recursive read-only binds are not supported; ignored"},
        )
        propagation = bind.choice("propagation", ("shared", "rshared", "slave", "rslave", "private", "rprivate"))
        create_host_path = bind.flag("create_host_path")
    if volume is not None:
        volume.check_keys(("nocopy",), {"subpath": "volume subpath is not supported; ignored", "labels": "labels of an anonymous volume are not supported; ignored"})
        nocopy = volume.flag("nocopy")
    if tmpfs is not None:
        tmpfs.check_keys(("size", "mode"))
        size = tmpfs.size("size")
        mode = tmpfs.mode("mode")
    return MountSpec(
        type=kind,
        target=target,
        source=source or None,
        read_only=section.flag("read_only", False),
        bind_propagation=propagation,
        bind_create_host_path=True if create_host_path is None else create_host_path,
        volume_nocopy=bool(nocopy),
        tmpfs_size=size,
        tmpfs_mode=mode,
    )


def _options(section: Section, name: str, kind: str) -> Section | None:
    options = section.section(name)
    if options is not None and name != kind:
        section.error(name, f"{name} options do not apply to a {kind} mount")
        return None
    return options


def read_file_refs(service: Section, key: str) -> tuple[FileReference, ...]:
    """`secrets:`/`configs:` of a service: names, or mappings with source/target/uid/gid/mode."""
    refs: list[FileReference] = []
    for item, path, where in service.seq(key):
        if isinstance(item, str):
            refs.append(FileReference(source=item, target=_default_target(key, item)))
            continue
        section = sub_section(item, path, where, service.ctx, "a name or a mapping")
        if section is None:
            continue
        section.check_keys(("source", "target", "uid", "gid", "mode"))
        source = section.text("source")
        if not source:
            section.error(None, "needs a source (the name of a top-level entry)")
            continue
        target = section.text("target") or _default_target(key, source)
        if key == "secrets" and not target.startswith("/"):
            target = f"/run/secrets/{target}"
        refs.append(
            FileReference(
                source=source,
                target=target,
                uid=section.text("uid"),
                gid=section.text("gid"),
                mode=section.mode("mode"),
            )
        )
    return tuple(refs)


def _default_target(key: str, name: str) -> str:
    return f"/run/secrets/{name}" if key == "secrets" else f"/{name}"


def tmpfs_list(service: Section) -> tuple[str, ...]:
    """`/path[:options]` entries (options as `mount -t tmpfs` takes them)."""
    return service.str_list("tmpfs", check=values.tmpfs_entry)
