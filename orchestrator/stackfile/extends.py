"""`extends`: a service built on another one, from the same file or from another file
(compose-spec 05-services.md "extends", compose-go loader/extends.go).

`extends: web` or `extends: {service: web}` names a service of the same file (document);
`extends: {service: web, file: common.yml}` one of another file, whose path is relative to the
file that names it. The base service is resolved first (it may extend another one), then the
extending service is merged on top of it with the rules of several files (stackfile/merge.py):
mappings merge, most lists append, `!reset`/`!override` work. A base from another file keeps
that file as the origin of its values, so its relative paths (bind mounts, env_file, build
context) resolve against its own directory (Context.base_dirs), as compose-go does. Resources the
base service uses (networks, volumes, ...) are not imported: the extending file declares them.

A cycle is an error that shows the chain; chains are at most MAX_CHAIN_DEPTH long.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.stackfile.limits import MAX_CHAIN_DEPTH
from orchestrator.stackfile.merge import drop_reset, merge
from orchestrator.stackfile.problems import Where, quote
from orchestrator.stackfile.reader import Section, resolve_path, type_name
from orchestrator.stackfile.sources import Sources
from orchestrator.stackfile.yamlread import YMap, YSeq

#: (file, service): a service as one file defines it.
Ref = tuple[str, str]


def apply_extends(document: YMap, file: str, env: Mapping[str, str], sources: Sources) -> YMap:
    """`document` with every service that extends another one merged onto its base."""
    services = document.get("services")
    if not isinstance(services, YMap) or not any(_extends(v) for v in services.values()):
        return document
    resolver = _Resolver(sources, env)
    resolved = YMap(services.where)
    for name, value in services.items():
        if _extends(value):
            value = resolver.resolve(file, services, name, ())
        resolved.put(name, value, services.key_where[name], services.tags.get(name))
    out = YMap(document.where)
    for key, value in document.items():
        out.put(key, resolved if key == "services" else value, document.key_where[key], document.tags.get(key))
    return out


def _extends(value: Any) -> bool:
    return isinstance(value, YMap) and "extends" in value


class _Resolver:
    def __init__(self, sources: Sources, env: Mapping[str, str]) -> None:
        self.sources = sources
        self.ctx = sources.ctx
        self.env = env
        self.done: dict[Ref, YMap] = {}

    def resolve(self, file: str, services: YMap, name: str, chain: tuple[Ref, ...]) -> Any:
        """The service `name` of `file` with its `extends` applied (and removed)."""
        service = services[name]
        ref = (file, name)
        if not _extends(service):
            return service
        if ref in self.done:
            return self.done[ref]
        where, path = service.key_where["extends"], f"services.{name}.extends"
        own = _without(service, "extends")
        # On a problem the service keeps its `extends` key, so that the reader knows its image
        # (or anything else) may be missing because of that problem, and does not say so again.
        if ref in chain:
            cycle = (*chain[chain.index(ref):], ref)
            files = {f for f, _n in cycle}
            shown = " -> ".join(n if len(files) == 1 else f"{n} ({f})" for f, n in cycle)
            self.ctx.problems.error(where, path, f"extends cycle: {shown}" + (f" (in {file})" if len(files) == 1 else ""))
            return service
        if len(chain) >= MAX_CHAIN_DEPTH:
            self.ctx.problems.error(where, path, f"extends chains are at most {MAX_CHAIN_DEPTH} services long")
            return service
        target = self._target(service["extends"], where, path)
        if target is None:
            return service
        base_name, base_file = target
        found = self._services_of(base_file, services, file, where, path)
        if found is None:
            return service
        base_services, base_file_name = found
        if base_name not in base_services:
            place = "" if base_file is None else f" in {base_file}"
            self.ctx.problems.error(where, path, f"service {base_name!r} to extend is not defined{place}")
            return service
        base = self.resolve(base_file_name, base_services, base_name, (*chain, ref))
        if not isinstance(base, YMap):
            self.ctx.problems.error(where, path, f"service {base_name!r} to extend must be a mapping, not {type_name(base)}")
            return service
        merged = merge(base, own, ("services", name))
        self.done[ref] = merged
        return merged

    def _target(self, value: Any, where: Where, path: str) -> tuple[str, Path | None] | None:
        """(service, file or None) of an `extends:` value."""
        if isinstance(value, str) and value:
            return value, None
        if not isinstance(value, YMap):
            self.ctx.problems.error(where, path, f"must be a service name or a mapping with service (and file), not {type_name(value)}")
            return None
        entry = Section(value, path, self.ctx, where)
        entry.check_keys(("service", "file"))
        service = entry.text("service")
        if not service:
            if not isinstance(entry.raw("service"), (YMap, YSeq)):  # else "must be a string" said it
                entry.error(None, "needs the name of the service to extend (service:)")
            return None
        file = entry.text("file")
        return service, None if not file else Path(resolve_path(file, self.ctx.base_for(entry.where("file"))))

    def _services_of(self, file: Path | None, services: YMap, current: str, where: Where, path: str) -> tuple[YMap, str] | None:
        """The services of the file to extend from (the current one when `file` is None)."""
        if file is None:
            return services, current
        documents = self.sources.documents(file, self.env, file.parent, where, f"{path}.file")
        if documents is None:
            return None
        model = drop_reset(documents[0])
        for document in documents[1:]:
            model = merge(model, document, ())
        found = model.get("services")
        if not isinstance(found, YMap):
            self.ctx.problems.error(where, f"{path}.file", f"{file} has no services to extend ({quote('services')} must be a mapping)")
            return None
        return found, str(file)


def _without(mapping: YMap, key: str) -> YMap:
    out = YMap(mapping.where)
    for name, value in mapping.items():
        if name != key:
            out.put(name, value, mapping.key_where[name], mapping.tags.get(name))
    return out
