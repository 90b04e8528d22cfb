"""The CLI's client commands, run through `cli.main([...])` against the real app over a fake
Control; and the table formatting."""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.cli import tables
from orchestrator.cli.main import main
from orchestrator.cli.commands import referenced_env
from orchestrator.cli.client import Client
from orchestrator.errors import UserError
from orchestrator.views import LogLine
from orchestrator.settings import Settings
from orchestrator.stackfile.referenced import brought_in
from tests.unit.conftest import STACK_YAML
from tests.unit.threaded_server import Served, serve_in_thread


@pytest.fixture(autouse=True)
def _own_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never the machine's own daemon: its socket and token file are not the test's."""
    monkeypatch.setenv("ORCHESTRATOR_STATE_DIR", str(tmp_path / "state"))
    for name in ("ORCHESTRATOR_HOST", "ORCHESTRATOR_TOKEN", "ORCHESTRATOR_SOCKET"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(name="served")
def _served(monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    with serve_in_thread() as served:
        monkeypatch.setenv("ORCHESTRATOR_HOST", served.url)
        monkeypatch.setenv("ORCHESTRATOR_TOKEN", served.token)
        yield served


@pytest.fixture(name="stack_file")
def _stack_file(tmp_path: Path) -> Path:
    path = tmp_path / "stack.yml"
    path.write_text(STACK_YAML)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_deploy_then_list(served: Served, stack_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "deploy", "-c", str(stack_file), "shop")
    assert (code, out) == (0, "Creating service shop_web\nCreating service shop_worker\n")
    assert run(capsys, "deploy", "-c", str(stack_file), "shop")[1] == "Stack shop is up to date\n"
    code, out, _ = run(capsys, "ls")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["NAME", "SERVICES", "REPLICAS", "DEPLOYED"]
    assert row.split()[:3] == ["shop", "2", "3/3"]
    code, out, _ = run(capsys, "ls", "--format", "json")
    assert [s["name"] for s in json.loads(out)] == ["shop"]


def test_deploy_sends_only_the_referenced_environment(
        served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.yml"
    path.write_text("services:\n  web:\n    image: ${IMAGE}\n")
    monkeypatch.setenv("IMAGE", "nginx:1")
    assert run(capsys, "deploy", "-c", str(path), "shop")[0] == 0
    assert served.control.specs["shop"].services["web"].image == "nginx:1"
    assert referenced_env([("f", "a: ${A:-x} $B $$C ${D}")], {"A": "1", "B": "2", "C": "3", "SECRET": "s"}) \
        == {"A": "1", "B": "2"}


def test_deploy_wait_prints_progress_until_converged(
        served: Served, stack_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "deploy", "-c", str(stack_file), "shop", "--wait", "--timeout", "5",
                       "--stable", "0.2")
    assert code == 0
    assert out.splitlines()[-4:] == ["web: 2/2", "worker: 1/1", "verifying for 0.2 s that the replicas stay up",
                                     "Stack shop converged"]


def test_deploy_wait_starts_over_when_a_replica_falls_during_the_check(
        served: Served, stack_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A crash right after the start is not convergence: the check begins again."""
    served.control.running_sequence["web"] = [2, 1, 2]  # polled every 0.5 s; the check lasts 0.6 s
    code, out, _ = run(capsys, "deploy", "-c", str(stack_file), "shop", "--wait", "--timeout", "5",
                       "--stable", "0.6")
    assert code == 0
    assert out.splitlines()[2:] == [
        "web: 2/2", "worker: 1/1", "verifying for 0.6 s that the replicas stay up",
        "web: 1/2", "web: 2/2", "verifying for 0.6 s that the replicas stay up", "Stack shop converged"]


def test_bad_stack_file_lists_each_problem(served: Served, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("services:\n  web:\n    image: x\n    bogus: 1\n")
    code, out, err = run(capsys, "deploy", "-c", str(path), "shop")
    assert (code, out) == (1, "")
    assert err.splitlines()[0] == "error: 1 problem(s) in the stack file:"
    assert err.splitlines()[1].startswith(f"  {path}:4: services.web.bogus: unknown key 'bogus'")
    assert "Traceback" not in err


def test_services_and_ps_tables(served: Served, stack_file: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "deploy", "-c", str(stack_file), "shop")
    code, out, _ = run(capsys, "services", "shop")
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]
    assert lines[1].split() == ["abc123def456", "shop_web", "replicated", "2/2", "busybox"]
    code, out, _ = run(capsys, "ps", "shop", "--all")
    lines = out.splitlines()
    assert lines[0].startswith("ID ")
    assert re.search(r"Running \d+ seconds ago", lines[1])
    assert " \\_ shop_web.1" in lines[2] and '"task: non-zero exit (1)"' in lines[2]
    assert len(lines) == 7
    assert len(json.loads(run(capsys, "ps", "shop", "--format", "json")[1])) == 3


