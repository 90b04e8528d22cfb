"""The stack's name and its top-level networks, volumes, secrets and configs, with the engine
names `docker stack deploy` gives them (`<stack>_<name>` unless `name:` or `external:`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from orchestrator.model import FileObjectSpec, NetworkSpec, VolumeSpec
from orchestrator.stackfile import values
from orchestrator.stackfile.files import NamedFileError, check_mountable_file
from orchestrator.stackfile.reader import Context, Section, labels, resolve_path, sub_section, to_str

_NETWORK_KEYS = ("driver", "driver_opts", "external", "name", "internal", "attachable", "enable_ipv6", "labels", "ipam")
_NETWORK_IGNORED = {"enable_ipv4": "not supported; ignored"}
_VOLUME_KEYS = ("driver", "driver_opts", "external", "name", "labels")
_SECRET_KEYS = ("file", "environment", "external", "name", "content")
_SECRET_IGNORED = {key: "not supported; ignored" for key in ("labels", "driver", "driver_opts", "template_driver")}
#: Swarm networks are overlays; one engine without Swarm can only make a local (bridge) one.
_SWARM_ONLY_DRIVERS = {"overlay"}


def normalise_name(name: str) -> str:
    """As compose: lowercase, only [a-z0-9_-], starting with a letter or digit."""
    return re.sub(r"[^a-z0-9_-]", "", name.lower()).lstrip("_-")


def read_networks(section: Section | None, ctx: Context) -> dict[str, NetworkSpec]:
    result: dict[str, NetworkSpec] = {}
    for name, entry in _entries(section):
        if entry is None:
            result[name] = NetworkSpec(name=name, engine_name=_engine_name(section, name, None, f"{ctx.stack}_{name}"))
            continue
        entry.check_keys(_NETWORK_KEYS, _NETWORK_IGNORED)
        external, engine_name = _external(entry, name, ctx, ("driver", "driver_opts", "ipam", "internal", "labels"))
        engine_name = _engine_name(section, name, entry, engine_name)
        driver = entry.str("driver")
        if driver in _SWARM_ONLY_DRIVERS:
            entry.warn("driver", f"driver {driver!r} needs Swarm; a local bridge network is created instead")
            driver = None
        result[name] = NetworkSpec(
            name=name,
            engine_name=engine_name,
            driver=driver,
            driver_opts=labels(entry, "driver_opts"),
            external=external,
            internal=entry.bool("internal", False),
            attachable=entry.bool("attachable", False),
            enable_ipv6=entry.bool("enable_ipv6", False),
            labels=labels(entry, "labels"),
            subnets=_subnets(entry.section("ipam")),
        )
    return result


def _entries(section: Section | None) -> Iterator[tuple[str, Section | None]]:
    """The named entries of a top-level section (None for `name:` with no value)."""
    for name, value in section.items() if section else ():
        if name.startswith("x-"):
            continue
        yield name, None if value is None else sub_section(value, section.key_path(name), section.where(name), section.ctx)


def _external(entry: Section, name: str, ctx: Context, conflicting: tuple[str, ...]) -> tuple[bool, str]:
    """(external?, engine name). `external: {name: x}` is the deprecated form of `name: x`."""
    value = entry.raw("external")
    external_name = None
    if hasattr(value, "get"):
        external_section = entry.section("external")
        if external_section is not None:
            external_section.check_keys(("name",))
            external_name = external_section.str("name")
        external = True
    else:
        external = entry.bool("external", False)
    if external:
        for key in conflicting:
            if key in entry:
                entry.error(key, f"conflicting parameters: 'external' and '{key}' cannot be used together")
        return True, external_name or entry.str("name") or name
    return False, entry.str("name") or f"{ctx.stack}_{name}"


def _engine_name(section: Section | None, name: str, entry: Section | None, engine_name: str) -> str:
    """The name the engine will be asked for must be one it accepts: `name: ../../etc` is
    refused here, with its key path, rather than by the engine at deploy time."""
    try:
        return values.engine_name(engine_name)
    except ValueError as exc:
        if entry is not None and "name" in entry:
            entry.error("name", str(exc))
        elif entry is not None and "external" in entry:
            entry.error("external", str(exc))
        elif section is not None:
            section.error(name, str(exc))
        return engine_name


def _subnets(ipam: Section | None) -> tuple[str, ...]:
    if ipam is None:
        return ()
    ipam.check_keys(("config",), {"driver": "IPAM driver not supported; ignored", "options": "IPAM options not supported; ignored"})
    subnets = []
    for item, path, where in ipam.seq("config"):
        config = sub_section(item, path, where, ipam.ctx)
        if config is None:
            continue
        config.check_keys(("subnet",), {key: "not supported; ignored" for key in ("ip_range", "gateway", "aux_addresses")})
        subnet = config.checked("subnet", values.subnet)
        if subnet is not None:
            subnets.append(subnet)
    return tuple(subnets)


def read_volumes(section: Section | None, ctx: Context) -> dict[str, VolumeSpec]:
    result: dict[str, VolumeSpec] = {}
    for name, entry in _entries(section):
        if entry is None:
            result[name] = VolumeSpec(name=name, engine_name=_engine_name(section, name, None, f"{ctx.stack}_{name}"))
            continue
        entry.check_keys(_VOLUME_KEYS)
        external, engine_name = _external(entry, name, ctx, ("driver", "driver_opts", "labels"))
        result[name] = VolumeSpec(
            name=name,
            engine_name=_engine_name(section, name, entry, engine_name),
            driver=entry.checked("driver", values.plain),
            driver_opts=labels(entry, "driver_opts"),
            external=external,
            labels=labels(entry, "labels"),
        )
    return result


def read_file_objects(section: Section | None, ctx: Context) -> dict[str, FileObjectSpec]:
    """Top-level secrets/configs: from a file (must exist), an environment variable, inline
    content (configs), or external."""
    result: dict[str, FileObjectSpec] = {}
    for name, entry in _entries(section):
        try:
            values.engine_name(name)  # a content: is written to a file of this name
        except ValueError as exc:
            section.error(name, str(exc))  # type: ignore[union-attr]
            continue
        if entry is None:
            section.error(name, "needs file, environment, content or external")  # type: ignore[union-attr]
            continue
        allowed = _SECRET_KEYS if section.path == "configs" else tuple(k for k in _SECRET_KEYS if k != "content")  # type: ignore[union-attr]
        entry.check_keys(allowed, _SECRET_IGNORED)
        external, _engine = _external(entry, name, ctx, ("file", "environment", "content"))
        sources = [key for key in ("file", "environment", "content") if key in entry]
        if not external and len(sources) != 1:
            entry.error(None, "needs exactly one of file, environment" + (", content" if "content" in allowed else "") + " or external: true")
        file = content = None
        if "file" in entry:
            file = resolve_path(entry.str("file", ""), ctx.base_dir)
            try:
                check_mountable_file(Path(file), ctx.limits.max_file_size)
            except NamedFileError as exc:
                entry.error("file", str(exc))
        if "environment" in entry:
            variable = entry.str("environment", "")
            content = ctx.env.get(variable)
            if content is None:
                entry.error("environment", f"environment variable {variable} is not set")
        if "content" in entry:
            content = to_str(entry.raw("content"))
        result[name] = FileObjectSpec(name=name, file=file, content=content, external=external)
    return result
