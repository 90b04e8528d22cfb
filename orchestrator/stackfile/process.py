"""What a service's processes run with: the environment (env_files, then `environment:`), ulimits
and sysctls. Environment values may be secrets: no problem ever quotes one."""

from __future__ import annotations

from pathlib import Path

from orchestrator.model.ranges import INT64_MAX
from orchestrator.model.spec import Ulimit
from orchestrator.stackfile import values
from orchestrator.stackfile.dangerous import host_path_note
from orchestrator.stackfile.files import MissingFile, NamedFileError, read_named_file
from orchestrator.stackfile.interpolate import parse_env_file
from orchestrator.stackfile.problems import quote
from orchestrator.stackfile.reader import Section, resolve_path, type_name
from orchestrator.stackfile.yamlread import YMap, YSeq


def read_environment(section: Section) -> dict[str, str | None]:
    """env_file values first (in order), then `environment:` wins. A name without a value takes
    it from the loading environment, as compose does, else stays None. Values are never quoted
    in a problem: they are secrets as far as messages go."""
    ctx = section.ctx
    merged: dict[str, str | None] = {}
    for item, path, where in section.seq("env_file", allow_string=True):
        file, required = item, True
        if isinstance(item, YMap):
            entry = Section(item, path, ctx, where)
            entry.check_keys(("path", "required", "format"))
            file, required = entry.text("path"), entry.flag("required", True)
        if not isinstance(file, str) or not file:
            ctx.problems.error(where, path, f"must be a file path, not {type_name(file)}")
            continue
        full = Path(resolve_path(file, ctx.base_for(where)))
        try:
            text = read_named_file(full, ctx.limits.max_file_size)
        except MissingFile as exc:
            if required:
                ctx.problems.error(where, path, f"cannot read env file: {exc}")
            continue
        except NamedFileError as exc:
            ctx.problems.error(where, path, f"cannot read env file: {exc}")
            continue
        note = host_path_note(str(full))
        if note:
            ctx.dangerous(where, path, f"reads {note} into the environment")
        merged.update(parse_env_file(text, str(full), ctx.problems, ctx.env))
    if isinstance(section.raw("environment"), YSeq):
        for item, path, where in section.seq("environment"):
            name = item.partition("=")[0] if isinstance(item, str) else ""
            if name[-1:].isspace():  # compose-go refuses `- DEBUG = true` ("declared with a trailing space")
                ctx.problems.error(where, path, f"the variable name {quote(name)} ends with a space: write NAME=value, without spaces around '='")
    for name, value in section.mapping("environment").items():
        try:
            merged[values.env_name(name)] = value
        except ValueError as exc:
            section.error("environment", str(exc))
    return {k: ctx.env.get(k) if v is None else v for k, v in merged.items()}


def read_sysctls(section: Section) -> dict[str, str]:
    result = {}
    for name, value in section.mapping("sysctls").items():
        try:
            result[values.sysctl_name(name)] = values.plain(value or "", "sysctl value")
        except ValueError as exc:
            section.error("sysctls", str(exc))
    return result


def read_ulimits(section: Section | None) -> tuple[Ulimit, ...]:
    """Each ulimit is one number or soft/hard, from -1 (unlimited) to int64; soft <= hard."""
    if section is None:
        return ()
    limits = []
    for name, value in section.items():
        try:
            values.ulimit_name(name)
        except ValueError as exc:
            section.error(name, str(exc))
            continue
        if isinstance(value, YMap):
            entry = Section(value, section.key_path(name), section.ctx, section.where(name))
            entry.check_keys(("soft", "hard"))
            soft = entry.integer("soft", None, minimum=-1, maximum=INT64_MAX)
            hard = entry.integer("hard", None, minimum=-1, maximum=INT64_MAX)
            if soft is None or hard is None:
                if "soft" not in entry or "hard" not in entry:
                    entry.error(None, "needs both soft and hard")
                continue
            if _unlimited_last(soft) > _unlimited_last(hard):
                entry.error("soft", f"soft limit {soft} is above the hard limit {hard} (-1 is unlimited)")
            limits.append(Ulimit(name, soft, hard))
        else:
            single = section.integer(name, None, minimum=-1, maximum=INT64_MAX)
            if single is not None:
                limits.append(Ulimit(name, single, single))
    return tuple(limits)


def _unlimited_last(limit: int) -> float:
    return float("inf") if limit == -1 else limit