def test_scale_rm_rollback_and_logs(served: Served, stack_file: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "deploy", "-c", str(stack_file), "shop")
    assert run(capsys, "scale", "shop", "web=4")[1] == "shop_web scaled to 4\n"
    assert served.control.counts["shop"]["web"] == 4
    served.control.log_lines = [LogLine(1, "t01web", "stdout", "hi"), LogLine(2, "t02web", "stderr", "bad")]
    code, out, err = run(capsys, "logs", "shop", "web", "--tail", "5")
    assert (code, out, err) == (0, "shop_web.1.t01web | hi\n", "shop_web.2.t02web | bad\n")
    code, _, err = run(capsys, "rollback", "shop", "web")
    assert code == 1 and "no previous spec" in err
    assert run(capsys, "rm", "shop", "--volumes")[0] == 0
    assert served.control.removed_volumes == ["shop"]
    code, _, err = run(capsys, "services", "shop")
    assert (code, err) == (1, "error: no such stack: shop\n")


def test_rm_still_in_progress_says_so_and_ls_shows_why(
        served: Served, stack_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "deploy", "-c", str(stack_file), "shop")
    served.control.refusing_removal["shop"] = "device or resource busy"
    code, out, _ = run(capsys, "rm", "shop")
    assert code == 0, "accepted: the daemon finishes it"
    assert out.splitlines() == [
        "Removing stack shop",
        "Stack shop is still being removed: device or resource busy; the daemon keeps retrying "
        "(`orchestrator ls` shows it until it is gone)",
    ]
    row = {"name": "shop", "services": 2, "replicas_running": 1, "replicas_desired": 0,
           "deployed_at": 0.0, "state": "removing", "message": "device or resource busy"}
    assert tables.stacks_table([row]).splitlines()[1].split(None, 3)[3] == "removing: device or resource busy"


def test_usage_errors_exit_2(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "scale", "shop", "web")[0] == 2
    assert run(capsys, "scale", "shop", "web=-1")[0] == 2
    assert run(capsys, "nonsense")[0] == 2


