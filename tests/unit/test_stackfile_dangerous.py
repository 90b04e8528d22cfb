"""Dangerous options (issue 12): every privileged-like setting is found with its key path; the
policy `warn` lists them (deploy answer, `config`), `deny` refuses the stack naming each one."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.api import make_app
from orchestrator.cli.main import main
from orchestrator.model.spec import StackSpec
from orchestrator.settings import Settings
from orchestrator.stackfile import Limits, StackFileError, load_stack_text
from orchestrator.stackfile.dangerous import find_dangerous, host_path_note
from tests.unit.conftest import AUTH, TOKEN
from tests.unit.fake_control import FakeControl
from tests.unit.stackfile_helpers import write

DANGEROUS = """\
services:
  web:
    image: busybox
    cap_add: [CHOWN, SYS_ADMIN, all]
    volumes:
      - /:/host
      - /var/run/docker.sock:/var/run/docker.sock:ro
      - /srv/data:/data
      - {type: bind, source: /etc/ssl, target: /ssl, read_only: true}
      - /var:/var-of-host
    networks: [hostnet]
    env_file: ./app.env
  builder:
    build: /usr/src
networks:
  hostnet: {external: true, name: host}
volumes:
  root: {driver_opts: {type: none, o: bind, device: /root}}
secrets:
  key: {file: /etc/hostname}
