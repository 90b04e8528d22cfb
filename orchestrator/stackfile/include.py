"""Top-level `include:`: other compose projects loaded into this one (compose-spec 14-include.md,
compose-go loader/include.go).

Each entry is a path, or `{path: FILE | [FILE, override, ...], project_directory: DIR,
env_file: FILE | [FILE, ...]}`; paths are relative to the including file's directory. An
included project is loaded on its own: its files are merged, its own includes and extends
applied, its variables interpolated from the including environment first and then from its
`env_file`s (by default `.env` in its project directory), and its relative paths resolve against
its project directory (by default the directory of its first file). Its services, networks,
volumes, secrets and configs are then added to the including file. A name the including file
defines too is merged, the including file's definition on top (compose-go since v2.10 lets a
file override what it includes this way), with a warning when the two differ.

An include cycle is an error that shows the chain; chains are at most MAX_CHAIN_DEPTH deep.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from orchestrator.stackfile.files import MissingFile, NamedFileError, read_named_file
from orchestrator.stackfile.interpolate import parse_env_file
from orchestrator.stackfile.limits import MAX_CHAIN_DEPTH
from orchestrator.stackfile.merge import merge
from orchestrator.stackfile.problems import Where
from orchestrator.stackfile.reader import Context, Section, resolve_path, type_name
from orchestrator.stackfile.yamlread import YMap, YSeq

RESOURCES = ("services", "networks", "volumes", "secrets", "configs", "models")

#: Loads the files of a project (paths, project directory, environment, include chain, and the
#: place and key path of the include entry) into one merged model, or None when they cannot be
#: loaded (the problems are recorded).
LoadProject = Callable[[list[Path], Path, Mapping[str, str], tuple[str, ...], Where, str], YMap | None]


def apply_include(document: YMap, env: Mapping[str, str], chain: tuple[str, ...], ctx: Context, load: LoadProject) -> YMap:
    """`document` without its `include:`, with the resources of the projects it includes."""
    value = document.get("include")
    if "include" not in document:
        return document
    out = YMap(document.where)
    for key, item in document.items():
        if key != "include":
            out.put(key, item, document.key_where[key], document.tags.get(key))
    if value is None:
        return out
    root = Section(document, "", ctx)
    if not isinstance(value, YSeq):
        root.error("include", f"must be a list of files, not {type_name(value)}")
        return out
    for item, path, where in root.seq("include"):
        included = _load_entry(item, path, where, env, chain, ctx, load)
        if included is not None:
            _import(included, out, path, ctx)
    return out


def _load_entry(item: object, path: str, where: Where, env: Mapping[str, str], chain: tuple[str, ...],
                ctx: Context, load: LoadProject) -> YMap | None:
    base = ctx.base_for(where)
    if isinstance(item, str):
        entry = None
        paths = [item]
    elif isinstance(item, YMap):
        entry = Section(item, path, ctx, where)
        entry.check_keys(("path", "project_directory", "env_file"))
        paths = list(entry.str_list("path"))
        if not paths and "path" not in entry:
            entry.error(None, "needs path: the compose file(s) to include")
        elif not paths and isinstance(entry.raw("path"), YSeq):
            entry.error("path", "must name at least one compose file")
    else:
        ctx.problems.error(where, path, f"must be a file path or a mapping with path, not {type_name(item)}")
        return None
    if not paths or not all(paths):
        return None
    files = [Path(resolve_path(p, base)) for p in paths]
    directory = entry.text("project_directory") if entry is not None else None
    project = Path(resolve_path(directory, base)) if directory else files[0].parent
    if str(files[0]) in chain:
        shown = " -> ".join((*chain[chain.index(str(files[0])):], str(files[0])))
        ctx.problems.error(where, path, f"include cycle: {shown}")
        return None
    if len(chain) >= MAX_CHAIN_DEPTH:
        ctx.problems.error(where, path, f"includes nest at most {MAX_CHAIN_DEPTH} deep")
        return None
    project_env = _project_env(entry, project, base, env, path, where, ctx)
    if project_env is None:
        return None
    return load(files, project, project_env, chain, where, path)


def _project_env(entry: Section | None, project: Path, base: Path, env: Mapping[str, str], path: str,
                 where: Where, ctx: Context) -> dict[str, str] | None:
    """The including environment, then the included project's env files for what it leaves unset."""
    given = entry is not None and "env_file" in entry
    names = entry.str_list("env_file") if entry is not None and given else (".env",)
    result = dict(env)
    for name in names:
        file = Path(resolve_path(name, base if given else project))
        try:
            text = read_named_file(file, ctx.limits.max_file_size)
        except MissingFile as exc:
            if given:
                ctx.problems.error(where, f"{path}.env_file", f"cannot read env file: {exc}")
                return None
            continue
        except NamedFileError as exc:
            ctx.problems.error(where, f"{path}.env_file" if given else path, f"cannot read env file: {exc}")
            return None
        for key, value in parse_env_file(text, str(file), ctx.problems, env).items():
            if value is not None:
                result.setdefault(key, value)
    return result


def _import(included: YMap, into: YMap, path: str, ctx: Context) -> None:
    """Add the included resources to `into`; a name both define is merged, `into`'s on top."""
    for kind in RESOURCES:
        theirs = included.get(kind)
        if not isinstance(theirs, YMap):
            continue
        ours = into.get(kind)
        if ours is None:
            into.put(kind, theirs, included.key_where[kind])
            continue
        if not isinstance(ours, YMap):
            continue  # the reader reports it
        combined = YMap(ours.where)
        for name, value in ours.items():
            tag = ours.tags.get(name)
            if name in theirs and theirs[name] != value and tag is None:
                ctx.problems.warn(f"{kind}.{name}", f"overrides the definition included by {path} (the two are merged, this one on top)")
                if value is None or isinstance(value, YMap) and isinstance(theirs[name], YMap):
                    value = theirs[name] if value is None else merge(theirs[name], value, (kind, name))
            combined.put(name, value, ours.key_where[name], tag)
        for name, value in theirs.items():
            if name not in ours:
                combined.put(name, value, theirs.key_where[name], theirs.tags.get(name))
        into.put(kind, combined, into.key_where[kind], into.tags.get(kind))
