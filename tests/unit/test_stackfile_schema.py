"""Every key of the compose-spec is known to the loader: honoured, or warned about as one that
cannot apply on one engine, or refused with its reason — never "unknown key".

The test walks the property names of the compose-spec JSON schema (orchestrator/stackfile/
compose-spec.json, see compose-spec.NOTICE.md there) for every object it describes (top level, services, build,
deploy, networks, volumes, secrets, configs, ...), writes a stack file that sets all of them (to
null, inside a parent that is valid enough to be read) and checks that loading it names none as
unknown. A newer schema with a new key, or a new object, fails here, not in a user's hands.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.stackfile import StackFileError, load_stack_text

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "orchestrator" / "stackfile" / "compose-spec.json").read_text())
DEFINITIONS = SCHEMA.get("$defs") or SCHEMA["definitions"]
Keys = dict[str, Any]


def objects(node: Any, path: str, seen: set[tuple[int, str]]) -> Iterator[tuple[str, list[str]]]:
    """(location, property names) of every object the schema describes below `node`: `.*` for
    the entries of a map of names, `[]` for the items of a list."""
    while isinstance(node, dict) and "$ref" in node:
        node = DEFINITIONS[node["$ref"].rsplit("/", 1)[1]]
    if not isinstance(node, dict) or (id(node), path) in seen:
        return
    seen.add((id(node), path))
    if "properties" in node:
        yield path, sorted(node["properties"])
        for key, value in node["properties"].items():
            yield from objects(value, f"{path}.{key}".lstrip("."), seen)
    for alternatives in ("oneOf", "anyOf", "allOf"):
        for alternative in node.get(alternatives, ()):
            yield from objects(alternative, path, seen)
    if "items" in node:
        yield from objects(node["items"], f"{path}[]", seen)
    for pattern, value in node.get("patternProperties", {}).items():
        if pattern != "^x-":
            yield from objects(value, f"{path}.*", seen)


def locations() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path, keys in objects(SCHEMA, "", set()):
        found[path] = sorted(set(found.get(path, [])) | set(keys))
    return found


def web(**service: Any) -> Keys:
    return {"services": {"web": {"image": "busybox", **service}}}


def mount(kind: str, option: str) -> Callable[[Keys], Keys]:
    source = {"bind": {"source": "/srv"}, "volume": {}, "tmpfs": {}, "image": {"source": "busybox"}}[kind]
    return lambda k: web(volumes=[{"type": kind, **source, "target": "/x", option: k}])


#: A stack file that sets the keys `k` (name -> null) at each location of the schema.
TEMPLATES: dict[str, Callable[[Keys], Keys]] = {
    "": lambda k: {**k, "services": {"web": {"image": "busybox"}}},
    "include[]": lambda k: {"include": [k], **web()},
    "models.*": lambda k: {"models": {"m": k}, **web()},
    "networks.*": lambda k: {"networks": {"n": k}, **web()},
    "networks.*.external": lambda k: {"networks": {"n": {"external": k}}, **web()},
    "networks.*.ipam": lambda k: {"networks": {"n": {"ipam": k}}, **web()},
    "networks.*.ipam.config[]": lambda k: {"networks": {"n": {"ipam": {"config": [k]}}}, **web()},
    "volumes.*": lambda k: {"volumes": {"v": k}, **web()},
    "volumes.*.external": lambda k: {"volumes": {"v": {"external": k}}, **web()},
    "secrets.*": lambda k: {"secrets": {"s": {**k, "file": "/etc/hostname", "external": None}}, **web()},
    "secrets.*.external": lambda k: {"secrets": {"s": {"external": k}}, **web()},
    "configs.*": lambda k: {"configs": {"c": {**k, "content": "x", "file": None, "environment": None, "external": None}}, **web()},
    "configs.*.external": lambda k: {"configs": {"c": {"external": k}}, **web()},
    "services.*": lambda k: {"services": {"web": {**k, "image": "busybox", "extends": None}}},
    "services.*.extends": lambda k: {"services": {"web": {"extends": {**k, "service": "base"}}, "base": {"image": "busybox"}}},
    "services.*.blkio_config": lambda k: web(blkio_config=k),
    **{f"services.*.blkio_config.{key}[]": (lambda key: lambda k: web(blkio_config={key: [k]}))(key)
       for key in ("device_read_bps", "device_read_iops", "device_write_bps", "device_write_iops", "weight_device")},
    "services.*.build": lambda k: web(build={**k, "context": "."}),
    "services.*.build.secrets[]": lambda k: web(build={"context": ".", "secrets": [k]}),
    "services.*.build.ulimits.*": lambda k: web(build={"context": ".", "ulimits": {"nofile": k}}),
    "services.*.configs[]": lambda k: {**web(configs=[{**k, "source": "c"}]), "configs": {"c": {"content": "x"}}},
    "services.*.secrets[]": lambda k: {**web(secrets=[{**k, "source": "s"}]), "secrets": {"s": {"file": "/etc/hostname"}}},
    "services.*.credential_spec": lambda k: web(credential_spec=k),
    "services.*.depends_on.*": lambda k: {**web(depends_on={"db": k}), "services": {"web": {"image": "busybox", "depends_on": {"db": k}}, "db": {"image": "busybox"}}},
    "services.*.deploy": lambda k: web(deploy=k),
    "services.*.deploy.placement": lambda k: web(deploy={"placement": k}),
    "services.*.deploy.placement.preferences[]": lambda k: web(deploy={"placement": {"preferences": [k]}}),
    "services.*.deploy.resources": lambda k: web(deploy={"resources": k}),
    "services.*.deploy.resources.limits": lambda k: web(deploy={"resources": {"limits": k}}),
    "services.*.deploy.resources.reservations": lambda k: web(deploy={"resources": {"reservations": k}}),
    "services.*.deploy.resources.reservations.devices[]": lambda k: web(deploy={"resources": {"reservations": {"devices": [k]}}}),
    "services.*.deploy.resources.reservations.generic_resources[]": lambda k: web(deploy={"resources": {"reservations": {"generic_resources": [k]}}}),
    "services.*.deploy.resources.reservations.generic_resources[].discrete_resource_spec":
        lambda k: web(deploy={"resources": {"reservations": {"generic_resources": [{"discrete_resource_spec": k}]}}}),
    "services.*.deploy.restart_policy": lambda k: web(deploy={"restart_policy": k}),
    "services.*.deploy.rollback_config": lambda k: web(deploy={"rollback_config": k}),
    "services.*.deploy.update_config": lambda k: web(deploy={"update_config": k}),
    "services.*.develop": lambda k: web(develop=k),
    "services.*.develop.watch[]": lambda k: web(develop={"watch": [k]}),
    "services.*.develop.watch[].exec": lambda k: web(develop={"watch": [{"exec": k}]}),
    "services.*.devices[]": lambda k: web(devices=[k]),
    "services.*.env_file[]": lambda k: web(env_file=[{**k, "path": "missing.env", "required": False}]),
    "services.*.gpus[]": lambda k: web(gpus=[k]),
    "services.*.healthcheck": lambda k: web(healthcheck=k),
    "services.*.logging": lambda k: web(logging=k),
    "services.*.models.*": lambda k: web(models={"m": k}),
    "services.*.networks.*": lambda k: {**web(networks={"n": k}), "networks": {"n": {}}},
    "services.*.ports[]": lambda k: web(ports=[{**k, "target": 80}]),
    "services.*.post_start[]": lambda k: web(post_start=[k]),
    "services.*.pre_start[]": lambda k: web(pre_start=[k]),
    "services.*.pre_stop[]": lambda k: web(pre_stop=[k]),
    "services.*.provider": lambda k: web(provider=k),
    "services.*.ulimits.*": lambda k: web(ulimits={"nofile": {**k, "soft": 1, "hard": 2}}),
    "services.*.volumes[]": lambda k: web(volumes=[{**k, "type": "volume", "target": "/x", "source": None}]),
    "services.*.volumes[].bind": mount("bind", "bind"),
    "services.*.volumes[].volume": mount("volume", "volume"),
    "services.*.volumes[].tmpfs": mount("tmpfs", "tmpfs"),
    "services.*.volumes[].image": mount("image", "image"),
}


def test_every_object_of_the_schema_has_a_template() -> None:
    assert sorted(locations()) == sorted(TEMPLATES)


@pytest.mark.parametrize(("location", "keys"), sorted(locations().items()), ids=sorted(locations()))
def test_every_key_of_the_schema_is_known(location: str, keys: list[str]) -> None:
    if location not in TEMPLATES:
        pytest.fail(f"the schema has a new object at {location}: add a template for it")
    document = TEMPLATES[location]({key: None for key in keys})
    try:
        messages = list(load_stack_text([("stack.yml", json.dumps(document))], Path("/"), env={}, name="t").warnings)
    except StackFileError as exc:
        messages = [problem.message for problem in exc.problems]
    assert not [m for m in messages if "unknown key" in m], (location, messages)