"""
#: (key path, line) of every dangerous option above, in the order the loader reports them.
EXPECTED = [
    ("services.web.cap_add[1]", 4, "adds the capability SYS_ADMIN"),
    ("services.web.cap_add[2]", 4, "adds every capability (as privileged does)"),
    ("services.web.volumes[0]", 6, "bind-mounts the host's root directory /, read-write"),
    ("services.web.volumes[1]", 7, "bind-mounts the engine's socket /var/run/docker.sock (root on the host), read-only"),
    ("services.web.volumes[3]", 9, "bind-mounts host system path /etc/ssl, read-only"),
    ("services.web.volumes[4]", 10, "bind-mounts /var, which holds host system path /var/run, read-write"),
    ("services.web.networks", 11, "joins the host's network stack (network 'hostnet' is the engine's host network)"),
    ("services.builder.build", 14, "builds an image from host system path /usr/src"),
    ("volumes.root.driver_opts", 18, "bind-mounts host system path /root"),
    ("secrets.key.file", 20, "bind-mounts host system path /etc/hostname into containers"),
]
#: The env_file is under the stack's directory: not dangerous, only read.
ENV_FILE = "A=1\n"
pytestmark = pytest.mark.skipif(not Path("/etc/hostname").is_file(), reason="no /etc/hostname here")


def spec_of(text: str, policy: str, base_dir: Path) -> StackSpec:
    (base_dir / "app.env").write_text(ENV_FILE)
    return load_stack_text([("stack.yml", text)], base_dir, env={}, name="t",
                           limits=Limits(dangerous_options=policy))  # type: ignore[arg-type]


def test_find_dangerous_lists_every_option_with_its_key_path(tmp_path: Path) -> None:
    found = find_dangerous(spec_of(DANGEROUS, "warn", tmp_path), resolve=lambda path: path)
    assert [(d.path, d.what) for d in found] == [(path, what) for path, _line, what in EXPECTED]


def test_warn_lists_each_dangerous_option_as_a_warning(tmp_path: Path) -> None:
    stack = spec_of(DANGEROUS, "warn", tmp_path)
    listed = [w for w in stack.warnings if "dangerous option" in w]
    assert listed == [f"{path}: dangerous option: {what}" for path, _line, what in EXPECTED]


def test_deny_refuses_the_stack_naming_each_key_path_and_line(tmp_path: Path) -> None:
    with pytest.raises(StackFileError) as info:
        spec_of(DANGEROUS, "deny", tmp_path)
    assert [(p.path, p.line, p.message) for p in info.value.problems] == [
        (path, line, f"dangerous option refused: {what} (ORCHESTRATOR_DANGEROUS_OPTIONS=deny)") for path, line, what in EXPECTED]


def test_deny_covers_files_read_or_mounted_from_system_paths(tmp_path: Path) -> None:
    text = "services:\n  web:\n    image: busybox\n    env_file: /etc/hostname\nsecrets:\n  s: {file: /etc/hostname}\n"
    with pytest.raises(StackFileError) as info:
        spec_of(text, "deny", tmp_path)
    assert [(p.path, p.line) for p in info.value.problems] == [("services.web.env_file", 4), ("secrets.s.file", 6)]
    assert "reads host system path /etc/hostname into the environment" in info.value.problems[0].message


def test_an_ordinary_stack_has_no_dangerous_options(tmp_path: Path) -> None:
    text = "services:\n  web:\n    image: busybox\n    cap_add: [NET_BIND_SERVICE]\n    volumes: ['./data:/data', '/srv/x:/x']\n"
    assert spec_of(text, "deny", tmp_path).warnings == ()


@pytest.mark.parametrize(("path", "note"), [
    ("/", "the host's root directory /"),
    ("//etc/../etc/./passwd", "host system path /etc/passwd"),
    ("/run/docker.sock", "the engine's socket /run/docker.sock (root on the host)"),
    ("/var/lib", "host system path /var/lib"),
    ("/var", "/var, which holds host system path /var/run"),
    ("/srv/etc", None),
    ("/home/user", None),
])
def test_host_path_note(path: str, note: str | None) -> None:
    assert host_path_note(path, resolve=lambda p: p) == note


def test_a_symlink_to_a_system_path_is_followed(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to("/etc")
    assert host_path_note(str(tmp_path / "link")) == "host system path /etc"


def test_config_lists_dangerous_options_and_refuses_them_under_deny(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "stack.yml", "services:\n  web:\n    image: busybox\n    cap_add: [SYS_ADMIN]\n")
    assert main(["config", "-c", str(path)]) == 0
    assert "warning: services.web.cap_add[0]: dangerous option: adds the capability SYS_ADMIN" in capsys.readouterr().err
    monkeypatch.setenv("ORCHESTRATOR_DANGEROUS_OPTIONS", "deny")
    assert main(["config", "-c", str(path)]) == 1
    assert f"{path}:4: services.web.cap_add[0]: dangerous option refused" in capsys.readouterr().err


# ---------------------------------------------------------------------------- through the API

API_STACK = "services:\n  web:\n    image: busybox\n    cap_add: [SYS_ADMIN]\n    volumes: ['/:/host']\n"


async def test_deploy_answer_lists_dangerous_options_under_warn(client: TestClient) -> None:
    response = await client.put("/v1/stacks/shop", data=API_STACK, headers={"Content-Type": "application/yaml"})
    assert response.status == 201
    warnings = (await response.json())["warnings"]
    assert [w.split(": ")[0] for w in warnings] == ["services.web.cap_add[0]", "services.web.volumes[0]"]


@pytest.fixture(name="deny_client")
async def _deny_client(control: FakeControl) -> AsyncIterator[TestClient]:
    settings = dataclasses.replace(Settings(token=TOKEN), dangerous_options="deny")
    app = make_app(control, settings, body_limit=64 * 1024)
    async with TestClient(TestServer(app), headers=AUTH) as client:
        yield client


async def test_deploy_is_refused_under_deny_naming_each_key_path(deny_client: TestClient, control: FakeControl) -> None:
    response = await deny_client.put("/v1/stacks/shop", data=API_STACK, headers={"Content-Type": "application/yaml"})
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == "invalid_stack_file"
    assert [(p["path"], p["line"]) for p in error["problems"]] == [("services.web.cap_add[0]", 4), ("services.web.volumes[0]", 5)]
    assert control.specs == {}
