"""The rule table: one small stack file per rule, with the exact value it must load to, or the
key path, line and message of the error it must raise."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.model import (
    DependsOn,
    FileReference,
    Healthcheck,
    LoggingSpec,
    MountSpec,
    NetworkAttachment,
    PortSpec,
    Resources,
    RestartPolicy,
    StackSpec,
    Ulimit,
    UpdateConfig,
)
from tests.unit.stackfile_helpers import load, load_error, problem_at

HEAD = "services:\n  web:\n    image: busybox\n"
ENV = {"TAG": "1.2", "EMPTY": "", "PORT": "8080", "REPLICAS": "3"}


def web(stack: StackSpec) -> Any:
    return stack.services["web"]


VALID = [
    # --- YAML as compose reads it (1.2)
    pytest.param(HEAD + "    restart: no\n", lambda s: web(s).restart_policy, RestartPolicy(), id="yaml-no-is-a-string"),
    pytest.param(HEAD + "    ports:\n      - 22:22\n", lambda s: web(s).ports, (PortSpec(22, 22),), id="yaml-22-22-is-a-port-string"),
    pytest.param(
        HEAD + "    secrets:\n      - {source: s, mode: 0440}\nsecrets:\n  s: {file: ./s.txt}\n",
        lambda s: web(s).secrets[0].mode, 0o440, id="yaml-0440-is-octal",
    ),
    pytest.param(HEAD + "    environment:\n      ON: on\n      YES: yes\n", lambda s: dict(web(s).environment), {"ON": "on", "YES": "yes"}, id="yaml-on-yes-are-strings"),
    pytest.param(
        "x-base: &base\n  image: busybox\n  user: nobody\nservices:\n  web:\n    <<: *base\n    user: root\n",
        lambda s: (web(s).image, web(s).user), ("busybox", "root"), id="yaml-anchor-merge-key-local-wins",
    ),
    pytest.param(
        "x-a: &a {user: a}\nx-b: &b {user: b, hostname: h}\nservices:\n  web:\n    <<: [*a, *b]\n    image: busybox\n",
        lambda s: (web(s).user, web(s).hostname), ("a", "h"), id="yaml-merge-list-first-wins",
    ),
    pytest.param(HEAD + "    labels: &l {a: b}\n  db:\n    image: busybox\n    labels: *l\n", lambda s: dict(s.services["db"].labels), {"a": "b"}, id="yaml-alias"),
    pytest.param(HEAD + "    x-note: anything\n    deploy:\n      x-more: 1\n", lambda s: web(s).image, "busybox", id="x-extension-fields-ignored"),
    # --- interpolation
    pytest.param("services:\n  web:\n    image: busybox:$TAG\n", lambda s: web(s).image, "busybox:1.2", id="interp-dollar-var"),
    pytest.param("services:\n  web:\n    image: busybox:${TAG}\n", lambda s: web(s).image, "busybox:1.2", id="interp-braced"),
    pytest.param("services:\n  web:\n    image: busybox:${NOPE:-9}\n", lambda s: web(s).image, "busybox:9", id="interp-default-unset"),
    pytest.param("services:\n  web:\n    image: busybox${EMPTY:-:e}\n", lambda s: web(s).image, "busybox:e", id="interp-colon-default-empty"),
    pytest.param("services:\n  web:\n    image: busybox${EMPTY-:e}\n", lambda s: web(s).image, "busybox", id="interp-dash-default-set-empty"),
    pytest.param("services:\n  web:\n    image: busybox${TAG:+:alt}\n", lambda s: web(s).image, "busybox:alt", id="interp-colon-plus"),
    pytest.param("services:\n  web:\n    image: busybox${NOPE+:alt}\n", lambda s: web(s).image, "busybox", id="interp-plus-unset"),
    pytest.param("services:\n  web:\n    image: busybox:${NOPE:-${TAG:-x}}\n", lambda s: web(s).image, "busybox:1.2", id="interp-nested"),
    pytest.param(HEAD + "    command: echo $$HOME\n", lambda s: web(s).command, ("echo", "$HOME"), id="interp-double-dollar"),
    pytest.param(HEAD + "    environment:\n      P: ${TAG?needed}\n", lambda s: web(s).environment["P"], "1.2", id="interp-question-set"),
    pytest.param("services:\n  web:\n    image: busybox\n    deploy:\n      replicas: ${REPLICAS}\n", lambda s: web(s).replicas, 3, id="interp-int-from-string"),
    pytest.param(HEAD + "    ports:\n      - \"${PORT}:80\"\n", lambda s: web(s).ports, (PortSpec(80, 8080),), id="interp-in-port"),
    # --- units
    pytest.param(HEAD + "    stop_grace_period: 1m30s\n", lambda s: web(s).stop_grace_period, 90.0, id="duration-1m30s"),
    pytest.param(HEAD + "    stop_grace_period: 1h5m30s20ms\n", lambda s: web(s).stop_grace_period, 3930.02, id="duration-combined"),
    pytest.param(HEAD + "    stop_grace_period: 500ms\n", lambda s: web(s).stop_grace_period, 0.5, id="duration-ms"),
    pytest.param(HEAD + "    deploy:\n      resources:\n        limits: {memory: 50M, cpus: '0.1', pids: 100}\n",
                 lambda s: web(s).resources, Resources(cpus_limit=0.1, memory_limit=50 * 2**20, pids_limit=100), id="bytes-cpus-string-pids"),
    pytest.param(HEAD + "    deploy:\n      resources:\n        limits: {memory: 1.5g, cpus: 2}\n",
                 lambda s: web(s).resources, Resources(cpus_limit=2.0, memory_limit=int(1.5 * 2**30)), id="bytes-fraction-cpus-number"),
    pytest.param(HEAD + "    deploy:\n      resources:\n        reservations: {memory: 8192k}\n", lambda s: web(s).resources.memory_reservation, 8 << 20, id="bytes-reservation"),
    # --- ports
    pytest.param(HEAD + "    ports: ['8000-8001:80-81/udp']\n", lambda s: web(s).ports,
                 (PortSpec(80, 8000, "udp"), PortSpec(81, 8001, "udp")), id="port-range-udp"),
    pytest.param(HEAD + "    ports: ['127.0.0.1:8080:80']\n", lambda s: web(s).ports, (PortSpec(80, 8080, host_ip="127.0.0.1"),), id="port-ipv4-host"),
    pytest.param(HEAD + "    ports: ['[::1]:8080:80']\n", lambda s: web(s).ports, (PortSpec(80, 8080, host_ip="::1"),), id="port-ipv6-bracketed"),
    pytest.param(HEAD + "    ports: ['80']\n", lambda s: web(s).ports, (PortSpec(80),), id="port-target-only"),
    pytest.param(HEAD + "    ports:\n      - {target: 80, published: '8080', protocol: udp, mode: host, host_ip: 127.0.0.1}\n",
                 lambda s: web(s).ports, (PortSpec(80, 8080, "udp", "host", "127.0.0.1"),), id="port-long-syntax"),
    # --- environment, labels, misc service fields
    pytest.param(HEAD + "    environment: [A=1, B, C=x=y]\n", lambda s: dict(web(s).environment), {"A": "1", "B": None, "C": "x=y"}, id="env-list"),
    pytest.param(HEAD + "    environment:\n      A: 1\n      B: true\n      C:\n", lambda s: dict(web(s).environment), {"A": "1", "B": "true", "C": None}, id="env-map"),
    pytest.param(HEAD + "    environment: [TAG]\n", lambda s: dict(web(s).environment), {"TAG": "1.2"}, id="env-name-only-from-environment"),
    pytest.param(HEAD + "    labels: [a=b, c]\n", lambda s: dict(web(s).labels), {"a": "b", "c": ""}, id="labels-list"),
    pytest.param(HEAD + "    command: sh -c 'echo hi'\n    entrypoint: [/bin/x, y]\n",
                 lambda s: (web(s).command, web(s).entrypoint), (("sh", "-c", "echo hi"), ("/bin/x", "y")), id="command-string-split-entrypoint-list"),
    pytest.param(HEAD + "    hostname: h\n    user: '1000'\n    working_dir: /w\n    init: true\n    read_only: true\n    stop_signal: SIGINT\n",
                 lambda s: (web(s).hostname, web(s).user, web(s).working_dir, web(s).init, web(s).read_only, web(s).stop_signal),
                 ("h", "1000", "/w", True, True, "SIGINT"), id="simple-fields"),
    pytest.param(HEAD + "    cap_add: [NET_ADMIN]\n    cap_drop: [ALL]\n    dns: 8.8.8.8\n    tmpfs: /run\n",
                 lambda s: (web(s).cap_add, web(s).cap_drop, web(s).dns, web(s).tmpfs), (("NET_ADMIN",), ("ALL",), ("8.8.8.8",), ("/run",)), id="caps-dns-tmpfs"),
    pytest.param(HEAD + "    extra_hosts: ['db:10.0.0.2', 'v6=::1']\n", lambda s: web(s).extra_hosts, ("db:10.0.0.2", "v6:::1"), id="extra-hosts-list"),
    pytest.param(HEAD + "    extra_hosts: {db: 10.0.0.2}\n", lambda s: web(s).extra_hosts, ("db:10.0.0.2",), id="extra-hosts-map"),
    pytest.param(HEAD + "    ulimits:\n      nproc: 65535\n      nofile: {soft: 20000, hard: 40000}\n",
                 lambda s: web(s).ulimits, (Ulimit("nproc", 65535, 65535), Ulimit("nofile", 20000, 40000)), id="ulimits"),
    pytest.param(HEAD + "    sysctls: [net.core.somaxconn=1024]\n", lambda s: dict(web(s).sysctls), {"net.core.somaxconn": "1024"}, id="sysctls-list"),
    pytest.param(HEAD + "    logging:\n      driver: json-file\n      options: {max-size: 10m}\n",
                 lambda s: web(s).logging, LoggingSpec("json-file", {"max-size": "10m"}), id="logging"),
    pytest.param(HEAD + "    healthcheck:\n      test: curl -f http://localhost\n      interval: 10s\n      retries: 3\n      start_period: 1m\n",
                 lambda s: web(s).healthcheck, Healthcheck(("CMD-SHELL", "curl -f http://localhost"), 10.0, None, 3, 60.0), id="healthcheck-string"),
    pytest.param(HEAD + "    healthcheck:\n      disable: true\n", lambda s: web(s).healthcheck, Healthcheck(test=("NONE",)), id="healthcheck-disable"),
    pytest.param("services:\n  web:\n    build: ./app\n", lambda s: s.services["web"].build.context.endswith("/app"), True, id="build-string-relative"),
    pytest.param("services:\n  web:\n    build:\n      context: .\n      dockerfile: Dockerfile.dev\n      args: [A=1]\n      target: dev\n",
                 lambda s: (web(s).build.dockerfile, dict(web(s).build.args), web(s).build.target), ("Dockerfile.dev", {"A": "1"}, "dev"), id="build-mapping"),
    # --- volumes
    pytest.param(HEAD + "    volumes: ['data:/data:ro']\nvolumes:\n  data:\n",
                 lambda s: web(s).volumes, (MountSpec("volume", "/data", "data", read_only=True),), id="volume-short-named"),
    pytest.param(HEAD + "    volumes: ['/data']\n", lambda s: web(s).volumes, (MountSpec("volume", "/data"),), id="volume-short-anonymous"),
    pytest.param(HEAD + "    volumes: ['/etc/hosts:/h:ro,rslave']\n", lambda s: web(s).volumes,
                 (MountSpec("bind", "/h", "/etc/hosts", read_only=True, bind_propagation="rslave"),), id="volume-short-bind-absolute"),
    pytest.param(HEAD + "    volumes:\n      - {type: tmpfs, target: /t, tmpfs: {size: 1m, mode: 01777}}\n", lambda s: web(s).volumes,
                 (MountSpec("tmpfs", "/t", tmpfs_size=2**20, tmpfs_mode=0o1777),), id="volume-long-tmpfs"),
    pytest.param(HEAD + "    volumes:\n      - {type: bind, source: ~/x, target: /x, bind: {create_host_path: false}}\n",
                 lambda s: (web(s).volumes[0].source == str(Path("~/x").expanduser()), web(s).volumes[0].bind_create_host_path), (True, False), id="volume-long-bind-tilde"),
    pytest.param(HEAD + "    volumes:\n      - {type: volume, source: d, target: /d, volume: {nocopy: true}}\nvolumes:\n  d: {name: shared-d}\n",
                 lambda s: (web(s).volumes[0].volume_nocopy, s.volumes["d"].engine_name), (True, "shared-d"), id="volume-long-named-with-name"),
    # --- networks
    pytest.param(HEAD, lambda s: (web(s).networks, s.networks["default"].engine_name), ((NetworkAttachment("default"),), "test_default"), id="network-implicit-default"),
    pytest.param(HEAD + "    networks:\n      front:\n        aliases: [w]\n        ipv4_address: 10.0.0.5\nnetworks:\n  front:\n    ipam:\n      config: [{subnet: 10.0.0.0/24}]\n",
                 lambda s: (web(s).networks, s.networks["front"].subnets, "default" in s.networks),
                 ((NetworkAttachment("front", ("w",), "10.0.0.5"),), ("10.0.0.0/24",), False), id="network-map-aliases-ipam"),
    pytest.param(HEAD + "    networks: [outside]\nnetworks:\n  outside:\n    external: true\n    name: real-net\n",
                 lambda s: (s.networks["outside"].external, s.networks["outside"].engine_name), (True, "real-net"), id="network-external-name"),
    pytest.param(HEAD + "    networks: [n]\nnetworks:\n  n: {driver: overlay}\n",
                 lambda s: (s.networks["n"].driver, any("overlay" in w for w in s.warnings)), (None, True), id="network-overlay-warns"),
    # --- secrets and configs
    pytest.param(HEAD + "    secrets: [s]\n    configs: [c]\nsecrets:\n  s: {file: ./s.txt}\nconfigs:\n  c: {content: hello}\n",
                 lambda s: (web(s).secrets, web(s).configs, s.configs["c"].content),
                 ((FileReference("s", "/run/secrets/s"),), (FileReference("c", "/c"),), "hello"), id="secrets-configs-short"),
    pytest.param(HEAD + "    secrets: [s]\nsecrets:\n  s: {environment: TAG}\n", lambda s: s.secrets["s"].content, "1.2", id="secret-from-environment"),
    # --- deploy
    pytest.param(HEAD + "    deploy:\n      mode: global\n", lambda s: (web(s).mode, web(s).replicas), ("global", 1), id="deploy-global-one-replica"),
    pytest.param(HEAD + "    scale: 4\n", lambda s: web(s).replicas, 4, id="scale-key"),
    pytest.param(HEAD + "    deploy:\n      restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3, window: 2m}\n",
                 lambda s: web(s).restart_policy, RestartPolicy("on-failure", 5.0, 3, 120.0), id="restart-policy"),
    pytest.param(HEAD + "    deploy:\n      update_config: {parallelism: 2, delay: 10s, order: start-first, failure_action: rollback}\n",
                 lambda s: web(s).update_config, UpdateConfig(2, 10.0, "rollback", 5.0, 0.0, "start-first"), id="update-config"),
    pytest.param(HEAD + "    deploy:\n      labels: [a=b]\n      endpoint_mode: dnsrr\n",
                 lambda s: (dict(web(s).deploy_labels), web(s).endpoint_mode), ({"a": "b"}, "dnsrr"), id="deploy-labels-endpoint"),
    pytest.param(HEAD + "    restart: always\n", lambda s: web(s).restart_policy, RestartPolicy("any"), id="restart-always-any"),
    pytest.param(HEAD + "    restart: unless-stopped\n", lambda s: web(s).restart_policy, RestartPolicy("any"), id="restart-unless-stopped-any"),
    pytest.param(HEAD + "    restart: on-failure:3\n", lambda s: web(s).restart_policy, RestartPolicy("on-failure", max_attempts=3), id="restart-on-failure-n"),
    pytest.param(HEAD + "    restart: always\n    deploy:\n      restart_policy: {condition: none}\n",
                 lambda s: web(s).restart_policy.condition, "none", id="restart-policy-beats-restart"),
    pytest.param(HEAD + "    depends_on:\n      db: {condition: service_healthy}\n  db:\n    image: busybox\n",
                 lambda s: web(s).depends_on, (DependsOn("db", "service_healthy"),), id="depends-on-map"),
    # --- warnings for what one engine cannot do
    pytest.param(HEAD + "    deploy:\n      placement: {constraints: [node.role==manager]}\n",
                 lambda s: s.warnings, ("services.web.deploy.placement: placement has no meaning on one engine; ignored",), id="warn-placement"),
    pytest.param(HEAD + "    privileged: true\n", lambda s: s.warnings[0].startswith("services.web.privileged: not supported"), True, id="warn-unsupported-key"),
    pytest.param(HEAD + "    deploy:\n      endpoint_mode: vip\n", lambda s: s.warnings[0].startswith("services.web.deploy.endpoint_mode"), True, id="warn-endpoint-vip"),
    # --- stack name
    pytest.param("name: My_App!\n" + HEAD, lambda s: s.name, "test", id="name-argument-wins"),
]


@pytest.mark.parametrize(("text", "get", "expected"), VALID)
def test_valid(tmp_path: Path, text: str, get: Callable[[StackSpec], Any], expected: Any) -> None:
    (tmp_path / "s.txt").write_text("secret")
    assert get(load(tmp_path, text, ENV)) == expected


INVALID = [
    pytest.param("services: [\n", "", 2, "invalid YAML", id="err-yaml-syntax"),
    pytest.param("- a\n", "", 1, "top level must be a mapping", id="err-top-not-mapping"),
    pytest.param("", "", 1, "empty", id="err-empty-file"),
    pytest.param(HEAD + "    image: other\n", "services.web.image", 4, "duplicate key", id="err-duplicate-key"),
    pytest.param("a: &a [*a]\n" + HEAD, "a[0]", 1, "recursive", id="err-recursive-alias"),
    pytest.param(HEAD + "    bogus: 1\n", "services.web.bogus", 4, "unknown key 'bogus'", id="err-unknown-service-key"),
    pytest.param("bogus: 1\n" + HEAD, "bogus", 1, "unknown key", id="err-unknown-top-key"),
    pytest.param(HEAD + "    deploy:\n      replicas: -1\n", "services.web.deploy.replicas", 5, "at least 0", id="err-negative-replicas"),
    pytest.param(HEAD + "    deploy:\n      replicas: many\n", "services.web.deploy.replicas", 5, "must be an integer", id="err-replicas-not-int"),
    pytest.param(HEAD + "    deploy:\n      mode: global\n      replicas: 2\n", "services.web.deploy.replicas", 6, "mode: replicated", id="err-replicas-with-global"),
    pytest.param(HEAD + "    deploy:\n      mode: replicated-job\n", "services.web.deploy.mode", 5, "not supported", id="err-job-mode"),
    pytest.param(HEAD + "    stop_grace_period: 10 seconds\n", "services.web.stop_grace_period", 4, "invalid duration", id="err-bad-duration"),
    pytest.param(HEAD + "    deploy:\n      restart_policy: {delay: -5s}\n", "services.web.deploy.restart_policy.delay", 5, "invalid duration", id="err-negative-duration"),
    pytest.param(HEAD + "    deploy:\n      resources:\n        limits: {memory: 50X}\n", "services.web.deploy.resources.limits.memory", 6, "invalid byte size", id="err-bad-bytes"),
    pytest.param(HEAD + "    deploy:\n      resources:\n        limits: {cpus: lots}\n", "services.web.deploy.resources.limits.cpus", 6, "invalid CPU count", id="err-bad-cpus"),
    pytest.param(HEAD + "    deploy:\n      restart_policy: {condition: sometimes}\n", "services.web.deploy.restart_policy.condition", 5, "not one of", id="err-bad-condition"),
    pytest.param(HEAD + "    restart: sometimes\n", "services.web.restart", 4, "unknown restart policy", id="err-bad-restart"),
    pytest.param(HEAD + "    restart: on-failure:x\n", "services.web.restart", 4, "retry count", id="err-bad-restart-count"),
    pytest.param("services:\n  web:\n    image: ${NOPE:?set NOPE}\n", "services.web.image", 3, "required variable NOPE", id="err-required-variable"),
    pytest.param("services:\n  web:\n    image: a$\n", "services.web.image", 3, "lone '$'", id="err-lone-dollar"),
    pytest.param("services:\n  web:\n    image: ${A\n", "services.web.image", 3, "invalid interpolation", id="err-unclosed-brace"),
    pytest.param(HEAD + "    networks: [nope]\n", "services.web.networks", 4, "network 'nope' is not defined", id="err-undefined-network"),
    pytest.param(HEAD + "    volumes: ['nope:/data']\n", "services.web.volumes", 4, "volume 'nope' is not defined", id="err-undefined-volume"),
    pytest.param(HEAD + "    secrets: [nope]\n", "services.web.secrets", 4, "secret 'nope' is not defined", id="err-undefined-secret"),
    pytest.param(HEAD + "    configs: [nope]\n", "services.web.configs", 4, "config 'nope' is not defined", id="err-undefined-config"),
    pytest.param(HEAD + "    depends_on: [db]\n", "services.web.depends_on", 4, "service 'db' is not defined", id="err-depends-unknown"),
    pytest.param(HEAD + "    depends_on: [db]\n  db:\n    image: busybox\n    depends_on: [web]\n", "services.web.depends_on", 4, "cycle: web -> db -> web", id="err-depends-cycle"),
    pytest.param(HEAD + "    depends_on: [web]\n", "services.web.depends_on", 4, "itself", id="err-depends-self"),
    pytest.param(HEAD + "volumes:\n  d:\n    external: true\n    driver: local\n", "volumes.d.driver", 7, "conflicting", id="err-external-with-driver"),
    pytest.param(HEAD + "networks:\n  n:\n    external: true\n    driver: bridge\n", "networks.n.driver", 7, "conflicting", id="err-network-external-driver"),
    pytest.param(HEAD + "    ports: ['80:80']\n  api:\n    image: busybox\n    ports: ['80:80']\n", "services.api.ports", 7, "already used by service 'web'", id="err-duplicate-published-port"),
    pytest.param(HEAD + "    deploy: {replicas: 2}\n    ports:\n      - {target: 80, published: 80, mode: host}\n", "services.web.ports", 5, "host-mode port", id="err-host-port-replicas"),
    pytest.param(HEAD + "    ports: ['8000-8010:80']\n", "services.web.ports[0]", 4, "same size", id="err-port-range-mismatch"),
    pytest.param(HEAD + "    ports: ['80:80/icmp']\n", "services.web.ports[0]", 4, "invalid protocol", id="err-port-protocol"),
    pytest.param(HEAD + "    ports: ['99999:80']\n", "services.web.ports[0]", 4, "invalid port range", id="err-port-out-of-range"),
    pytest.param(HEAD + "    volumes: ['data:relative']\nvolumes:\n  data:\n", "services.web.volumes[0]", 4, "must be absolute", id="err-volume-relative-target"),
    pytest.param(HEAD + "    volumes:\n      - {type: npipe, target: /x}\n", "services.web.volumes[0].type", 5, "not one of", id="err-volume-type"),
    pytest.param("services:\n  web:\n    user: root\n", "services.web", 2, "needs an image", id="err-no-image"),
    pytest.param("version: '3'\n", "", 1, "needs services", id="err-no-services"),
    pytest.param(HEAD + "    extends: base\n", "services.web.extends", 4, "extends is not supported", id="err-forbidden-extends"),
    pytest.param(HEAD + "    healthcheck:\n      test: [curl, x]\n", "services.web.healthcheck.test", 5, "NONE, CMD or CMD-SHELL", id="err-healthcheck-test"),
    pytest.param(HEAD + "    healthcheck:\n      test: [CMD, x]\n      disable: true\n", "services.web.healthcheck.disable", 6, "cannot be set", id="err-healthcheck-disable-and-test"),
    pytest.param(HEAD + "    scale: 2\n    deploy: {replicas: 3}\n", "services.web.scale", 4, "disagree", id="err-scale-vs-replicas"),
    pytest.param(HEAD + "    secrets: [s]\nsecrets:\n  s: {file: ./missing.txt}\n", "secrets.s.file", 6, "does not exist", id="err-secret-file-missing"),
    pytest.param(HEAD + "    env_file: missing.env\n", "services.web.env_file", 4, "cannot read env file", id="err-env-file-missing"),
    pytest.param(HEAD + "    environment: {A: [1]}\n", "services.web.environment.A", 4, "must be a string", id="err-env-value-list"),
    pytest.param(HEAD + "    command: \"echo 'unterminated\"\n", "services.web.command", 4, "cannot split", id="err-command-quote"),
    pytest.param(HEAD + "    deploy: [1]\n", "services.web.deploy", 4, "must be a mapping", id="err-deploy-not-mapping"),
    pytest.param("services:\n  'bad name':\n    image: busybox\n", "services.bad name", 2, "invalid service name", id="err-service-name"),
    pytest.param(HEAD + "    ulimits:\n      nofile: {soft: 10, hard: 5}\n", "services.web.ulimits.nofile.soft", 5, "above the hard", id="err-ulimit-soft-above-hard"),
    pytest.param(HEAD + "    deploy:\n      update_config: {max_failure_ratio: 2}\n", "services.web.deploy.update_config.max_failure_ratio", 5, "between 0 and 1", id="err-failure-ratio"),
    pytest.param(HEAD + "    deploy:\n      rollback_config: {failure_action: rollback}\n", "services.web.deploy.rollback_config.failure_action", 5, "not one of", id="err-rollback-of-rollback"),
    pytest.param(HEAD + "    user: !custom x\n", "services.web.user", 4, "unsupported YAML tag", id="err-unknown-tag"),
    pytest.param(HEAD + "    dns: [!reset 1]\n", "services.web.dns[0]", 4, "only allowed on a mapping value", id="err-reset-in-list"),
]


@pytest.mark.parametrize(("text", "path", "line", "message"), INVALID)
def test_invalid(tmp_path: Path, text: str, path: str, line: int, message: str) -> None:
    problem_at(load_error(tmp_path, text, ENV), path, line, message)


def test_all_problems_of_a_file_are_reported_at_once(tmp_path: Path) -> None:
    text = HEAD + "    bogus: 1\n    deploy:\n      replicas: -1\n    networks: [nope]\n    stop_grace_period: 1x\n"
    error = load_error(tmp_path, text)
    assert [(p.path, p.line) for p in error.problems] == [
        ("services.web.bogus", 4),
        ("services.web.deploy.replicas", 6),
        ("services.web.networks", 7),
        ("services.web.stop_grace_period", 8),
    ]
    assert (error.path, error.line, error.file) == ("services.web.bogus", 4, str(tmp_path / "stack.yml"))
