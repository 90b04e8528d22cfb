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


SWARM_KEYS = """
services:
  web:
    image: busybox
    dns_search: [svc.local]
    dns_opt: ["ndots:2"]
    tty: true
    stdin_open: true
    deploy:
      resources:
        reservations:
          generic_resources:
            - discrete_resource_spec: {kind: gpu, value: 2}
  migrate:
    image: busybox
    deploy: {mode: replicated-job, replicas: 2}
  once:
    image: busybox
    deploy: {mode: global-job}
secrets:
  vault: {driver: vault-plugin, driver_opts: {path: kv/app}, labels: {team: a}}
  tpl: {environment: TPL, template_driver: golang}
configs:
  conf: {content: "a=1", labels: [team=a], template_driver: golang}
"""


def load_text(tmp_path: Path, text: str, backend: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "stack.yml"
    path.write_text(text)
    return load_stack(path, env={"TPL": "x"}, name="shop", limits=Limits(backend=backend))


def test_on_swarm_the_keys_docker_stack_deploy_maps_are_read(tmp_path: Path) -> None:
    from orchestrator.model.spec import GenericResource

    stack = load_text(tmp_path, SWARM_KEYS, "swarm")
    web = stack.services["web"]
    assert (web.dns_search, web.dns_options, web.tty, web.stdin_open) == (("svc.local",), ("ndots:2",), True, True)
    assert web.generic_resources == (GenericResource("gpu", 2),)
    assert (stack.services["migrate"].mode, stack.services["migrate"].replicas) == ("replicated-job", 2)
    assert stack.services["once"].mode == "global-job"
    vault = stack.secrets["vault"]
    assert (vault.driver, dict(vault.driver_opts), dict(vault.labels)) == ("vault-plugin", {"path": "kv/app"}, {"team": "a"})
    assert stack.secrets["tpl"].template_driver == "golang"
    assert (dict(stack.configs["conf"].labels), stack.configs["conf"].template_driver) == ({"team": "a"}, "golang")
    assert stack.warnings == ()


def test_on_one_engine_they_are_warned_and_jobs_refused(tmp_path: Path) -> None:
    without_jobs = SWARM_KEYS.replace("deploy: {mode: replicated-job, replicas: 2}", "deploy: {replicas: 2}") \
        .replace("deploy: {mode: global-job}", "deploy: {}").replace("{driver: vault-plugin, ", "{environment: TPL, ")
    stack = load_text(tmp_path, without_jobs, "engine")
    web = stack.services["web"]
    assert (web.dns_search, web.tty, web.generic_resources) == ((), False, ())
    warned = "\n".join(stack.warnings)
    for key in ("services.web.dns_search", "services.web.dns_opt", "services.web.tty", "services.web.stdin_open",
                "generic_resources", "secrets.vault.labels", "configs.conf.template_driver"):
        assert key in warned, key
    with pytest.raises(UserError, match="runs only on Swarm"):
        load_text(tmp_path, SWARM_KEYS, "engine")


@pytest.mark.parametrize(("text", "message"), [
    ("services: {w: {image: b, deploy: {mode: global-job, replicas: 2}}}",
     "services.w.deploy.replicas.*replicated or replicated-job"),
    ("services: {w: {image: b}}\nsecrets: {s: {driver: p, file: ./x}}", "secrets.s.driver.*has no file"),
    ("services: {w: {image: b, deploy: {resources: {reservations: {generic_resources: [{discrete_resource_spec: "
     "{kind: gpu}}]}}}}}", "discrete_resource_spec.*needs a kind"),
    ("services: {w: {image: b, deploy: {resources: {reservations: {generic_resources: [gpu]}}}}}",
     r"generic_resources\[0\].*discrete_resource_spec"),
])
def test_swarm_keys_with_bad_values_are_errors_at_their_key(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "x").write_text("x")
    with pytest.raises(UserError, match=message):
        load_text(tmp_path, text, "swarm")


def test_orchestrator_config_shows_the_swarm_keys_and_loads_back_the_same(tmp_path: Path) -> None:
    from orchestrator.stackfile import dump, stack_to_compose

    stack = load_text(tmp_path, SWARM_KEYS, "swarm")
    again = load_text(tmp_path, dump(stack_to_compose(stack), "yaml"), "swarm")
    assert again.services == stack.services
    assert again.secrets == stack.secrets and again.configs == stack.configs
