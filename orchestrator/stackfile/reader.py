"""Typed reading of one mapping of a stack file: every getter checks the type, converts, and on a
mistake records a problem that names the key path and line, then returns a default so that the
rest of the file is still checked."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.model.ranges import MAX_COUNT
from orchestrator.stackfile import spec_schema, units, values
from orchestrator.stackfile.limits import Limits
from orchestrator.stackfile.problems import Problems, Where, quote
from orchestrator.stackfile.yamlread import YMap, YSeq, where_of

T = TypeVar("T")
_TRUE = {"true", "yes", "y", "on", "1"}
_FALSE = {"false", "no", "n", "off", "0"}


@dataclass(frozen=True, slots=True)
class Context:
    problems: Problems
    base_dir: Path
    env: Mapping[str, str]
    stack: str
    limits: Limits = Limits()
    #: Files read through include/extends -> the directory their relative paths resolve against.
    base_dirs: dict[str, Path] = field(default_factory=dict)
    #: Loaded for a deploy: what only a deploy needs (a secret's file exists) is checked too.
    deploying: bool = False

    def base_for(self, where: Where) -> Path:
        """Where relative paths written at `where` resolve: the project directory for the files
        given, an included project's directory, an extended file's own directory."""
        return self.base_dirs.get(where[0], self.base_dir)

    def deploy_only(self, where: Where, path: str, message: str, *, until_there: bool = False) -> None:
        """A problem only a deploy has, as compose-go sees it: an error when deploying; before, a
        warning, so that `orchestrator config` reads every file `docker compose config` reads.
        What this engine cannot run (a provider service, an image mount, a Windows path), or
        what may be made later (`until_there`: a secret's file, a variable)."""
        if self.deploying:
            self.problems.error(where, path, message)
        else:
            self.problems.warn(path, f"{message}: deploying this stack fails" + (" until it is there" if until_there else ""))

    def dangerous(self, where: Where, path: str, what: str) -> None:
        """A dangerous option (stackfile/dangerous.py): a warning, or refused under `deny`."""
        if self.limits.dangerous_options == "deny":
            self.problems.error(where, path, f"dangerous option refused: {what} (ORCHESTRATOR_DANGEROUS_OPTIONS=deny)")
        else:
            self.problems.warn(path, f"dangerous option: {what}")


def type_name(value: Any) -> str:
    if isinstance(value, YMap):
        return "a mapping"
    if isinstance(value, YSeq):
        return "a list"
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string"}.get(type(value), type(value).__name__)


class Section:
    def __init__(self, data: YMap, path: str, ctx: Context, at: Where | None = None) -> None:
        self.data = data
        self.path = path
        self.ctx = ctx
        self.at = at or data.where  # where the mapping's own key is: problems with it point there

    # ----------------------------------------------------------------- places and problems
    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def where(self, key: str | None = None) -> Where:
        if key is not None and key in self.data.key_where:
            return self.data.key_where[key]
        return self.at

    def error(self, key: str | None, message: str, where: Where | None = None) -> None:
        path = self.key_path(key) if key is not None else self.path
        self.ctx.problems.error(where or self.where(key), path, message)

    def warn(self, key: str, message: str) -> None:
        self.ctx.problems.warn(self.key_path(key), message)

    def deploy_only(self, key: str | None, message: str, *, until_there: bool = False) -> None:
        """`Context.deploy_only` at `key`."""
        path = self.key_path(key) if key is not None else self.path
        self.ctx.deploy_only(self.where(key), path, message, until_there=until_there)

    def check_keys(self, allowed: Iterable[str], ignored: Mapping[str, str] | None = None) -> None:
        """Unknown keys are errors; `ignored` keys are valid but have no effect here (warned),
        and their values must still be what the compose-spec's schema allows."""
        allowed = set(allowed)
        ignored = ignored or {}
        for key in self.data:
            if key.startswith("x-") or key in allowed:
                continue
            if key in ignored:
                self.warn(key, ignored[key])
                for where, path, message in spec_schema.problems_of(self.key_path(key), self.data[key], self.where(key)):
                    self.ctx.problems.error(where, path, message)
            else:
                self.error(key, f"unknown key {quote(key)}" + _suggest(key, allowed | set(ignored)))

    def __contains__(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(self.data.items())

    # ----------------------------------------------------------------- typed getters
    def _convert(self, key: str, default: T, convert: Callable[[Any], T]) -> T:
        value = self.data.get(key)
        if value is None:
            return default
        try:
            return convert(value)
        except ValueError as exc:
            self.error(key, str(exc))
            return default

    def text(self, key: str, default: Any = None) -> Any:
        return self._convert(key, default, to_str)

    def integer(self, key: str, default: Any = None, minimum: int = 0, maximum: int | None = MAX_COUNT) -> Any:
        return self._convert(key, default, lambda v: to_int(v, minimum, maximum))

    def number(self, key: str, default: Any = None) -> Any:
        return self._convert(key, default, to_float)

    def checked(self, key: str, check: Callable[[str], str], default: Any = None) -> Any:
        """A string that must pass one of the engine's rules (stackfile/values.py)."""
        return self._convert(key, default, lambda v: check(to_str(v)))

    def flag(self, key: str, default: Any = None) -> Any:
        return self._convert(key, default, to_bool)

    def duration(self, key: str, default: Any = None) -> Any:
        return self._convert(key, default, units.parse_duration)

    def size(self, key: str, default: Any = None) -> Any:
        return self._convert(key, default, units.parse_bytes)

    def cpus(self, key: str, default: Any = None) -> Any:
        return self._convert(key, default, units.parse_cpus)

    def mode(self, key: str) -> Any:
        return self._convert(key, None, units.parse_mode)

    def choice(self, key: str, choices: Iterable[str], default: Any = None) -> Any:
        options = tuple(choices)

        def check(value: Any) -> str:
            text = to_str(value)
            if text not in options:
                raise ValueError(f"{quote(text)} is not one of {', '.join(options)}")
            return text

        return self._convert(key, default, check)

    def section(self, key: str) -> Section | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, YMap):
            self.error(key, f"must be a mapping, not {type_name(value)}")
            return None
        return Section(value, self.key_path(key), self.ctx, self.where(key))

    def seq(self, key: str, allow_string: bool = False) -> list[tuple[Any, str, Where]]:
        """Items of a list as (value, path, where); a lone string counts as a one-item list."""
        value = self.data.get(key)
        if value is None:
            return []
        if allow_string and isinstance(value, str):
            return [(value, self.key_path(key), self.where(key))]
        if not isinstance(value, YSeq):
            self.error(key, f"must be a list, not {type_name(value)}")
            return []
        path = self.key_path(key)
        return [(item, f"{path}[{i}]", w) for i, (item, w) in enumerate(zip(value, value.item_where, strict=True))]

    def str_list(self, key: str, allow_string: bool = True, check: Callable[[str], str] | None = None) -> tuple[str, ...]:
        """Strings of a list; with `check`, each must pass it (an item that fails is reported and left out)."""
        out = []
        for item, path, where in self.seq(key, allow_string):
            if isinstance(item, (YMap, YSeq)) or item is None:
                self.ctx.problems.error(where, path, f"must be a string, not {type_name(item)}")
                continue
            try:
                out.append(check(to_str(item)) if check else to_str(item))
            except ValueError as exc:
                self.ctx.problems.error(where, path, str(exc))
        return tuple(out)

    def mapping(self, key: str, separator: str = "=", allow_none: bool = True) -> dict[str, str | None]:
        """A map, or a list of `name=value` strings (compose's two forms for labels, env, ...)."""
        value = self.data.get(key)
        out: dict[str, str | None] = {}
        if value is None:
            return out
        if isinstance(value, YMap):
            for name, item in value.items():
                if isinstance(item, (YMap, YSeq)):
                    self.ctx.problems.error(value.key_where[name], f"{self.key_path(key)}.{name}", f"must be a string, not {type_name(item)}")
                elif item is None and not allow_none:
                    self.ctx.problems.error(value.key_where[name], f"{self.key_path(key)}.{name}", "must have a value")
                else:
                    out[name] = None if item is None else to_str(item)
            return out
        for item, path, where in self.seq(key):
            if not isinstance(item, str):
                self.ctx.problems.error(where, path, f"must be a 'name{separator}value' string, not {type_name(item)}")
                continue
            name, sep, rest = item.partition(separator)
            if not name.strip():
                self.ctx.problems.error(where, path, f"an entry has no name before '{separator}'")
            elif not sep and not allow_none:
                self.ctx.problems.error(where, path, f"{quote(item)} must be 'name{separator}value'")
            else:
                out[name.strip()] = rest if sep else None
        return out


def labels(section: Section, key: str) -> dict[str, str]:
    """Labels (and other name -> text maps the engine stores): keys by the label-key rule, a
    name without a value is ""."""
    result = {}
    for name, value in section.mapping(key).items():
        try:
            result[values.label_key(name)] = value or ""
        except ValueError as exc:
            section.error(key, str(exc))
    return result


def resolve_path(text: str, base_dir: Path) -> str:
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else (base_dir / path).resolve(strict=False))