def test_unreachable_daemon_is_exit_1_with_a_clear_message(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, err = run(capsys, "ls", "--host", f"http://127.0.0.1:{port}")
    assert code == 1
    assert err.startswith(f"error: the daemon is not running at http://127.0.0.1:{port}")
    assert "orchestrator daemon" in err
    code, _, err = run(capsys, "ls", "--host", f"unix://{tmp_path}/none.sock")
    assert code == 1 and "not running at unix://" in err


def test_token_from_the_environment_else_from_the_token_file(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with serve_in_thread(Settings(token="s3cret")) as served:
        monkeypatch.setenv("ORCHESTRATOR_HOST", served.url)
        code, _, err = run(capsys, "ls")
        first, hint = err.splitlines()
        assert (code, first) == (1, "error: missing or wrong bearer token")
        assert "set ORCHESTRATOR_TOKEN" in hint and f"--host unix://{tmp_path}/state/orchestrator.sock" in hint
        (tmp_path / "state").mkdir()
        (tmp_path / "state" / "token").write_text("s3cret\n")  # as the daemon leaves it
        assert run(capsys, "ls")[0] == 0
        monkeypatch.setenv("ORCHESTRATOR_TOKEN", "wrong")  # the variable wins over the file
        assert run(capsys, "ls")[0] == 1


def test_without_a_host_the_cli_uses_the_unix_socket_and_needs_no_token(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with serve_in_thread(Settings(token="s3cret", socket=str(state / "orchestrator.sock"))):
        code, out, err = run(capsys, "ls")
    assert (code, err) == (0, "")
    assert out.split() == ["NAME", "SERVICES", "REPLICAS", "DEPLOYED"]


def test_a_token_that_cannot_be_a_header_is_a_clear_error(
        served: Served, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_TOKEN", "s3cret\nX-Other: 1")
    code, _, err = run(capsys, "ls")
    assert code == 1
    assert err.startswith("error: ORCHESTRATOR_TOKEN: a token is 1-4096 visible ASCII characters")


@pytest.mark.parametrize("argv", [
    pytest.param(("scale", "x/../other", "web=2"), id="scale-stack-path"),
    pytest.param(("scale", "shop", "../web=2"), id="scale-service-path"),
    pytest.param(("scale", "shop", "web=²"), id="scale-unicode-digit"),
    pytest.param(("deploy", "-c", "STACK_FILE", "../x"), id="deploy-path"),
    pytest.param(("rm", "shop\n"), id="trailing-newline"),
    pytest.param(("ps", "Shop"), id="uppercase-stack"),
    pytest.param(("logs", "shop", "web/../../x"), id="logs-service-path"),
    pytest.param(("logs", "shop", "web", "--tail", "²"), id="tail-unicode-digit"),
    pytest.param(("logs", "shop", "web", "--tail", "-1"), id="tail-negative"),
    pytest.param(("rollback", "..", "web"), id="rollback-dotdot"),
    pytest.param(("events", "--stack", "a/b"), id="events-stack"),
    pytest.param(("events", "--since", "٣"), id="since-arabic-digit"),
])
def test_names_and_counts_are_checked_before_any_request(
        served: Served, stack_file: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]) -> None:
    run(capsys, "deploy", "-c", str(stack_file), "shop")
    run(capsys, "deploy", "-c", str(stack_file), "other")
    before = {name: dict(counts) for name, counts in served.control.counts.items()}
    code, out, err = run(capsys, *(str(stack_file) if a == "STACK_FILE" else a for a in argv))
    assert (code, out) == (2, "")
    assert "invalid" in err or "not a non-negative integer" in err
    assert served.control.counts == before and set(served.control.specs) == {"shop", "other"}


async def test_the_client_quotes_and_checks_every_name_it_puts_in_a_path() -> None:
    async with Client("http://127.0.0.1:9") as client:  # nothing listens: no request may be made
        for call in (client.scale("x/../other", {"web": 2}), client.inspect(".."),
                     client.rollback("shop", "web/../../x")):
            with pytest.raises(UserError, match="invalid name"):
                await call


# ---------------------------------------------------------------------------- tables


@pytest.mark.parametrize(("seconds", "text"), [
    (0.5, "Less than a second"), (1, "1 second"), (5, "5 seconds"), (90, "About a minute"),
    (600, "10 minutes"), (3600, "About an hour"), (5 * 3600, "5 hours"),
    (3 * 86400, "3 days"), (20 * 86400, "2 weeks"), (90 * 86400, "3 months"),
    (3 * 365 * 86400, "3 years"),
])
def test_human_duration(seconds: float, text: str) -> None:
    assert tables.human_duration(seconds) == text


def test_table_columns_are_aligned_with_three_spaces() -> None:
    assert tables.render_table(("A", "LONG"), [("xyz", "1"), ("q", "22")]) == (
        "A     LONG\nxyz   1\nq     22")


def test_ps_truncates_ids_and_errors_unless_asked() -> None:
    row = {"stack": "s", "service": "web", "slot": 1, "task_id": "a" * 25, "image": "img",
           "desired_state": "shutdown", "state": "failed", "since": 100.0, "current": False,
           "error": "x" * 40}
    short = tables.tasks_table([row], now=160.0).splitlines()[1]
    assert short.split()[:3] == ["a" * 12, "\\_", "s_web.1"]
    assert "Failed About a minute ago" in short and '"' + "x" * 29 + '…"' in short
    full = tables.tasks_table([row], no_trunc=True, now=160.0).splitlines()[1]
    assert "a" * 25 in full and "x" * 40 in full


def test_update_notes_say_which_slots_run_which_spec() -> None:
    rows = [
        {"stack": "app", "name": "web", "update_state": "paused",
         "update_message": "1 of 3 updated tasks failed; slots 2,3 on 0ld0ld0ld0ld; slot 1 not running"},
        {"stack": "app", "name": "db", "update_state": "completed", "update_message": "slot 1 on abc"},
        {"stack": "app", "name": "api", "update_state": "none", "update_message": ""},
    ]
    assert tables.update_notes(rows) == (
        "app_web: update paused: 1 of 3 updated tasks failed; slots 2,3 on 0ld0ld0ld0ld; slot 1 not running"
    )
    assert tables.update_notes(rows[1:]) == ""


def test_a_port_that_is_not_published_is_marked_and_explained() -> None:
    ports = [
        {"published": 8080, "target": 80, "protocol": "tcp", "mode": "ingress", "state": "unavailable",
         "error": "cannot listen on 0.0.0.0:8080/tcp: address already in use"},
        {"published": 8443, "target": 443, "protocol": "tcp", "mode": "ingress", "state": "published", "error": ""},
    ]
    rows = [{"stack": "app", "name": "web", "mode": "replicated", "replicas_running": 1, "replicas_desired": 1,
             "spec_hash": "a" * 12, "image": "web", "ports": ports}]
    assert "*:8080->80/tcp (not published), *:8443->443/tcp" in tables.services_table(rows)
    assert tables.port_notes(rows) == (
        "app_web: port 8080/tcp is not published: cannot listen on 0.0.0.0:8080/tcp: address already in use"
    )
    assert tables.port_notes([{**rows[0], "ports": ports[1:]}]) == ""


def test_deploy_sends_the_variables_of_included_and_extended_files_too(
        served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "base.yml").write_text(
        "services:\n  base:\n    image: ${BASE_IMAGE}\n    env_file: base.env\n")
    (tmp_path / "lib" / "base.env").write_text("GREETING=${ENV_FILE_WORD}\n")
    (tmp_path / "lib" / "extra.yml").write_text(
        "services:\n  extra:\n    extends: {service: base, file: base.yml}\n")
    (tmp_path / "lib" / ".env").write_text("UNUSED=${DOTENV_WORD}\n")
    top = tmp_path / "stack.yml"
    top.write_text("include:\n  - ${LIB_DIR}/extra.yml\n"
                   "services:\n  web:\n    image: ${TOP_IMAGE}\n")
    for name in ("BASE_IMAGE", "TOP_IMAGE", "ENV_FILE_WORD", "DOTENV_WORD", "LIB_DIR", "UNRELATED_SECRET"):
        monkeypatch.setenv(name, name.lower())
    monkeypatch.setenv("LIB_DIR", "lib")
    assert run(capsys, "deploy", "-c", str(top), "shop")[0] == 0
    extra = served.control.specs["shop"].services["extra"]
    assert (extra.image, extra.environment["GREETING"]) == ("base_image", "env_file_word")

    files = [(str(top), top.read_text())]
    found = brought_in(files, {"LIB_DIR": "lib"})
    assert sorted(Path(path).relative_to(tmp_path).as_posix() for path, _ in found) == [
        "lib/.env", "lib/base.env", "lib/base.yml", "lib/extra.yml"]
    assert referenced_env([*files, *found], dict(os.environ)) == {
        name: os.environ[name] for name in ("BASE_IMAGE", "DOTENV_WORD", "ENV_FILE_WORD", "LIB_DIR", "TOP_IMAGE")}


def test_a_job_shows_its_completions_as_docker_service_ls() -> None:
    rows = [{"stack": "app", "name": "migrate", "mode": "replicated-job", "replicas_running": 1, "replicas_desired": 3,
             "replicas_completed": 2, "spec_hash": "a" * 12, "image": "m", "ports": []}]
    assert "1 (2/3 completed)" in tables.services_table(rows)


async def test_deploy_wait_ends_when_the_jobs_are_done_and_not_before(capsys: pytest.CaptureFixture[str],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.cli import commands

    monkeypatch.setattr(commands, "POLL_S", 0.0)
    job = {"name": "migrate", "mode": "replicated-job", "replicas_running": 0, "replicas_desired": 0,
           "replicas_completed": 0, "update_state": "none"}
    answers = iter([
        [job],  # a global job not placed yet wants nothing: not done
        [{**job, "replicas_desired": 2, "replicas_running": 2}],
        [{**job, "replicas_desired": 2, "replicas_completed": 2}],
    ])

    class Answers:
        async def services(self, stack: str) -> object:
            return next(answers)

    assert await commands.wait_converged(Answers(), "app", timeout=60) == 0  # type: ignore[arg-type]
    assert "migrate: 2/2 completed" in capsys.readouterr().out

    failed = iter([[{**job, "replicas_desired": 1, "replicas_given_up": 1, "given_up_reason": "exit 3"}]])

    class Failed:
        async def services(self, stack: str) -> object:
            return next(failed)

    with pytest.raises(UserError, match=r"restart policy gave up on migrate \(1 gave up: exit 3\)"):
        await commands.wait_converged(Failed(), "app", timeout=60)  # type: ignore[arg-type]
