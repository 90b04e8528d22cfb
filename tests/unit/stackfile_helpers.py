"""Helpers shared by the stackfile tests: write YAML into tmp_path and load it."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from orchestrator.model.spec import StackSpec
from orchestrator.stackfile import Problem, StackFileError, load_stack


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load(directory: Path, text: str, env: Mapping[str, str] | None = None, deploying: bool = False, **files: str) -> StackSpec:
    """Load `text` as stack.yml in `directory` (beside any extra files given by name), as
    `orchestrator config` does, or as a deploy does (`deploying`)."""
    for name, content in files.items():
        write(directory, name.replace("__", "."), content)
    return load_stack(write(directory, "stack.yml", text), env=env or {}, name="test", deploying=deploying)


def load_error(directory: Path, text: str, env: Mapping[str, str] | None = None, deploying: bool = False) -> StackFileError:
    with pytest.raises(StackFileError) as info:
        load(directory, text, env, deploying)
    return info.value


def problem_at(error: StackFileError, path: str, line: int, message: str) -> Problem:
    """The problem at `path` and `line` (asserting there is one, that it says `message`, and
    that the error's text shows it in the stack file)."""
    matching = [p for p in error.problems if p.path == path and p.line == line]
    assert matching, f"no problem at {path}:{line} in:\n{error}"
    assert message in matching[0].message, matching[0].message
    assert matching[0].file.endswith("stack.yml")
    assert f"stack.yml:{line}: " in str(error)
    return matching[0]
