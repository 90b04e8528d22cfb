"""The rule table: one small stack file per rule, with the exact value it must load to, or the
key path, line and message of the error it must raise."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.model.spec import (
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
from orchestrator.stackfile import dump, stack_to_compose
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
    # --- stack files as people write them (issue 13): compose-spec features
    pytest.param(HEAD + "---\nservices:\n  web:\n    user: nobody\n", lambda s: (web(s).image, web(s).user), ("busybox", "nobody"), id="documents-merge-like-files"),
    pytest.param("---\n" + HEAD + "---\n", lambda s: web(s).image, "busybox", id="documents-empty-ones-skipped"),
    pytest.param("networks:\n  n: {}\n", lambda s: (s.services, list(s.networks)), ({}, ["n"]), id="no-services-is-valid"),
    pytest.param("name: only\n", lambda s: s.services, {}, id="only-a-name-is-valid"),
    pytest.param("services:\n  x-web:\n    image: busybox\n", lambda s: list(s.services), ["x-web"], id="x-name-under-services-is-a-service"),
    pytest.param("networks:\n  x-net: {}\nservices:\n  web:\n    image: busybox\n    networks: [x-net]\n",
                 lambda s: s.networks["x-net"].engine_name, "test_x-net", id="x-name-under-networks-is-a-network"),
    pytest.param(HEAD + "    networks: [default, front]\nnetworks:\n  front: {}\n",
                 lambda s: ([a.network for a in web(s).networks], s.networks["default"].engine_name), (["default", "front"], "test_default"),
                 id="network-default-named-with-others"),
    pytest.param(HEAD + "    networks: [default]\nnetworks:\n  default: {name: custom}\n", lambda s: s.networks["default"].engine_name, "custom", id="network-default-declared"),
    pytest.param(HEAD + "    extends: base\n    environment: {B: '3'}\n  base:\n    image: alpine\n    user: nobody\n    environment: [A=1, B=2]\n    ports: ['80']\n",
                 lambda s: (web(s).image, web(s).user, dict(web(s).environment), web(s).ports), ("busybox", "nobody", {"A": "1", "B": "3"}, (PortSpec(80),)),
                 id="extends-same-file-merges"),
    pytest.param("services:\n  web:\n    extends: {service: mid}\n  mid:\n    extends: base\n    user: mid\n  base:\n    image: busybox\n    hostname: base\n",
                 lambda s: (web(s).image, web(s).user, web(s).hostname), ("busybox", "mid", "base"), id="extends-chain"),
    pytest.param("services:\n  web:\n    extends: base\n    ports: !override ['81']\n  base:\n    image: busybox\n    ports: ['80']\n",
                 lambda s: web(s).ports, (PortSpec(81),), id="extends-override-tag"),
    pytest.param(HEAD + "    extra_hosts: ['db=10.0.0.2,10.0.0.3', 'v6:::1']\n", lambda s: web(s).extra_hosts,
                 ("db:10.0.0.2", "db:10.0.0.3", "v6:::1"), id="extra-hosts-several-ips"),
    pytest.param(HEAD + "    extra_hosts:\n      db: [10.0.0.2, '[::1]']\n      gw: host-gateway\n", lambda s: web(s).extra_hosts,
                 ("db:10.0.0.2", "db:::1", "gw:host-gateway"), id="extra-hosts-map-with-list"),
    pytest.param(HEAD + "    tmpfs: ['/run:size=1G,mode=01777,noexec', /tmp]\n", lambda s: web(s).tmpfs, ("/run:size=1G,mode=01777,noexec", "/tmp"), id="tmpfs-options"),
    pytest.param(HEAD + "    volumes: ['data:/d:ro,nocopy', /anon]\nvolumes:\n  data:\n",
                 lambda s: web(s).volumes, (MountSpec("volume", "/d", "data", read_only=True, volume_nocopy=True), MountSpec("volume", "/anon")),
                 id="volume-short-options-and-anonymous"),
    pytest.param(HEAD + "    command: echo ${NOPE:-$$HOME}\n", lambda s: web(s).command, ("echo", "$HOME"), id="interp-escaped-dollar-in-default"),
    pytest.param(HEAD + "    command: echo ${TAG:-$2}\n", lambda s: web(s).command, ("echo", "1.2"), id="interp-unused-default-not-read"),
    pytest.param(HEAD + "    networks: [n]\nnetworks:\n  n: {external: true, driver: overlay}\n",
                 lambda s: (s.networks["n"].external, s.networks["n"].driver, s.warnings),
                 (True, None, ("networks.n.driver: has no effect on an external network (it exists already); ignored",)), id="network-external-other-keys-warn"),
    pytest.param(HEAD + "    volumes: ['dv:/d']\nvolumes:\n  dv:\n    external: {name: real}\n",
                 lambda s: (s.volumes["dv"].engine_name, s.warnings), ("real", ("volumes.dv.external.name: external.name is deprecated: write name and external: true",)),
                 id="volume-external-name-deprecated"),
    pytest.param("models:\n  m: {model: ai/smollm2}\n" + HEAD, lambda s: s.warnings[0].startswith("models: AI models"), True, id="models-warned"),
    pytest.param(HEAD + "    pre_start: [{command: [echo]}]\n    post_start: [{command: echo}]\n    pull_refresh_after: 1h\n    provider: {type: x}\n"
                 "    build:\n      context: .\n      no_cache_filter: [a]\n      provenance: true\n      sbom: true\n",
                 lambda s: sorted(w.split(":")[0] for w in s.warnings),
                 sorted(["services.web.pre_start", "services.web.post_start", "services.web.pull_refresh_after", "services.web.provider",
                         "services.web.build.no_cache_filter", "services.web.build.provenance", "services.web.build.sbom"]),
                 id="newer-keys-warned"),
    pytest.param(HEAD + "    volumes:\n      - {type: bind, source: ., target: /b, bind: {recursive: enabled}}\n      - {type: volume, target: /v, volume: {labels: {a: b}}}\n",
                 lambda s: len(s.warnings), 2, id="newer-mount-options-warned"),
    pytest.param("version: '3.8'\n" + HEAD, lambda s: web(s).image, "busybox", id="version-string"),
    pytest.param(HEAD + "    command: echo $(date) ^x$ a$\n", lambda s: web(s).command, ("echo", "$(date)", "^x$", "a$"), id="interp-dollar-without-variable-kept"),
    pytest.param(HEAD + "    labels: {users: 'admin:${PW:-$2y$05$oZcj4Fgd}'}\n", lambda s: (web(s).labels["users"], [w.split(": ")[1][:25] for w in s.warnings]),
                 ("admin:$2y$05$oZcj4Fgd", ["the default of ${PW:-...}"]), id="interp-bcrypt-default-kept-as-docker-stack-deploy"),
    pytest.param(HEAD + "    deploy:\n      restart_policy: {condition: unless-stopped}\n", lambda s: web(s).restart_policy.condition, "any", id="restart-condition-engine-name"),
    pytest.param("services:\n  web:\n    image: ''\n    build: .\n", lambda s: (web(s).image, web(s).build is not None), (None, True), id="empty-image-with-build"),
    pytest.param(HEAD + "    environment: [A=1, B=2, A=3]\n    volumes: ['va:/d', 'vb:/d']\n    ports: ['80', '80']\nvolumes:\n  va:\n  vb:\n",
                 lambda s: (dict(web(s).environment), web(s).volumes, web(s).ports, s.warnings),
                 ({"A": "3", "B": "2"}, (MountSpec("volume", "/d", "vb"),), (PortSpec(80),),
                  ("services.web.volumes[1]: replaces an earlier entry for the same container path or port (as compose does)",)),
                 id="list-entries-unique-by-key-later-wins"),
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
    pytest.param(HEAD + "    deploy:\n      mode: replicated-job\n", "services.web.deploy.mode", 5, "runs only on Swarm", id="err-job-mode"),
    pytest.param(HEAD + "    stop_grace_period: 10 seconds\n", "services.web.stop_grace_period", 4, "invalid duration", id="err-bad-duration"),
    pytest.param(HEAD + "    deploy:\n      restart_policy: {delay: -5s}\n", "services.web.deploy.restart_policy.delay", 5, "invalid duration", id="err-negative-duration"),
    pytest.param(HEAD + "    deploy:\n      resources:\n        limits: {memory: 50X}\n", "services.web.deploy.resources.limits.memory", 6, "invalid byte size", id="err-bad-bytes"),
    pytest.param(HEAD + "    deploy:\n      resources:\n        limits: {cpus: lots}\n", "services.web.deploy.resources.limits.cpus", 6, "invalid CPU count", id="err-bad-cpus"),
    pytest.param(HEAD + "    deploy:\n      restart_policy: {condition: sometimes}\n", "services.web.deploy.restart_policy.condition", 5, "not one of", id="err-bad-condition"),
    pytest.param(HEAD + "    restart: sometimes\n", "services.web.restart", 4, "unknown restart policy", id="err-bad-restart"),
    pytest.param(HEAD + "    restart: on-failure:x\n", "services.web.restart", 4, "retry count", id="err-bad-restart-count"),
    pytest.param("services:\n  web:\n    image: ${NOPE:?set NOPE}\n", "services.web.image", 3, "required variable NOPE", id="err-required-variable"),
    pytest.param("services:\n  web:\n    image: ${A\n", "services.web.image", 3, "invalid interpolation", id="err-unclosed-brace"),
    pytest.param(HEAD + "    networks: [nope]\n", "services.web.networks", 4, "network 'nope' is not defined", id="err-undefined-network"),
    pytest.param(HEAD + "    volumes: ['nope:/data']\n", "services.web.volumes", 4, "volume 'nope' is not defined", id="err-undefined-volume"),
    pytest.param(HEAD + "    secrets: [nope]\n", "services.web.secrets", 4, "secret 'nope' is not defined", id="err-undefined-secret"),
    pytest.param(HEAD + "    configs: [nope]\n", "services.web.configs", 4, "config 'nope' is not defined", id="err-undefined-config"),
    pytest.param(HEAD + "    depends_on: [db]\n", "services.web.depends_on", 4, "service 'db' is not defined", id="err-depends-unknown"),
    pytest.param(HEAD + "    depends_on: [db]\n  db:\n    image: busybox\n    depends_on: [web]\n", "services.web.depends_on", 4, "cycle: web -> db -> web", id="err-depends-cycle"),
    pytest.param(HEAD + "    depends_on: [web]\n", "services.web.depends_on", 4, "itself", id="err-depends-self"),
    pytest.param(HEAD + "volumes:\n  d:\n    external: true\n    driver: local\n", "volumes.d.driver", 7, "conflicting", id="err-external-with-driver"),
    pytest.param(HEAD + "    ports: ['80:80']\n  api:\n    image: busybox\n    ports: ['80:80']\n", "services.api.ports", 7, "already used by service 'web'", id="err-duplicate-published-port"),
    pytest.param(HEAD + "    deploy: {replicas: 2}\n    ports:\n      - {target: 80, published: 80, mode: host}\n", "services.web.ports", 5, "host-mode port", id="err-host-port-replicas"),
    pytest.param(HEAD + "    ports: ['8000-8010:80-81']\n", "services.web.ports[0]", 4, "same size", id="err-port-range-mismatch"),
    pytest.param(HEAD + "    ports: ['80:80/icmp']\n", "services.web.ports[0]", 4, "invalid protocol", id="err-port-protocol"),
    pytest.param(HEAD + "    ports: ['99999:80']\n", "services.web.ports[0]", 4, "invalid port range", id="err-port-out-of-range"),
    pytest.param(HEAD + "    volumes: ['data:relative']\nvolumes:\n  data:\n", "services.web.volumes[0]", 4, "must be absolute", id="err-volume-relative-target"),
    pytest.param(HEAD + "    volumes:\n      - {type: nfs, target: /x}\n", "services.web.volumes[0].type", 5, "not one of", id="err-volume-type"),
    pytest.param("services:\n  web:\n    user: root\n", "services.web", 2, "needs an image", id="err-no-image"),
    pytest.param("version: '3'\n", "", 1, "the stack file is empty", id="err-only-version-is-empty"),
    pytest.param(HEAD + "    extends: base\n", "services.web.extends", 4, "service 'base' to extend is not defined", id="err-extends-unknown-service"),
    pytest.param(HEAD + "    healthcheck:\n      test: [curl, x]\n", "services.web.healthcheck.test", 5, "NONE, CMD or CMD-SHELL", id="err-healthcheck-test"),
    pytest.param(HEAD + "    healthcheck:\n      test: [CMD, x]\n      disable: true\n", "services.web.healthcheck.disable", 6, "cannot be set", id="err-healthcheck-disable-and-test"),
    pytest.param(HEAD + "    scale: 2\n    deploy: {replicas: 3}\n", "services.web.scale", 4, "disagree", id="err-scale-vs-replicas"),
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
    # --- too lenient before (issue 13): what compose-go refuses
    pytest.param("services:\n  123:\n    image: busybox\n", "services", 2, "a mapping key must be a string, not a number '123'", id="err-number-service-name"),
    pytest.param(HEAD + "    environment:\n      1: FOO\n", "services.web.environment", 5, "must be a string, not a number", id="err-number-env-key"),
    pytest.param(HEAD + "    labels: {true: x}\n", "services.web.labels", 4, "not a boolean", id="err-boolean-key"),
    pytest.param(HEAD + "    environment:\n      - DEBUG = true\n", "services.web.environment[0]", 5, "ends with a space", id="err-env-spaces-around-equals"),
    pytest.param("version: 3\n" + HEAD, "version", 1, 'must be a string (write version: "3")', id="err-version-number"),
    pytest.param("name: 123\n" + HEAD, "name", 1, "must be a string, not a number", id="err-name-number"),
    pytest.param(HEAD + "networks:\n  n: {name: 1}\n", "networks.n.name", 5, "must be a string", id="err-network-name-number"),
    pytest.param(HEAD + "volumes:\n  v:\n    external: {name: a}\n    name: b\n", "volumes.v.name", 7, "conflict; only use name", id="err-external-name-conflict"),
    pytest.param(HEAD + "    volumes: [db-data]\n", "services.web.volumes[0]", 4, "to mount the named volume 'db-data' write 'db-data:/container/path'", id="err-volume-name-without-target"),
    pytest.param(HEAD + "    volumes: ['/data:ro']\n", "services.web.volumes[0]", 4, "compose reads '/data:ro' as '/data' mounted at 'ro'", id="err-volume-path-then-option"),
    pytest.param(HEAD + "    volumes: ['va:vb:/c:ro']\n", "services.web.volumes[0]", 4, "too many ':'", id="err-volume-too-many-colons"),
    pytest.param(HEAD + "    tmpfs: [/data]\n    volumes: ['/data']\n", "services.web.volumes[0]", 5, "already mounted by services.web.tmpfs[0]", id="err-mount-target-twice"),
    pytest.param(HEAD + "    extra_hosts: [db]\n", "services.web.extra_hosts[0]", 4, "must be 'host=ip' or 'host:ip'", id="err-extra-host-no-ip"),
    pytest.param(HEAD + "    extra_hosts: {db: [nope]}\n", "services.web.extra_hosts.db", 4, "not an IP address", id="err-extra-host-map-bad-ip"),
    pytest.param(HEAD + "    user: ${ bad}\n", "services.web.user", 4, "bad variable name (write '$$' for a literal '$')", id="err-interpolation-says-how-to-escape"),
    pytest.param("services:\n  web:\n    image: ${NOPE}\n", "services.web.image", 3, "the image is empty (is the variable it names set?)", id="err-empty-image"),
    pytest.param(HEAD + "secrets:\n  s: {driver: vault}\n", "secrets.s.driver", 5, "a secret from a driver", id="err-secret-from-a-driver"),
    pytest.param("services:\n  ai:\n    provider: x\n", "services.ai.provider", 3, "must be a mapping, not a string", id="err-provider-not-a-mapping"),
    pytest.param("services:\n  web:\n    extends: web\n    image: busybox\n", "services.web.extends", 3, "extends cycle: web -> web", id="err-extends-self"),
    pytest.param(HEAD + "  a:\n    extends: b\n  b:\n    extends: a\n", "services.a.extends", 5, "extends cycle: a -> b -> a", id="err-extends-cycle"),
    pytest.param(HEAD + "    extends: {file: other.yml}\n", "services.web.extends", 4, "needs the name of the service to extend", id="err-extends-without-service"),
    pytest.param(HEAD + "    extends: {service: base, file: missing.yml}\n", "services.web.extends.file", 4, "does not exist", id="err-extends-file-missing"),
    pytest.param("include: common.yml\n" + HEAD, "include", 1, "must be a list of files", id="err-include-not-a-list"),
    pytest.param("include: [missing.yml]\n" + HEAD, "include[0]", 1, "does not exist", id="err-include-missing-file"),
    # --- a key we ignore (warned about) must still hold what the compose-spec schema allows
    pytest.param(HEAD + "    deploy:\n      resources:\n        reservations:\n          devices:\n            - count: 1\n",
                 "services.web.deploy.resources.reservations.devices[0]", 8, "needs 'capabilities' (the compose-spec schema)", id="err-ignored-key-schema-required"),
    pytest.param(HEAD + "    gpus:\n      - {capabilities: [gpu], count: some, device_ids: ['0']}\n", "services.web.gpus[0].count", 5,
                 "must be all or a number, not 'some'", id="err-ignored-key-device-count"),
    pytest.param("services:\n  web:\n    image: busybox\n    build:\n      context: .\n      ssh: default\n",
                 "services.web.build.ssh", 6, "must be a mapping or a list, not 'default'", id="err-ignored-key-schema-type"),
    pytest.param(HEAD + "    develop:\n      watch:\n        - {path: ., action: bogus}\n", "services.web.develop.watch[0].action", 6,
                 "'bogus' is not one of rebuild, sync", id="err-ignored-key-schema-enum"),
    pytest.param(HEAD + "    deploy:\n      placement:\n        constraints: node.role==manager\n", "services.web.deploy.placement.constraints", 6,
                 "must be a list, not 'node.role==manager'", id="err-ignored-key-schema-list"),
    # --- rejected for the right reason: one problem, not its consequences
    pytest.param(HEAD + "    depends_on: [db]\n  db: busybox\n", "services.db", 5, "must be a mapping", id="err-bad-service-not-also-undefined"),
    pytest.param("services:\n  web:\n    image: ${IMAGE:?set IMAGE}\n", "services.web.image", 3, "required variable IMAGE", id="err-interpolation-not-also-bad-image"),
    pytest.param("services:\n  web:\n    extends: nope\n", "services.web.extends", 3, "service 'nope' to extend is not defined", id="err-extends-not-also-no-image"),
    pytest.param("web:\n  image: busybox\n", "web", 1, "unknown key 'web'", id="err-version-1-file"),
]


@pytest.mark.parametrize(("text", "path", "line", "message"), INVALID)
def test_invalid(tmp_path: Path, text: str, path: str, line: int, message: str) -> None:
    problem_at(load_error(tmp_path, text, ENV), path, line, message)


#: Valid compose (compose-go loads it) that one Linux engine cannot run: `config` warns, a deploy
#: is refused at the key path.
UNRUNNABLE = [
    pytest.param(HEAD + "    volumes: ['C:\\\\data:/data']\n", "services.web.volumes[0]", 4, "Windows path", id="unrunnable-volume-windows-source"),
    pytest.param(HEAD + "    volumes: ['data:C:\\\\data']\nvolumes:\n  data:\n", "services.web.volumes[0]", 4, "not supported on a Linux engine", id="unrunnable-volume-windows-target"),
    pytest.param(HEAD + "    volumes:\n      - {type: bind, source: '\\\\.\\pipe\\docker_engine', target: /p}\n", "services.web.volumes[0].source", 5, "Windows path", id="unrunnable-volume-long-npipe-path"),
    pytest.param(HEAD + "    volumes:\n      - {type: npipe, source: x, target: /x}\n", "services.web.volumes[0].type", 5, "not supported on a Linux engine", id="unrunnable-volume-type-npipe"),
    pytest.param(HEAD + "    volumes:\n      - {type: cluster, source: x, target: /x}\n", "services.web.volumes[0].type", 5, "Swarm CSI", id="unrunnable-volume-type-cluster"),
    pytest.param(HEAD + "    volumes:\n      - {type: image, source: alpine, target: /x}\n", "services.web.volumes[0].type", 5, "image mounts", id="unrunnable-volume-type-image"),
    pytest.param("services:\n  web:\n    provider: {type: model}\n", "services.web.provider", 3, "cannot run on this orchestrator", id="unrunnable-provider-without-image"),
]


@pytest.mark.parametrize(("text", "path", "line", "message"), UNRUNNABLE)
def test_what_the_engine_cannot_run_is_refused_by_a_deploy(tmp_path: Path, text: str, path: str, line: int, message: str) -> None:
    problem_at(load_error(tmp_path, text, ENV, deploying=True), path, line, message)


@pytest.mark.parametrize(("text", "path", "line", "message"), UNRUNNABLE)
def test_what_the_engine_cannot_run_is_a_warning_for_config(tmp_path: Path, text: str, path: str, line: int, message: str) -> None:
    spec = load(tmp_path, text, ENV)
    assert any(w.startswith(path) and message in w and "deploying this stack fails" in w for w in spec.warnings), spec.warnings


ONLY_PROBLEM = [case for case in INVALID if case.id.startswith(("err-bad-service-not", "err-interpolation-not", "err-extends-not", "err-version-1", "err-only-version"))]


@pytest.mark.parametrize(("text", "path", "line", "message"), ONLY_PROBLEM)
def test_the_real_problem_is_the_only_one(tmp_path: Path, text: str, path: str, line: int, message: str) -> None:
    """A structural problem does not cascade into misleading ones ("not defined", "invalid
    image", "needs services") that would hide it."""
    error = load_error(tmp_path, text, ENV)
    assert [(p.path, p.line) for p in error.problems] == [(path, line)], str(error)


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


@pytest.mark.parametrize("ports", ["['8000-8010:80']", "[{target: 80, published: '8000-8010'}]"])
def test_a_host_range_for_one_port_publishes_its_first_port_with_a_warning(tmp_path: Path, ports: str) -> None:
    spec = load(tmp_path, HEAD + f"    ports: {ports}\n", ENV)
    (port,) = spec.services["web"].ports
    assert (port.published, port.target) == (8000, 80)
    assert any(w.startswith("services.web.ports[0]") and "port 8000, the first of the range" in w for w in spec.warnings)


def test_a_provider_service_round_trips_through_config(tmp_path: Path) -> None:
    text = "services:\n  ai:\n    provider: {type: model, options: {model: ai/smollm2}}\n  web:\n    image: busybox\n    depends_on: [ai]\n"
    spec = load(tmp_path, text, ENV)
    assert spec.services["ai"].provider == {"type": "model", "options": {"model": "ai/smollm2"}}
    again = load(tmp_path, dump(stack_to_compose(spec), "yaml"), ENV)
    assert again.services == spec.services
