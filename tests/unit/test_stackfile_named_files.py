"""Files a stack names (issue 12): env_file, `.env`, secret/config `file:`. Only regular files,
never under /proc, /sys or /dev (symlinks followed), bounded in size, contents never quoted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.stackfile import Limits, StackFileError, load_stack_text
from orchestrator.stackfile.files import NamedFileError, read_named_file
from tests.unit.stackfile_helpers import load, load_error

HEAD = "services:\n  web:\n    image: busybox\n"
SHADOW = "alice:$6$Sx1TQZRo$3Ts2vSi6rGuL1xEXAMPLEHASHe3Q8m0:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"


def env_file_problem(tmp_path: Path, target: str | Path) -> str:
    error = load_error(tmp_path, HEAD + f"    env_file: {target}\n")
    problems = [p for p in error.problems if p.path == "services.web.env_file" and p.line == 4]
    assert problems, str(error)
    return problems[0].message


@pytest.mark.parametrize(("target", "why"), [
    pytest.param("/proc/self/environ", "is under /proc, /sys, /dev", id="proc-self-environ"),
    pytest.param("/dev/zero", "not a regular file (a character device)", id="dev-zero"),
    pytest.param("/etc", "not a regular file (a directory)", id="directory"),
    pytest.param("/sys/kernel/mm/transparent_hugepage/enabled", "is under /proc, /sys, /dev", id="sys"),
])
def test_env_file_that_is_not_a_plain_file_is_refused(tmp_path: Path, target: str, why: str) -> None:
    if not os.path.exists(target):
        pytest.skip(f"{target} does not exist here")
    assert why in env_file_problem(tmp_path, target)


def test_env_file_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.env")  # opening it to read would wait for a writer forever
    assert "not a regular file (a FIFO)" in env_file_problem(tmp_path, "pipe.env")


def test_env_file_symlink_into_proc_is_refused(tmp_path: Path) -> None:
    (tmp_path / "innocent.env").symlink_to("/proc/self/environ")
    assert "is under /proc, /sys, /dev" in env_file_problem(tmp_path, "innocent.env")


def test_env_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    (tmp_path / "big.env").write_text("A=" + "x" * 2000 + "\n")
    with pytest.raises(StackFileError) as info:
        load_stack_text([("stack.yml", HEAD + "    env_file: big.env\n")], tmp_path, env={}, name="t",
                        limits=Limits(max_file_size=1000))
    assert info.value.problems[0].message.endswith(
        "is larger than 1000 bytes (ORCHESTRATOR_MAX_FILE_SIZE raises the limit)")


def test_a_read_stops_one_byte_past_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("A=1\n")
    assert read_named_file(path, 4) == "A=1\n"
    with pytest.raises(NamedFileError, match="larger than 3 bytes"):
        read_named_file(path, 3)


def test_env_file_contents_are_never_quoted(tmp_path: Path) -> None:
    (tmp_path / "shadow").write_text(SHADOW)
    error = load_error(tmp_path, HEAD + "    env_file: shadow\n")
    assert [(p.file, p.line) for p in error.problems] == [(str(tmp_path / "shadow"), 1)]  # the first bad line ends it
    for secret in ("alice", "$6$", "Sx1TQZRo", "daemon", "19000"):
        assert secret not in str(error)


@pytest.mark.parametrize("line", ["A='unterminated", "A=${X:?the secret is hunter2}", "A=x\x00y"])
def test_env_file_value_problems_do_not_show_the_value(tmp_path: Path, line: str) -> None:
    (tmp_path / "app.env").write_text(f"OK=1\n{line}\n")
    error = load_error(tmp_path, HEAD + "    env_file: app.env\n")
    assert [(p.path, p.line) for p in error.problems] == [("A", 2)]
    assert "not shown" in str(error)
    for secret in ("unterminated", "hunter2", "x\x00y"):
        assert secret not in str(error)


def test_an_environment_entry_without_a_name_does_not_show_its_value(tmp_path: Path) -> None:
    error = load_error(tmp_path, HEAD + "    environment: ['=hunter2']\n")
    assert [(p.path, p.line) for p in error.problems] == [("services.web.environment[0]", 4)]
    assert "hunter2" not in str(error)


def test_optional_env_file_may_be_missing_but_not_a_fifo(tmp_path: Path) -> None:
    optional = HEAD + "    env_file:\n      - {path: missing.env, required: false}\n"
    assert load(tmp_path, optional).services["web"].environment == {}
    os.mkfifo(tmp_path / "pipe.env")
    error = load_error(tmp_path, HEAD + "    env_file:\n      - {path: pipe.env, required: false}\n")
    assert "a FIFO" in error.problems[0].message


def test_dotenv_must_be_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / ".env")
    error = load_error(tmp_path, HEAD)
    assert [(p.file, p.message) for p in error.problems] == [
        (str(tmp_path / ".env"), f"cannot read the file: {tmp_path / '.env'} is not a regular file (a FIFO)")]


@pytest.mark.parametrize(("target", "why"), [
    pytest.param("/proc/self/environ", "is under /proc, /sys, /dev", id="proc"),
    pytest.param("/dev/null", "a character device", id="device"),
    pytest.param("./dir", "a directory", id="directory"),
    pytest.param("./pipe", "a FIFO", id="fifo"),
    pytest.param("./big", "larger than 1048576 bytes", id="too-big"),
    pytest.param("./missing", "does not exist", id="missing"),
])
def test_secret_and_config_files_are_checked_like_env_files(tmp_path: Path, target: str, why: str) -> None:
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "pipe")
    with open(tmp_path / "big", "wb") as big:
        big.truncate((1 << 20) + 1)
    for kind in ("secrets", "configs"):
        error = load_error(tmp_path, HEAD + f"{kind}:\n  s:\n    file: {target}\n", deploying=True)
        assert [(p.path, p.line) for p in error.problems] == [(f"{kind}.s.file", 6)]
        assert why in error.problems[0].message


def test_a_missing_secret_file_or_variable_is_a_warning_until_deployed(tmp_path: Path) -> None:
    """As compose-go: `orchestrator config` loads a checkout whose secret files are generated
    later; the daemon's deploy (`deploying=True`) refuses it, at the key path."""
    text = HEAD + "    secrets: [s, e]\nsecrets:\n  s:\n    file: ./generated.txt\n  e:\n    environment: TOKEN\n"
    stack = load(tmp_path, text)
    assert stack.secrets["s"].file == str(tmp_path / "generated.txt")
    assert stack.warnings == (
        f"secrets.s.file: file {tmp_path / 'generated.txt'} does not exist: deploying this stack fails until it is there",
        "secrets.e.environment: environment variable TOKEN is not set: deploying this stack fails until it is there",
    )
    error = load_error(tmp_path, text, deploying=True)
    assert [(p.path, p.line, p.message) for p in error.problems] == [
        ("secrets.s.file", 7, f"file {tmp_path / 'generated.txt'} does not exist"),
        ("secrets.e.environment", 9, "environment variable TOKEN is not set"),
    ]
    (tmp_path / "generated.txt").write_text("x")
    assert load(tmp_path, text, {"TOKEN": "t"}, deploying=True).secrets["e"].content == "t"
