"""`orchestrator config` prints a compose file that loads again to the same stack: over every
valid case of the rule table and every whole file the tests use."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from orchestrator.cli.main import main
from orchestrator.model.spec import StackSpec
from orchestrator.stackfile import dump, load_stack, load_stack_text, stack_to_compose
from tests.unit.test_stackfile_table import ENV, VALID

ROOT = Path(__file__).resolve().parents[2]
FILES = [
    pytest.param(ROOT / "stacks" / "getting-started.yml", {}, id="getting-started"),
    pytest.param(ROOT / "tests" / "unit" / "fixtures" / "voting-app.yml", {}, id="voting-app"),
    pytest.param(ROOT / "tests" / "unit" / "fixtures" / "wordpress.yml", {"WP_PORT": "8080"}, id="wordpress"),
    pytest.param(ROOT / "tests" / "unit" / "fixtures" / "monitoring.yml", {}, id="monitoring"),
]


def reloaded(stack: StackSpec, fmt: str, directory: Path, env: dict[str, str]) -> StackSpec:
    text = dump(stack_to_compose(stack), fmt)
    return load_stack_text([("config.yml", text)], directory, env=env, name=stack.name)


def same(stack: StackSpec) -> StackSpec:
    return dataclasses.replace(stack, warnings=())


@pytest.mark.parametrize("fmt", ["yaml", "json"])
@pytest.mark.parametrize(("text", "get", "expected"), VALID)
def test_every_valid_table_case_round_trips(tmp_path: Path, text: str, get: object, expected: object, fmt: str) -> None:
    (tmp_path / "s.txt").write_text("secret")
    path = tmp_path / "stack.yml"
    path.write_text(text)
    stack = load_stack(path, env=ENV, name="test")
    assert same(reloaded(stack, fmt, tmp_path, ENV)) == same(stack)


@pytest.mark.parametrize(("path", "env"), FILES)
def test_every_fixture_file_round_trips(tmp_path: Path, path: Path, env: dict[str, str]) -> None:
    stack = load_stack(path, env=env)
    assert same(reloaded(stack, "yaml", tmp_path, env)) == same(stack)


def test_the_config_command_output_loads_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Through the command itself, with what a value must survive: `$`, a secret from the
    environment (named, not shown), a relative path made absolute."""
    (tmp_path / "stack.yml").write_text(
        "services:\n  web:\n    image: busybox\n    command: echo $$HOME ${GREETING}\n    volumes: ['./data:/data']\n"
        "    secrets: [token]\nsecrets:\n  token:\n    environment: TOKEN\n"
    )
    env = {"GREETING": "hi", "TOKEN": "hunter2"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        assert main(["config", "-c", str(tmp_path / "stack.yml"), "shop"]) == 0
        out = capsys.readouterr().out
        assert "hunter2" not in out and "environment: TOKEN" in out
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "config.yml").write_text(out)
        again = load_stack(tmp_path / "out" / "config.yml")
    first = load_stack(tmp_path / "stack.yml", env=env, name="shop")
    assert first.services["web"].command == ("echo", "$HOME", "hi")
    assert same(again) == same(first)
