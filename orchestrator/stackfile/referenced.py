"""The other files a stack file brings in: its `include:` entries and the `file:` of its services'
`extends:`, and theirs in turn, as the loader will find them (each path relative to the file that
names it, `${VAR}` in a path interpolated from `env`), and the env files whose values it
interpolates.

The CLI sends the daemon only the variables the stack interpolates (cli_commands.referenced_env),
and the daemon reads included and extended files itself, from the deploy's directory: so the CLI
must look into those files too for the variables they use. A file that cannot be read or parsed
is skipped here: the daemon's loader reports it, with its place, when it gets there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.stackfile.interpolate import InterpolationError, substitute
from orchestrator.stackfile.problems import Problems
from orchestrator.stackfile.reader import resolve_path
from orchestrator.stackfile.yamlread import read_documents

#: Files looked at in all, the named ones included: a bound for a fan-out (a cycle stops at `seen`).
MAX_FILES = 200
#: Bytes read of one brought-in file (a stack file, not a data file).
MAX_BYTES = 4 * 1024 * 1024


def brought_in(files: Sequence[tuple[str, str]], env: Mapping[str, str]) -> list[tuple[str, str]]:
    """(path, text) of every file the `files` (path, text) include or extend from, recursively,
    and of the env files whose values they interpolate (`.env` beside the first file and in each
    included project's directory, an include's and a service's `env_file`), each once, without
    the `files` themselves."""
    seen = {Path(path).resolve() for path, _ in files}
    queue = [(Path(path).resolve(), text) for path, text in files]
    found: list[tuple[str, str]] = []
    if queue:
        _add(queue[0][0].parent / ".env", False, seen, found, queue)
    while queue:
        path, text = queue.pop(0)
        for named, stack_file in _named_paths(text, str(path), env):
            target = Path(resolve_path(named, path.parent)).resolve()
            _add(target, stack_file, seen, found, queue)
            if stack_file:  # an included project's own .env (or a base file's: harmless)
                _add(target.parent / ".env", False, seen, found, queue)
    return found


def _add(path: Path, stack_file: bool, seen: set[Path], found: list[tuple[str, str]],
         queue: list[tuple[Path, str]]) -> None:
    if path in seen or len(seen) >= MAX_FILES:
        return
    seen.add(path)
    text = _read(path)
    if text is not None:
        found.append((str(path), text))
        if stack_file:
            queue.append((path, text))


def _read(path: Path) -> str | None:
    try:
        if not path.is_file():
            return None
        with path.open("rb") as file:
            raw = file.read(MAX_BYTES + 1)
        return None if len(raw) > MAX_BYTES else raw.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _named_paths(text: str, file: str, env: Mapping[str, str]) -> Iterator[tuple[str, bool]]:
    """(path as written, interpolated; whether it is a stack file rather than an env file)."""
    for document in read_documents(text, file, Problems()) or ():
        for raw, stack_file in _raw_paths(document):
            try:
                path = substitute(raw, env)
            except InterpolationError:
                continue
            if path:
                yield path, stack_file


def _strings(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _raw_paths(document: Mapping[str, Any]) -> Iterator[tuple[str, bool]]:
    include = document.get("include")
    for entry in include if isinstance(include, list) else ():
        if isinstance(entry, str):
            yield entry, True
        elif isinstance(entry, Mapping):
            yield from ((path, True) for path in _strings(entry.get("path")))
            yield from ((path, False) for path in _strings(entry.get("env_file")))
    services = document.get("services")
    for service in services.values() if isinstance(services, Mapping) else ():
        if not isinstance(service, Mapping):
            continue
        extends = service.get("extends")
        if isinstance(extends, Mapping) and isinstance(extends.get("file"), str):
            yield extends["file"], True
        env_files = service.get("env_file")
        for item in env_files if isinstance(env_files, list) else [env_files]:
            path = item.get("path") if isinstance(item, Mapping) else item
            if isinstance(path, str):
                yield path, False
