"""Secrets and configs as Swarm objects, with versioned names.

Swarm never changes a secret's or config's data (an update may only change labels), which is why
`docker stack deploy` fails when a secret file changes. Each object is therefore created under a
name that carries a hash of its content, `<stack>_<name>-<hash10>` (or `<name:>-<hash10>`): a new
content is a new object, the services that use it are updated to the new name (a rolling update,
as for any change of the task spec), and the versions no service uses any more are removed
afterwards (`stale_objects`; Swarm refuses to remove one still in use, and that removal is simply
tried again after the next deploy). External objects are used by their name, as they are.

A service's references name the objects; the engine also wants their ids, which exist only once
the objects are created: `with_object_ids` fills them in.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from orchestrator.labels import LABEL_CONTENT_HASH, LABEL_OBJECT_NAME, LABEL_STACK, LABEL_SWARM_NAMESPACE
from orchestrator.model.spec import FileObjectSpec, StackSpec
from orchestrator.swarm.bodies import drop_empty
from orchestrator.swarm.problems import Findings

Kind = Literal["secrets", "configs"]

#: swarmkit's bounds on an object's data: at least 1 byte and fewer than these.
MAX_DATA = {"secrets": 500 * 1024, "configs": 1000 * 1024}
#: swarmkit's rule for secret and config names.
_OBJECT_NAME = re.compile(r"[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?")
_MAX_NAME = 64
_HASH_LENGTH = 10


def object_data(kind: Kind, spec: FileObjectSpec, file_data: Mapping[str, bytes]) -> bytes | None:
    """The content of a non-external object: its file's (read beforehand by swarm.files) or the
    stack file's text (`content:`, `environment:`). None when its file was not read."""
    if spec.file is not None:
        return file_data.get(spec.file)
    return (spec.content or "").encode()


def convert_objects(
    kind: Kind, stack: StackSpec, file_data: Mapping[str, bytes], findings: Findings
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(create bodies of the non-external objects by stack-file name, engine name of every
    object by stack-file name)."""
    bodies: dict[str, dict[str, Any]] = {}
    names: dict[str, str] = {}
    for name, spec in getattr(stack, kind).items():
        path = f"{kind}.{name}"
        if spec.external:
            names[name] = spec.engine_name or name
            continue
        driven = kind == "secrets" and spec.driver is not None  # its plugin gives the data
        data = b"" if driven else object_data(kind, spec, file_data)
        if data is None:
            findings.error(f"{path}.file", f"the file {spec.file} was not read")
            continue
        if not driven and not 0 < len(data) < MAX_DATA[kind]:
            findings.error(path, f"Swarm takes 1 to {MAX_DATA[kind] - 1} bytes of data, not {len(data)}")
            continue
        extras = _swarm_extras(kind, spec)
        digest = _digest(data, extras, spec.labels)
        engine_name = f"{spec.engine_name or f'{stack.name}_{name}'}-{digest}"
        if len(engine_name) > _MAX_NAME or not _OBJECT_NAME.fullmatch(engine_name):
            findings.error(path, f"the Swarm name {engine_name!r} is not valid: at most {_MAX_NAME} characters "
                                 "a-z, A-Z, 0-9, '-', '_' or '.', starting and ending with a letter or digit "
                                 "(a shorter stack or object name fixes it)")
            continue
        names[name] = engine_name
        bodies[name] = drop_empty({
            "Name": engine_name,
            "Labels": {**spec.labels, LABEL_SWARM_NAMESPACE: stack.name, LABEL_STACK: stack.name,
                       LABEL_OBJECT_NAME: name, LABEL_CONTENT_HASH: digest},
            "Data": base64.b64encode(data).decode() if data else None,
            **extras,
        })
    return bodies, names


def _swarm_extras(kind: Kind, spec: FileObjectSpec) -> dict[str, Any]:
    """As docker/cli: a secret's driver plugin (`Driver`) and a template driver (`Templating`)."""
    return drop_empty({
        "Driver": drop_empty({"Name": spec.driver, "Options": dict(spec.driver_opts)})
        if kind == "secrets" and spec.driver else None,
        "Templating": {"Name": spec.template_driver} if spec.template_driver else None,
    })


def _digest(data: bytes, extras: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    """The version of an object: its data and what else the stack file gives it (driver,
    template driver, labels: Swarm would update labels in place, but one way of changing an
    object is simpler than two). An object with nothing but data keeps the hash of its data."""
    more = {**extras, "Labels": dict(labels)} if labels else dict(extras)
    suffix = b"\0" + json.dumps(more, sort_keys=True).encode() if more else b""
    return hashlib.sha256(data + suffix).hexdigest()[:_HASH_LENGTH]


def stale_objects(stack: str, existing: Iterable[Mapping[str, Any]], wanted: Iterable[str]) -> list[str]:
    """Ids of the stack's versioned objects (as listed by GET /secrets or /configs) whose name is
    not among `wanted`: to remove once the services have moved to the new versions. Objects that
    we did not create (no LABEL_STACK, another namespace, external ones) are never listed."""
    keep = set(wanted)
    stale = []
    for item in existing:
        spec = item.get("Spec") or {}
        labels = spec.get("Labels") or {}
        ours = labels.get(LABEL_STACK) == stack and labels.get(LABEL_SWARM_NAMESPACE) == stack
        if ours and LABEL_OBJECT_NAME in labels and spec.get("Name") not in keep:
            stale.append(item["ID"])
    return sorted(stale)


def with_object_ids(
    service: Mapping[str, Any], secret_ids: Mapping[str, str], config_ids: Mapping[str, str]
) -> dict[str, Any]:
    """A copy of a service body whose secret and config references carry the ids of the named
    objects (engine name → id, from their creation or a list). KeyError names a missing one."""
    body = copy.deepcopy(dict(service))
    container = body["TaskTemplate"]["ContainerSpec"]
    for key, id_key, name_key, ids in (("Secrets", "SecretID", "SecretName", secret_ids),
                                       ("Configs", "ConfigID", "ConfigName", config_ids)):
        for reference in container.get(key, ()):
            name = reference[name_key]
            if name not in ids:
                raise KeyError(f"no id for {key[:-1].lower()} {name!r} of service {body['Name']}")
            reference[id_key] = ids[name]
    return body
