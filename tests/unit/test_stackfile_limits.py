"""Limits (issue 12): replicas per service, services per stack, YAML nesting depth and nodes. Over
a limit is a problem with key path and line that names the limit and the setting that raises it;
deep nesting is refused before anything recursive runs (no RecursionError, no traceback)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from orchestrator.cli.main import main
from orchestrator.errors import UserError
from orchestrator.settings import Settings
from orchestrator.stackfile import Limits, StackFileError, load_stack_text
from tests.unit.stackfile_helpers import load, load_error, write

HEAD = "services:\n  web:\n    image: busybox\n"


def load_text(text: str, limits: Limits = Limits()) -> StackFileError:
    with pytest.raises(StackFileError) as info:
        load_stack_text([("stack.yml", text)], Path("/nonexistent"), env={}, name="t", limits=limits)
    return info.value


def only_problem(error: StackFileError) -> tuple[str, int | None, str]:
    assert len(error.problems) == 1, str(error)
    problem = error.problems[0]
    return problem.path, problem.line, problem.message


# --------------------------------------------------------------------------- replicas


@pytest.mark.parametrize(("value", "shown"), [("1e9", "1000000000.0"), (str(10**30), "1e+30"), ("'20000'", "'20000'")])
def test_replicas_over_the_limit_name_the_limit_and_its_setting(tmp_path: Path, value: str, shown: str) -> None:
    error = load_error(tmp_path, HEAD + f"    deploy:\n      replicas: {value}\n")
    assert only_problem(error) == (
        "services.web.deploy.replicas", 5,
        f"{shown} is over the limit of 10000 replicas per service (ORCHESTRATOR_MAX_REPLICAS)",
    )


def test_scale_is_held_to_the_same_limit_and_the_limit_is_a_setting(tmp_path: Path) -> None:
    assert only_problem(load_error(tmp_path, HEAD + "    scale: 10001\n"))[:2] == ("services.web.scale", 4)
    text = HEAD + "    deploy:\n      replicas: 3\n"
    assert only_problem(load_text(text, Limits(max_replicas=2)))[2].endswith("over the limit of 2 replicas per service (ORCHESTRATOR_MAX_REPLICAS)")


# --------------------------------------------------------------------------- services


def test_a_10000_service_file_is_over_the_services_limit() -> None:
    text = "services:\n" + "".join(f"  s{i}:\n    image: busybox\n" for i in range(10_000))
    assert only_problem(load_text(text)) == (
        "services", 1, "10000 is over the limit of 1000 services per stack (ORCHESTRATOR_MAX_SERVICES)")


def test_the_services_limit_counts_x_names_under_services_too() -> None:
    """Under `services:` an `x-` name is a service (compose-go), so it counts."""
    text = "x-top: {}\nservices:\n  x-a:\n    image: busybox\n  web:\n    image: busybox\n"
    assert only_problem(load_text(text, Limits(max_services=1)))[2].startswith("2 is over the limit of 1 services")


def test_a_long_depends_on_chain_is_checked_without_recursion() -> None:
    count = 999
    text = "services:\n" + "".join(f"  s{i}:\n    image: busybox\n    depends_on: [s{i + 1}]\n" for i in range(count))
    text += f"  s{count}:\n    image: busybox\n    depends_on: [s0]\n"
    path, line, message = only_problem(load_text(text))
    assert (path, line) == ("services.s0.depends_on", 4)
    assert message.startswith("dependency cycle: s0 -> s1 -> ") and message.endswith(f"s{count} -> s0")


# --------------------------------------------------------------------------- YAML depth and nodes

DEPTH_NOTE = "nests deeper than the limit of 64 levels of YAML nesting (ORCHESTRATOR_MAX_YAML_DEPTH)"


@pytest.mark.parametrize("depth", [3000, 100_000])
def test_deep_flow_nesting_is_refused_at_the_limit(depth: int) -> None:
    error = load_text(HEAD + "x-deep: " + "[" * depth + "]" * depth + "\n")
    assert only_problem(error) == ("", 4, f"the document {DEPTH_NOTE}")


def test_deep_flow_nesting_without_closing_brackets() -> None:
    assert only_problem(load_text("x: " + "[" * 100_000))[2] == f"the document {DEPTH_NOTE}"


@pytest.mark.parametrize("style", ["mapping", "sequence"])
def test_deep_block_nesting_is_refused_at_the_limit(style: str) -> None:
    if style == "mapping":
        body = "".join(" " * (level + 1) + f"k{level}:\n" for level in range(3000))
    else:
        body = "".join(" " * (level + 1) + "-\n" for level in range(3000))
    error = load_text(HEAD + "x-deep:\n" + body)
    # line 4 holds x-deep (depth 1); 64 levels later the 65th starts on line 4 + 64
    assert only_problem(error) == ("", 68, f"the document {DEPTH_NOTE}")


def test_nesting_at_the_limit_loads() -> None:
    depth = Limits().max_yaml_depth - 1  # the document's own mapping is the first level
    stack = load_stack_text([("s.yml", "x-deep: " + "[" * depth + "]" * depth + "\n" + HEAD)], Path("/x"), env={}, name="t")
    assert list(stack.services) == ["web"]


def test_an_alias_bomb_is_over_the_node_limit() -> None:
    text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in range(1, 8):
        text += f"l{level}: &l{level} [" + ", ".join([f"*{'a' if level == 1 else f'l{level - 1}'}"] * 10) + "]\n"
    assert only_problem(load_text(text + HEAD)) == (
        "", None, "the document, aliases expanded, is over the limit of 2000000 YAML nodes (ORCHESTRATOR_MAX_YAML_NODES) (an alias bomb?)")


def test_config_prints_the_nesting_problem_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "stack.yml", "x: " + "[" * 5000 + "]" * 5000 + "\n" + HEAD)
    assert main(["config", "-c", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert f"{path}:1: the document {DEPTH_NOTE}" in err


def test_config_uses_the_limits_from_the_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "stack.yml", HEAD + "    deploy: {replicas: 3}\n")
    monkeypatch.setenv("ORCHESTRATOR_MAX_REPLICAS", "2")
    assert main(["config", "-c", str(path)]) == 1
    assert "(ORCHESTRATOR_MAX_REPLICAS)" in capsys.readouterr().err


# --------------------------------------------------------------------------- the settings


def test_the_limits_defaults_are_the_settings_defaults() -> None:
    assert Limits.from_settings(Settings()) == Limits()


def test_limits_come_from_the_environment() -> None:
    settings = Settings.from_env({"ORCHESTRATOR_MAX_REPLICAS": "50", "ORCHESTRATOR_DANGEROUS_OPTIONS": "deny"})
    assert Limits.from_settings(settings) == dataclasses.replace(Limits(), max_replicas=50, dangerous_options="deny")


@pytest.mark.parametrize(("variable", "value"), [
    ("ORCHESTRATOR_MAX_REPLICAS", "0"),
    ("ORCHESTRATOR_MAX_YAML_DEPTH", "5000"),
    ("ORCHESTRATOR_MAX_FILE_SIZE", "-1"),
    ("ORCHESTRATOR_DANGEROUS_OPTIONS", "allow"),
])
def test_a_limit_setting_out_of_its_range_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(UserError, match=f"{variable}="):
        Settings.from_env({variable: value})


def test_a_stack_within_every_limit_loads(tmp_path: Path) -> None:
    stack = load(tmp_path, HEAD + "    deploy: {replicas: 10000}\n")
    assert stack.services["web"].replicas == 10_000
