"""Whole files: the getting-started stack, files in the style of public projects, several files
merged, `.env` and env_file, the `config` command, and the spec hash."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from orchestrator.cli.main import main
from orchestrator.labels import spec_hash
from orchestrator.model.spec import MountSpec, NetworkAttachment, PortSpec, Resources, RestartPolicy
from orchestrator.stackfile import StackFileError, load_stack, load_stack_text
from tests.unit.stackfile_helpers import load, write

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_getting_started_stack() -> None:
    stack = load_stack(ROOT / "stacks" / "getting-started.yml", env={}, name="demo")
    web, redis = stack.services["web"], stack.services["redis"]
    assert web.image == "orchestrator/demo-web:latest"
    assert web.replicas == 5
    assert web.resources == Resources(cpus_limit=0.1, memory_limit=50 * 1024 * 1024)
    assert web.restart_policy == RestartPolicy(condition="on-failure")
    assert web.ports == (PortSpec(target=80, published=4000),)
    assert web.networks == (NetworkAttachment("webnet"),)
    assert web.environment == {"REDIS_HOST": "redis"}
    assert redis.image == "redis:7-alpine"
    assert redis.volumes == (MountSpec("volume", "/data", "redis-data"),)
    assert stack.networks["webnet"].engine_name == "demo_webnet"
    assert stack.volumes["redis-data"].engine_name == "demo_redis-data"
    assert "default" not in stack.networks
    assert stack.warnings == ()


def test_getting_started_images_come_from_the_environment() -> None:
    stack = load_stack(ROOT / "stacks" / "getting-started.yml", env={"WEB_IMAGE": "web:2", "REDIS_IMAGE": "r:1"})
    assert (stack.services["web"].image, stack.services["redis"].image) == ("web:2", "r:1")
    assert stack.name == "stacks"  # the directory of the file, as compose names projects


def test_voting_app() -> None:
    stack = load_stack(FIXTURES / "voting-app.yml", env={}, name="vote")
    assert sorted(stack.services) == ["db", "redis", "result", "vote", "worker"]
    assert stack.services["vote"].ports == (PortSpec(80, 5000),)
    assert stack.services["worker"].restart_policy == RestartPolicy("on-failure", 10.0, 3, 120.0)
    assert stack.services["worker"].deploy_labels == {"APP": "VOTING"}
    assert stack.services["redis"].update_config.delay == 10.0
    assert [n.network for n in stack.services["worker"].networks] == ["frontend", "backend"]
    assert stack.warnings == ("services.db.deploy.placement: placement has no meaning on one engine; ignored",)


def test_wordpress() -> None:
    stack = load_stack(FIXTURES / "wordpress.yml", env={"WP_PORT": "8080"}, name="wp")
    db, wordpress = stack.services["db"], stack.services["wordpress"]
    assert db.image == "mariadb:11"
    assert db.command == ("--default-authentication-plugin=mysql_native_password",)
    assert db.restart_policy == RestartPolicy("any")  # restart: unless-stopped via the anchor
    assert db.logging is not None and db.logging.options == {"max-size": "10m", "max-file": "3"}
    assert db.healthcheck is not None and db.healthcheck.test[0] == "CMD" and db.healthcheck.retries == 3
    assert wordpress.image == "wordpress:6-apache"
    assert wordpress.ports == (PortSpec(80, 8080),)
    assert wordpress.depends_on[0].condition == "service_healthy"
    assert wordpress.secrets[0].mode == 0o400
    assert stack.secrets["db_password"].file == str(FIXTURES / "secrets" / "db_password.txt")
    assert any(w.startswith("services.db.expose") for w in stack.warnings)


def test_monitoring() -> None:
    stack = load_stack(FIXTURES / "monitoring.yml", env={"GRAFANA_ADMIN_PASSWORD": "pw"}, name="mon")
    prometheus = stack.services["prometheus"]
    assert prometheus.command == ("--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.retention.time=15d")
    assert prometheus.resources == Resources(cpus_limit=0.5, memory_limit=512 << 20, memory_reservation=128 << 20)
    assert prometheus.configs[0].target == "/etc/prometheus/prometheus.yml"
    assert "scrape_configs" in (stack.configs["prometheus_config"].content or "")
    assert stack.services["node-exporter"].mode == "global"
    assert stack.services["node-exporter"].volumes[0].bind_propagation == "rslave"
    assert stack.secrets["grafana_admin"].content == "pw"
    assert stack.services["grafana"].stop_grace_period == 60.0


# --------------------------------------------------------------------------- several files


def test_merge_override_rules(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yml", """
        services:
          web:
            image: web:1
            command: [serve, --slow]
            environment: [A=1, B=2]
            labels: {keep: "yes"}
            ports: ["8080:80", "9090:90"]
            volumes: ["data:/data", "logs:/logs"]
            dns: [1.1.1.1]
            deploy: {replicas: 2, resources: {limits: {memory: 50M}}}
        volumes: {data: {}, logs: {}, other: {}}
        """)
    override = write(tmp_path, "override.yml", """
        services:
          web:
            image: web:2
            command: [serve]
            environment: {B: "3", C: "4"}
            ports: ["8080:80", "7070:70"]
            volumes: ["other:/data"]
            dns: [8.8.8.8]
            deploy: {replicas: 3}
        """)
    web = load_stack([base, override], env={}).services["web"]
    assert web.image == "web:2"
    assert web.command == ("serve",)
    assert web.environment == {"A": "1", "B": "3", "C": "4"}
    assert web.labels == {"keep": "yes"}
    assert [(p.published, p.target) for p in web.ports] == [(8080, 80), (9090, 90), (7070, 70)]
    assert [(v.source, v.target) for v in web.volumes] == [("other", "/data"), ("logs", "/logs")]
    assert web.dns == ("1.1.1.1", "8.8.8.8")
    assert (web.replicas, web.resources.memory_limit) == (3, 50 << 20)


def test_merge_reset_and_override_tags(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yml", """
        services:
          web:
            image: web:1
            ports: ["8080:80"]
            environment: {FOO: bar, KEEP: x}
            user: nobody
        """)
    override = write(tmp_path, "override.yml", """
        services:
          web:
            ports: !override ["8443:443"]
            environment:
              FOO: !reset null
            user: !reset
        """)
    web = load_stack([base, override], env={}).services["web"]
    assert web.ports == (PortSpec(443, 8443),)
    assert web.environment == {"KEEP": "x"}
    assert web.user is None


def test_errors_name_the_file_they_come_from(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yml", "services:\n  web:\n    image: web\n")
    override = write(tmp_path, "override.yml", "services:\n  web:\n    deploy:\n      replicas: -2\n")
    with pytest.raises(StackFileError) as info:
        load_stack([base, override], env={})
    assert (info.value.file, info.value.path, info.value.line) == (str(override), "services.web.deploy.replicas", 4)


def test_problems_of_every_file_are_reported(tmp_path: Path) -> None:
    one = write(tmp_path, "one.yml", "services: [\n")
    two = write(tmp_path, "two.yml", "services:\n  web: {image: x, bad: 1}\n")
    three = write(tmp_path, "three.yml", "a: b: c\n")
    with pytest.raises(StackFileError) as info:
        load_stack([one, two, three], env={})
    assert {Path(p.file).name for p in info.value.problems} == {"one.yml", "three.yml"}


# --------------------------------------------------------------------------- environment


def test_dot_env_beside_the_file_and_the_environment_wins(tmp_path: Path) -> None:
    write(tmp_path, ".env", """
        # comment
        TAG=from-dotenv
        OTHER="quoted ${TAG}"
        RAW='$TAG'
        export SPACED = value # comment
        """)
    environment = "    environment:\n      - O=${OTHER}\n      - R=${RAW}\n      - S=${SPACED}\n"
    stack = load(tmp_path, "services:\n  web:\n    image: a:${TAG}\n" + environment)
    assert stack.services["web"].image == "a:from-dotenv"
    assert stack.services["web"].environment == {"O": "quoted from-dotenv", "R": "$TAG", "S": "value"}
    stack = load(tmp_path, "services:\n  web:\n    image: a:${TAG}\n", env={"TAG": "from-env"})
    assert stack.services["web"].image == "a:from-env"


def test_env_file_and_environment_precedence(tmp_path: Path) -> None:
    write(tmp_path, "a.env", "A=1\nB=from-file\nC\n")
    text = "services:\n  web:\n    image: x\n    env_file: [a.env, {path: optional.env, required: false}]\n    environment: {B: from-service}\n"
    web = load(tmp_path, text, env={"C": "from-env"}).services["web"]
    assert web.environment == {"A": "1", "B": "from-service", "C": "from-env"}


def test_unset_variable_warns_and_is_empty(tmp_path: Path) -> None:
    stack = load(tmp_path, "services:\n  web:\n    image: x${NOPE}\n")
    assert stack.services["web"].image == "x"
    assert stack.warnings == ("services.web.image: variable NOPE is not set, using an empty string",)


def test_load_stack_text_resolves_against_base_dir(tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("x")
    text = "services:\n  web:\n    image: x\n    volumes: ['./data:/data']\n    secrets: [s]\nsecrets:\n  s: {file: s.txt}\n"
    stack = load_stack_text([("api.yml", text)], tmp_path, env={}, name="Api Stack")
    assert stack.name == "apistack"
    assert stack.services["web"].volumes[0].source == str(tmp_path / "data")
    assert stack.secrets["s"].file == str(tmp_path / "s.txt")


def test_stack_name_from_file_then_directory(tmp_path: Path) -> None:
    directory = tmp_path / "My.Project"
    directory.mkdir()
    named = write(directory, "a.yml", "name: Shop-Front_1\nservices:\n  web: {image: x}\n")
    unnamed = write(directory, "b.yml", "services:\n  web: {image: x}\n")
    assert load_stack(named, env={}).name == "shop-front_1"
    assert load_stack(unnamed, env={}).name == "myproject"


def test_missing_file_is_a_stack_file_error(tmp_path: Path) -> None:
    with pytest.raises(StackFileError) as info:
        load_stack(tmp_path / "nope.yml")
    assert "cannot read the file" in str(info.value)


# --------------------------------------------------------------------------- config command


def test_config_command_prints_the_normalized_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "stack.yml", "services:\n  web:\n    image: x\n    restart: always\n    privileged: true\n")
    assert main(["config", "-c", str(path), "--format", "json", "shop"]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["name"] == "shop"
    assert data["services"]["web"]["deploy"]["restart_policy"]["condition"] == "any"
    assert data["services"]["web"]["networks"] == {"default": None}
    assert data["networks"]["default"] == {"name": "shop_default"}
    assert "warning: services.web.privileged" in err
    assert main(["config", "-c", str(path)]) == 0
    assert "    deploy:\n      mode: replicated\n      replicas: 1\n      restart_policy:\n        condition: any\n" in capsys.readouterr().out


def test_config_command_reports_errors_with_exit_code_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "stack.yml", "services:\n  web:\n    image: x\n    deploy: {replicas: -1}\n")
    assert main(["config", "-c", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{path}:4: services.web.deploy.replicas: must be at least 0" in err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- spec hash


def test_spec_hash_ignores_replicas_but_not_image_or_environment() -> None:
    web = load_stack(ROOT / "stacks" / "getting-started.yml", env={}).services["web"]
    assert spec_hash(dataclasses.replace(web, replicas=1)) == spec_hash(web)
    assert spec_hash(dataclasses.replace(web, image="other:1")) != spec_hash(web)
    assert spec_hash(dataclasses.replace(web, environment={"REDIS_HOST": "elsewhere"})) != spec_hash(web)


def test_spec_hash_is_stable_across_loads(tmp_path: Path) -> None:
    text = "services:\n  web:\n    image: x\n    environment: {B: 1, A: 2}\n"
    reordered = "services:\n  web:\n    environment: {A: 2, B: 1}\n    image: x\n"
    first = load(tmp_path, text).services["web"]
    second = load(tmp_path, reordered).services["web"]
    assert spec_hash(first) == spec_hash(second)
