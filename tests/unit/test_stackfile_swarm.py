"""The loader with ORCHESTRATOR_BACKEND=swarm (Limits.backend): placement is read, a host-mode
port may have several replicas (one task a node), `driver: overlay` stays, secrets keep their
`name:`; with the engine backend the same file keeps its one-engine warnings and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import UserError
from orchestrator.settings import Settings
from orchestrator.stackfile import load_stack
from orchestrator.stackfile.limits import Limits

STACK = """
services:
  web:
    image: busybox
    deploy:
      replicas: 3
      placement:
        constraints: [node.role == worker]
        preferences: [{spread: node.labels.zone}]
        max_replicas_per_node: 2
    ports: [{target: 80, published: 8080, mode: host}]
    networks: [back]
    secrets: [token]
networks:
  back: {driver: overlay}
secrets:
  token: {file: ./token.txt, name: shop-token}
"""


def load(tmp_path: Path, backend: str):  # type: ignore[no-untyped-def]
    (tmp_path / "token.txt").write_text("s3cret")
    path = tmp_path / "stack.yml"
    path.write_text(STACK)
    return load_stack(path, name="shop", limits=Limits(backend=backend))


def test_on_swarm_placement_host_ports_overlay_and_names_are_kept(tmp_path: Path) -> None:
    stack = load(tmp_path, "swarm")
    web = stack.services["web"]
    assert web.placement.constraints == ("node.role == worker",)
    assert web.placement.preferences == ("node.labels.zone",)
    assert web.placement.max_replicas_per_node == 2
    assert stack.networks["back"].driver == "overlay"
    assert stack.secrets["token"].engine_name == "shop-token"
    assert stack.warnings == ()


def test_on_one_engine_the_same_file_keeps_its_one_engine_rules(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="host-mode port 8080 cannot be bound by 3 replicas"):
        load(tmp_path, "engine")


def test_the_backend_setting_is_engine_or_swarm() -> None:
    assert Settings.from_env({"ORCHESTRATOR_BACKEND": "swarm"}).backend == "swarm"
    with pytest.raises(UserError, match="ORCHESTRATOR_BACKEND='kubernetes': must be engine or swarm"):
        Settings.from_env({"ORCHESTRATOR_BACKEND": "kubernetes"})


def test_the_daemon_on_swarm_stack_runs_on_a_manager_with_the_engine_socket() -> None:
    from orchestrator.swarm.convert import convert_stack

    path = Path(__file__).parents[2] / "stacks" / "orchestrator-on-swarm.yml"
    stack = load_stack(path, env={"ORCHESTRATOR_TOKEN": "t" * 32}, name="orchestrator", limits=Limits(backend="swarm"))
    body = convert_stack(stack).services["daemon"]
    assert body["TaskTemplate"]["Placement"]["Constraints"] == ["node.role == manager"]
    container = body["TaskTemplate"]["ContainerSpec"]
    assert "ORCHESTRATOR_BACKEND=swarm" in container["Env"]
    assert {"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/var/run/docker.sock"}.items() <= \
        next(m for m in container["Mounts"] if m["Type"] == "bind").items()
    with pytest.raises(UserError, match="ORCHESTRATOR_TOKEN"):
        load_stack(path, env={}, name="orchestrator", limits=Limits(backend="swarm"))