def sub_section(value: Any, path: str, where: Where, ctx: Context, what: str = "a mapping") -> Section | None:
    if not isinstance(value, YMap):
        ctx.problems.error(where_of(value, where), path, f"must be {what}, not {type_name(value)}")
        return None
    return Section(value, path, ctx, where)


def to_str(value: Any) -> str:
    if isinstance(value, (YMap, YSeq)):
        raise ValueError(f"must be a string, not {type_name(value)}")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_int(value: Any, minimum: int = 0, maximum: int | None = MAX_COUNT) -> int:
    """An integer from minimum to maximum (a float must be whole: `1e9` is 1000000000). No
    maximum only where the caller checks a limit of its own."""
    if isinstance(value, bool) or isinstance(value, (YMap, YSeq)):
        raise ValueError(f"must be an integer, not {type_name(value)}")
    if isinstance(value, float):
        if not value.is_integer():  # NaN and infinities too
            raise ValueError(f"must be an integer, not {value}")
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:  # also a decimal of over 4,300 digits
            raise ValueError(f"must be an integer, not {quote(value)}") from None
    if value < minimum:
        raise ValueError(f"must be at least {minimum}, not {quote(value)}")
    if maximum is not None and value > maximum:
        raise ValueError(f"must be at most {maximum}, not {quote(value)}")
    return int(value)


def to_float(value: Any) -> float:
    """A finite number."""
    if isinstance(value, bool) or isinstance(value, (YMap, YSeq)):
        raise ValueError(f"must be a number, not {type_name(value)}")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise ValueError(f"must be a number, not {quote(value)}") from None
    if not math.isfinite(number):
        raise ValueError(f"must be a finite number, not {quote(value)}")
    return number


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise ValueError(f"must be true or false, not {quote(value)}")


def _suggest(key: str, known: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
