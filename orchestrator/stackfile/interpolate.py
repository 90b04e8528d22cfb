"""`${VAR}` interpolation as compose does it, and `.env` / env_file parsing.

Syntax (compose-spec 12-interpolation.md, compose-go template.go): `$VAR`, `${VAR}`,
`${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}`,
nesting inside defaults (`${A:-${B:-x}}`), `$$` for a literal `$`. Values only, never keys.
An unset variable without a default becomes "" with a warning, as compose does.

The dialect is compose-go's (a default is interpolated like any text; a `$` that starts no
variable, as in `$(date)`, is kept), with one exception taken from docker/cli (`docker stack
deploy`): a default that holds such a `$` (a bcrypt hash `${PW:-$2y$05$...}`) is kept as written
up to the first `}`, with a warning. docs/stackfile.md says why.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.stackfile.problems import Problems, Where, quote
from orchestrator.stackfile.yamlread import YMap, YSeq

_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_OPERATORS = (":?", "?", ":-", "-", ":+", "+")  # compose-go's matching order


class InterpolationError(Exception):
    pass


def interpolate_tree(data: Any, env: Mapping[str, str], path: str, where: Where, problems: Problems) -> Any:
    """A copy of `data` with every string value interpolated; problems name path and line."""
    if isinstance(data, YMap):
        out = YMap(data.where)
        for key, value in data.items():
            key_where = data.key_where[key]
            out.put(key, interpolate_tree(value, env, _join(path, key), key_where, problems), key_where, data.tags.get(key))
        return out
    if isinstance(data, YSeq):
        seq = YSeq(data.where)
        for index, (value, item_where) in enumerate(zip(data, data.item_where, strict=True)):
            seq.add(interpolate_tree(value, env, f"{path}[{index}]", item_where, problems), item_where)
        return seq
    if isinstance(data, str) and "$" in data:
        try:
            data = substitute(
                data,
                env,
                lambda name: problems.warn(path, f"variable {name} is not set, using an empty string"),
                lambda name: problems.warn(
                    path,
                    f"the default of ${{{name}:-...}} holds a '$' that starts no variable: it is kept as written, as docker "
                    "stack deploy keeps it (docker compose would expand its $name parts); write '$$' to say so",
                ),
            )
        except InterpolationError as exc:
            problems.error(where, path, str(exc))
    if isinstance(data, str) and "\x00" in data:  # the engine's strings are C strings
        problems.error(where, path, "must not contain a NUL character")
    return data


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def substitute(
    text: str,
    env: Mapping[str, str],
    on_missing: Callable[[str], None] | None = None,
    on_literal: Callable[[str], None] | None = None,
) -> str:
    """Interpolate one string. Raises InterpolationError for `${VAR:?err}` and bad syntax.
    `on_missing(name)`: an unset variable read as ""; `on_literal(name)`: the argument of
    `${name:-...}` was kept as written (it holds a `$` that is no variable)."""
    return _Expander(text, env, on_missing, on_literal).expand(0, closing=False, dry=False)[0]


#: `${A:-${B:-...}}` nesting: a recursive-descent reader must stop long before Python's recursion limit.
MAX_NESTING = 32


class _Expander:
    """A small recursive-descent reader of one string; `dry` parses an unused default without
    evaluating it (compose evaluates `${A:-${B:?e}}` lazily: no error when A is set)."""

    def __init__(self, text: str, env: Mapping[str, str], on_missing: Callable[[str], None] | None,
                 on_literal: Callable[[str], None] | None = None) -> None:
        self.text, self.env, self.on_missing, self.on_literal = text, env, on_missing, on_literal
        self.depth = 0
        self.loose = False  # a `$` that is no variable was read in the current ${...} argument

    def fail(self, why: str) -> InterpolationError:
        return InterpolationError(f"invalid interpolation format in {quote(self.text)}: {why} (write '$$' for a literal '$')")

    def expand(self, pos: int, closing: bool, dry: bool) -> tuple[str, int]:
        """Expand from `pos` up to the end, or up to the `}` closing a `${...}` when `closing`."""
        text = self.text
        out: list[str] = []
        while pos < len(text):
            char = text[pos]
            if closing and char == "}":
                return "".join(out), pos + 1
            if char != "$":
                out.append(char)
                pos += 1
                continue
            nxt = text[pos + 1 : pos + 2]
            if nxt == "$":
                out.append("$")
                pos += 2
            elif nxt == "{":
                value, pos = self.braced(pos + 2, dry)
                out.append(value)
            else:
                match = _NAME.match(text, pos + 1)
                if match is None:  # `$(`, `$2`, a `$` at the end: kept, as compose-go keeps it
                    out.append("$")
                    self.loose = self.loose or self.depth > 0
                    pos += 1
                    continue
                out.append(self.lookup(match.group(), dry))
                pos = match.end()
        if closing:
            raise self.fail("missing '}'")
        return "".join(out), pos

    def braced(self, pos: int, dry: bool) -> tuple[str, int]:
        match = _NAME.match(self.text, pos)
        if match is None:
            raise self.fail("bad variable name")
        name, pos = match.group(), match.end()
        if self.text[pos : pos + 1] == "}":
            return self.lookup(name, dry), pos + 1
        operator = next((op for op in _OPERATORS if self.text.startswith(op, pos)), None)
        if operator is None:
            raise self.fail(f"unexpected {quote(self.text[pos:pos + 1])} after {name}")
        value = self.env.get(name)
        present = value is not None and (value != "" or not operator.startswith(":"))
        use_arg = present if operator in (":+", "+") else not present
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.fail(f"${{...}} nested deeper than {MAX_NESTING} levels")
        arg, end = self.argument(name, pos + len(operator), dry or not use_arg)
        self.depth -= 1
        if dry:
            return "", end
        if operator in (":?", "?"):
            if not present:
                raise InterpolationError(f"required variable {name} is missing a value" + (f": {arg}" if arg else ""))
            return str(value), end
        if operator in (":+", "+"):
            return (arg if present else ""), end
        return (str(value) if present else arg), end

    def argument(self, name: str, start: int, dry: bool) -> tuple[str, int]:
        """The text after `:-` (or another operator) up to its `}`. Read as compose-go reads it,
        unless it holds a `$` that is no variable (a bcrypt hash `$2y$05$...` in a default):
        then it is kept as written up to the first `}`, as docker stack deploy keeps it, where
        compose-go would expand its `$name` parts (to nothing) and keep the rest."""
        outer, self.loose = self.loose, False
        report = self.on_missing
        missing: list[str] = []
        self.on_missing = missing.append  # reported only if the argument is read as compose-go reads it
        try:
            arg, end = self.expand(start, closing=True, dry=dry)
            if self.loose:
                end = self.text.index("}", start) + 1
                arg, missing = self.text[start : end - 1], []
                if self.on_literal is not None and not dry:
                    self.on_literal(name)
        finally:
            self.loose, self.on_missing = outer, report
        for variable in missing:
            if report is not None:
                report(variable)
        return arg, end

    def lookup(self, name: str, dry: bool) -> str:
        value = self.env.get(name)
        if value is None:
            if self.on_missing is not None and not dry:
                self.on_missing(name)
            return ""
        return value


# --------------------------------------------------------------------------- .env files

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"'}


def parse_env_file(text: str, file: str, problems: Problems, env: Mapping[str, str]) -> dict[str, str | None]:
    """`VAR=VAL` lines (compose's env_file format). A bare `VAR` has no value (None).

    The file may hold secrets (or be a file that should never have been named): a problem names
    the line by its number, never quoting it, and the first one ends the reading (as in compose;
    a file that is not an env file at all would otherwise give one problem per line)."""
    result: dict[str, str | None] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not _NAME.fullmatch(name):
            problems.error((file, number), "", "not a VAR=VALUE line: the variable name is invalid (the line is not shown)")
            break
        if not sep:
            result[name] = None
            continue
        if "\x00" in value:
            problems.error((file, number), name, "the value contains a NUL character (the value is not shown)")
            break
        try:
            result[name] = _env_value(value.strip(), {**env, **{k: v for k, v in result.items() if v is not None}})
        except InterpolationError:
            problems.error(
                (file, number), name,
                "the value cannot be read: an unclosed quote, a bad ${...} or a required variable that is not set (the value is not shown)",
            )
            break
    return result


def _env_value(value: str, env: Mapping[str, str]) -> str:
    if value[:1] == "'":
        end = value.find("'", 1)
        if end < 0:
            raise InterpolationError("unterminated single quote")
        return value[1:end]
    if value[:1] == '"':
        out: list[str] = []
        pos = 1
        while pos < len(value) and value[pos] != '"':
            if value[pos] == "\\" and pos + 1 < len(value):
                out.append(_ESCAPES.get(value[pos + 1], "\\" + value[pos + 1]))
                pos += 2
            else:
                out.append(value[pos])
                pos += 1
        if pos >= len(value):
            raise InterpolationError("unterminated double quote")
        return substitute("".join(out), env)
    comment = value.find(" #")
    if comment >= 0:
        value = value[:comment].rstrip()
    return substitute(value, env)
