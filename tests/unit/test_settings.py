from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from orchestrator.errors import UserError
from orchestrator.settings import Settings, env_name

DOCS = Path(__file__).parents[2] / "docs" / "settings.md"


def test_every_setting_is_in_the_one_table() -> None:
    table = DOCS.read_text()
    for field in dataclasses.fields(Settings):
        assert f"| `{field.name}` | `{env_name(field.name)}` |" in table, field.name


def test_environment_and_overrides() -> None:
    env = {
        "ORCHESTRATOR_LISTEN": "0.0.0.0:9000",
        "ORCHESTRATOR_STATE_DIR": "/tmp/x",
        "ORCHESTRATOR_HISTORY_LIMIT": "3",
        "ORCHESTRATOR_BACKOFF_CAP": "2.5",
        "DOCKER_HOST": "unix:///tmp/d.sock",
    }
    s = Settings.from_env(env, prefix="p")
    assert (s.listen_host, s.listen_port) == ("0.0.0.0", 9000)
    assert s.listens_beyond_loopback
    assert s.history_limit == 3 and s.backoff_cap == 2.5
    assert s.docker_host == "unix:///tmp/d.sock" and s.prefix == "p"
    assert s.socket == "/tmp/x/orchestrator.sock"
    assert s.host == "http://0.0.0.0:9000"


def test_defaults_listen_on_loopback() -> None:
    s = Settings.from_env({})
    assert s.listen == "127.0.0.1:7420" and not s.listens_beyond_loopback


@pytest.mark.parametrize(("cpus", "bound"), [(1, 4), (2, 4), (4, 8), (8, 16), (64, 16)])
def test_the_creation_bound_follows_the_usable_cpus_from_4_to_16(monkeypatch: pytest.MonkeyPatch,
                                                                 cpus: int, bound: int) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: set(range(cpus)))
    monkeypatch.setattr("os.cpu_count", lambda: 128)  # the machine's, not this process's
    assert Settings.from_env({}).concurrency == bound
    assert Settings.from_env({"ORCHESTRATOR_CONCURRENCY": "32"}).concurrency == 32


def test_bad_number_names_the_variable() -> None:
    with pytest.raises(UserError, match="ORCHESTRATOR_CONCURRENCY='many'"):
        Settings.from_env({"ORCHESTRATOR_CONCURRENCY": "many"})


@pytest.mark.parametrize(("variable", "value"), [
    ("ORCHESTRATOR_MAX_REPLICAS", "0"), ("ORCHESTRATOR_MAX_REPLICAS_TOTAL", "100000000000"),
    ("ORCHESTRATOR_MAX_BODY_BYTES", "10"), ("ORCHESTRATOR_CONCURRENCY", "0"),
    ("ORCHESTRATOR_CONCURRENCY", "100000"),
])
def test_limits_have_a_range(variable: str, value: str) -> None:
    with pytest.raises(UserError, match=f"{variable}={value}: must be from"):
        Settings.from_env({variable: value})


def test_the_ingress_runs_in_one_of_three_places() -> None:
    assert Settings.from_env({}).ingress == "spawn"
    assert Settings.from_env({"ORCHESTRATOR_INGRESS": "external"}).ingress == "external"
    with pytest.raises(UserError, match="ORCHESTRATOR_INGRESS='elsewhere': must be spawn, external or inline"):
        Settings.from_env({"ORCHESTRATOR_INGRESS": "elsewhere"})
    with pytest.raises(UserError, match="ORCHESTRATOR_READINESS_WINDOW=-1.0: must be from 0 to 3600"):
        Settings.from_env({"ORCHESTRATOR_READINESS_WINDOW": "-1"})
