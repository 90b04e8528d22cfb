"""The stack's name and its top-level networks, volumes, secrets and configs, with the engine
names `docker stack deploy` gives them (`<stack>_<name>` unless `name:` or `external:`).

`external: true` goes with `name:` only. Other keys on an external volume are errors (compose-go
and docker/cli refuse them); on an external network, secret or config both accept them and they
have no effect, so they are warned about."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator.model.spec import FileObjectSpec, NetworkSpec, VolumeSpec
from orchestrator.stackfile import values
from orchestrator.stackfile.files import MissingFile, NamedFileError, check_mountable_file
from orchestrator.stackfile.reader import Context, Section, labels, resolve_path, sub_section, to_str, type_name
from orchestrator.stackfile.yamlread import YMap

_NETWORK_KEYS = ("driver", "driver_opts", "external", "name", "internal", "attachable", "enable_ipv6", "labels", "ipam")
_NETWORK_IGNORED = {"enable_ipv4": "not supported; ignored"}
_VOLUME_KEYS = ("driver", "driver_opts", "external", "name", "labels")
_SECRET_KEYS = ("file", "environment", "external", "name", "content")
#: Swarm's own (swarm/objects.py): read on Swarm, ignored on one engine. A config has no driver.
_SECRET_SWARM_KEYS = ("labels", "driver", "driver_opts", "template_driver")
_CONFIG_SWARM_KEYS = ("labels", "template_driver")
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
        external, engine_name = _external(entry, name, ctx)
        if external:  # compose-go and docker stack deploy accept these and use the network as it is
            for key in ("driver", "driver_opts", "ipam", "internal", "attachable", "enable_ipv6", "labels"):
                if key in entry:
                    entry.warn(key, "has no effect on an external network (it exists already); ignored")
        engine_name = _engine_name(section, name, entry, engine_name)
        driver = None if external else entry.text("driver")
        if driver in _SWARM_ONLY_DRIVERS and ctx.limits.backend == "engine":
            entry.warn("driver", f"driver {driver!r} needs Swarm; a local bridge network is created instead")
            driver = None
        result[name] = NetworkSpec(
            name=name,
            engine_name=engine_name,
            driver=driver,
            driver_opts={} if external else labels(entry, "driver_opts"),
            external=external,
            internal=not external and entry.flag("internal", False),
            attachable=not external and entry.flag("attachable", False),
            enable_ipv6=not external and entry.flag("enable_ipv6", False),
            labels={} if external else labels(entry, "labels"),
            subnets=() if external else _subnets(entry.section("ipam")),
        )
    return result


def _entries(section: Section | None) -> Iterator[tuple[str, Section | None]]:
    """The named entries of a top-level section (None for `name:` with no value). An `x-` name
    is an entry too: compose-go reads extensions only where the names are not the user's."""
    if section is None:
        return
    for name, value in section.items():
        yield name, None if value is None else sub_section(value, section.key_path(name), section.where(name), section.ctx)


def _external(entry: Section, name: str, ctx: Context, conflicting: tuple[str, ...] = ()) -> tuple[bool, str]:
    """(external?, engine name). `external: {name: x}` is the deprecated form of `name: x`;
    `conflicting` keys cannot go with `external` (compose-go and docker/cli refuse them)."""
    value = entry.raw("external")
    own_name = _name(entry)
    external_name = None
    if isinstance(value, YMap):
        external_section = entry.section("external")
        if external_section is not None:
            external_section.check_keys(("name",))
            external_name = _name(external_section)
            if external_name is not None:
                external_section.warn("name", "external.name is deprecated: write name and external: true")
            if external_name is not None and own_name is not None and external_name != own_name:
                entry.error("name", f"name ({own_name!r}) and external.name ({external_name!r}) conflict; only use name")
        external = True
    else:
        external = entry.flag("external", False)
    if external:
        for key in conflicting:
            if key in entry:
                entry.error(key, f"conflicting parameters: 'external' and '{key}' cannot be used together")
        return True, own_name or external_name or name
    return False, own_name or f"{ctx.stack}_{name}"


def _name(entry: Section) -> str | None:
    """`name:`, which must be a string (compose-go's schema): `name: 1` is an error."""
    value = entry.raw("name")
    if value is not None and not isinstance(value, str):
        entry.error("name", f"must be a string, not {type_name(value)}")
        return None
    return value or None


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
        external, engine_name = _external(entry, name, ctx, conflicting=("driver", "driver_opts", "labels"))
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
    """Top-level secrets/configs: from a file, an environment variable, inline content
    (configs), or external. That the file exists and the variable is set is checked when the
    stack is deployed (`ctx.deploying`); before, a missing one is a warning, as `docker compose
    config` loads a project whose secret files are generated later."""
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
        configs = section.path == "configs"  # type: ignore[union-attr]
        allowed = _SECRET_KEYS if configs else tuple(k for k in _SECRET_KEYS if k != "content")
        swarm_keys = _CONFIG_SWARM_KEYS if configs else _SECRET_SWARM_KEYS
        if ctx.limits.backend == "swarm":
            entry.check_keys((*allowed, *swarm_keys))
        else:
            entry.check_keys(allowed, {key: "read only on Swarm (ORCHESTRATOR_BACKEND=swarm); ignored" for key in swarm_keys})
        external, engine_name = _external(entry, name, ctx)
        sources = [key for key in ("file", "environment", "content") if key in entry]
        if external:
            for key in sources:  # compose-go accepts them; an external object exists already
                entry.warn(key, "has no effect on an external object (it exists already); ignored")
            result[name] = FileObjectSpec(name=name, external=True, engine_name=engine_name)
            continue
        driven = "driver" in entry and ctx.limits.backend == "swarm"
        if driven and sources:
            entry.error("driver", f"a secret from a driver (a Swarm secret plugin) has no {sources[0]}: give one or the other")
        elif not sources and "driver" in entry and not driven:
            entry.error("driver", "a secret from a driver (a Swarm secret plugin) is not supported on one engine: use file or environment")
        elif len(sources) != 1 and not driven:
            entry.error(None, "needs exactly one of file, environment" + (", content" if "content" in allowed else "") + " or external: true")
        file = content = variable = None
        if "file" in entry:
            file = resolve_path(entry.text("file", ""), ctx.base_for(entry.where("file")))
            _check_file(entry, file, ctx)
        if "environment" in entry:
            variable = entry.text("environment", "")
            content = ctx.env.get(variable)
            if content is None:
                entry.deploy_only("environment", f"environment variable {variable} is not set", until_there=True)
        if "content" in entry:
            content = to_str(entry.raw("content"))
        # Swarm names its objects: `name:`, else derived from the stack (swarm/objects.py).
        own_name = engine_name if "name" in entry else None
        result[name] = FileObjectSpec(name=name, file=file, content=content, external=False, environment=variable,
                                      engine_name=own_name, **(_swarm_object(entry) if ctx.limits.backend == "swarm" else {}))
    return result


def _swarm_object(entry: Section) -> dict[str, Any]:
    return {
        "labels": labels(entry, "labels"),
        "driver": entry.checked("driver", values.plain),
        "driver_opts": {key: value or "" for key, value in entry.mapping("driver_opts").items()},
        "template_driver": entry.checked("template_driver", values.plain),
    }


def _check_file(entry: Section, file: str, ctx: Context) -> None:
    try:
        check_mountable_file(Path(file), ctx.limits.max_file_size)
    except MissingFile as exc:
        entry.deploy_only("file", str(exc), until_there=True)
    except NamedFileError as exc:
        entry.error("file", str(exc))
