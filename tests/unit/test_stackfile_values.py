"""Every value is checked before anything changes (issue 12): numbers in range and finite, strings
the engine forbids, names the engine accepts. Each invalid case asserts the key path, the line
and the message; each valid case pins a boundary that must still load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.model.spec import StackSpec, Ulimit
from tests.unit.stackfile_helpers import load, load_error, problem_at

HEAD = "services:\n  web:\n    image: busybox\n"
LIMITS = HEAD + "    deploy:\n      resources:\n        limits: "


def web(stack: StackSpec) -> Any:
    return stack.services["web"]


INVALID = [
    # --- numbers: finite, in the engine's range
    pytest.param(LIMITS + "{cpus: '1e308'}\n", "services.web.deploy.resources.limits.cpus", 6, "from 0.01 to 1024", id="cpus-1e308"),
    pytest.param(LIMITS + "{cpus: .nan}\n", "services.web.deploy.resources.limits.cpus", 6, "from 0.01 to 1024", id="cpus-nan"),
    pytest.param(LIMITS + "{cpus: 0.001}\n", "services.web.deploy.resources.limits.cpus", 6, "from 0.01", id="cpus-under-engine-minimum"),
    pytest.param(LIMITS + "{memory: 1b}\n", "services.web.deploy.resources.limits.memory", 6, "minimum of 6 MiB", id="memory-1b"),
    pytest.param(LIMITS + "{memory: 99999999999999999999G}\n", "services.web.deploy.resources.limits.memory", 6,
                 "over the maximum of 9223372036854775807 bytes", id="memory-over-int64"),
    pytest.param(LIMITS + f"{{memory: {10**30}}}\n", "services.web.deploy.resources.limits.memory", 6,
                 "over the maximum", id="memory-1e30-bytes"),
    pytest.param(LIMITS + "{pids: " + str(2**64) + "}\n", "services.web.deploy.resources.limits.pids", 6, "at most 9223372036854775807", id="pids-over-int64"),
    pytest.param(HEAD + "    deploy:\n      resources:\n        limits: {memory: 64m}\n        reservations: {memory: 128m}\n",
                 "services.web.deploy.resources.reservations.memory", 7, "above the limit", id="reservation-above-limit"),
    pytest.param(HEAD + "    deploy:\n      restart_policy: {delay: .nan}\n", "services.web.deploy.restart_policy.delay", 5, "not a number", id="delay-nan"),
    pytest.param(HEAD + "    deploy:\n      restart_policy: {window: .inf}\n", "services.web.deploy.restart_policy.window", 5, "over the maximum of one year", id="window-inf"),
    pytest.param(HEAD + "    stop_grace_period: 1e30\n", "services.web.stop_grace_period", 4, "over the maximum of one year", id="grace-1e30"),
    pytest.param(HEAD + "    stop_grace_period: 1e30s\n", "services.web.stop_grace_period", 4, "invalid duration", id="grace-1e30s"),
    pytest.param(HEAD + "    stop_grace_period: 9999999h\n", "services.web.stop_grace_period", 4, "over the maximum of one year", id="grace-hours"),
    pytest.param(HEAD + "    deploy:\n      update_config: {monitor: -.inf}\n", "services.web.deploy.update_config.monitor", 5, "must not be negative", id="monitor-minus-inf"),
    pytest.param(HEAD + "    deploy:\n      update_config: {max_failure_ratio: .nan}\n", "services.web.deploy.update_config.max_failure_ratio", 5, "finite", id="ratio-nan"),
    pytest.param(HEAD + "    deploy:\n      update_config: {parallelism: 1e12}\n", "services.web.deploy.update_config.parallelism", 5, "at most 2147483647", id="parallelism-huge"),
    pytest.param(HEAD + "    deploy:\n      restart_policy: {max_attempts: .inf}\n", "services.web.deploy.restart_policy.max_attempts", 5, "must be an integer", id="max-attempts-inf"),
    pytest.param(HEAD + "    healthcheck:\n      interval: 1us\n", "services.web.healthcheck.interval", 5, "at least 1ms", id="health-interval-under-1ms"),
    pytest.param(HEAD + "    healthcheck:\n      retries: " + "9" * 5000 + "\n", "services.web.healthcheck.retries", 5, "must be an integer", id="retries-5000-digits"),
    pytest.param(HEAD + "    ulimits:\n      nofile: 1e20\n", "services.web.ulimits.nofile", 5, "at most 9223372036854775807", id="ulimit-1e20"),
    pytest.param(HEAD + "    ulimits:\n      nofile: {soft: -1, hard: 100}\n", "services.web.ulimits.nofile.soft", 5, "above the hard limit", id="ulimit-unlimited-soft-over-hard"),
    pytest.param(HEAD + "    ulimits:\n      files: 10\n", "services.web.ulimits.files", 5, "unknown ulimit", id="ulimit-unknown-name"),
    pytest.param(HEAD + "    volumes:\n      - {type: tmpfs, target: /t, tmpfs: {size: -1}}\n", "services.web.volumes[0].tmpfs.size", 5, "must not be negative", id="tmpfs-long-size-minus-1"),
    pytest.param(HEAD + "    tmpfs: ['/t:size=-1']\n", "services.web.tmpfs[0]", 4, "invalid tmpfs option 'size=-1'", id="tmpfs-short-size-minus-1"),
    pytest.param(HEAD + "    tmpfs: ['/t:mode=999']\n", "services.web.tmpfs[0]", 4, "invalid tmpfs option", id="tmpfs-short-mode"),
    pytest.param(HEAD + "    ports:\n      - {target: 99999}\n", "services.web.ports[0].target", 5, "at most 65535", id="port-long-target"),
    pytest.param(HEAD + "    secrets:\n      - {source: s, mode: 077777}\nsecrets:\n  s: {file: ./s.txt}\n", "services.web.secrets[0].mode", 5, "out of range", id="file-mode"),
    pytest.param(HEAD + "    restart: 'on-failure:\u00b2'\n", "services.web.restart", 4, "must be a number", id="restart-count-superscript"),
    pytest.param(HEAD + "    restart: on-failure:" + "9" * 5000 + "\n", "services.web.restart", 4, "must be an integer", id="restart-count-5000-digits"),
    pytest.param("services:\n  web:\n    image: \"" + "${A:-" * 3000 + "x" + "}" * 3000 + "\"\n", "services.web.image", 3,
                 "nested deeper than 32 levels", id="interpolation-nested-3000"),
    # --- strings the engine forbids
    pytest.param(HEAD + '    environment: {A: "x\\0y"}\n', "services.web.environment.A", 4, "NUL", id="nul-in-env-value"),
    pytest.param(HEAD + '    environment: ["A\\0B=1"]\n', "services.web.environment[0]", 4, "NUL", id="nul-in-env-list"),
    pytest.param(HEAD + '    command: ["sh", "a\\0b"]\n', "services.web.command[1]", 4, "NUL", id="nul-in-command"),
    pytest.param(HEAD + '    entrypoint: "a\\0b"\n', "services.web.entrypoint", 4, "NUL", id="nul-in-entrypoint"),
    pytest.param(HEAD + '    labels: {"a\\0": b}\n', "services.web.labels", 4, "must not contain a NUL", id="nul-in-label-key"),
    pytest.param(HEAD + '    hostname: "h\\0"\n', "services.web.hostname", 4, "NUL", id="nul-in-hostname"),
    pytest.param("services:\n  web:\n    image: busybox:${TAG}\n", "services.web.image", 3, "NUL", id="nul-from-interpolation"),
    pytest.param(HEAD + '    extra_hosts: ["a:1.2.3.4\\nb:5.6.7.8"]\n', "services.web.extra_hosts[0]", 4, "not an IP address", id="extra-hosts-newline"),
    pytest.param(HEAD + "    extra_hosts: ['db:not-an-ip']\n", "services.web.extra_hosts[0]", 4, "not an IP address", id="extra-hosts-bad-ip"),
    pytest.param(HEAD + "    extra_hosts: {db: 10.0.0.256}\n", "services.web.extra_hosts.db", 4, "not an IP address", id="extra-hosts-map-bad-ip"),
    pytest.param(HEAD + '    hostname: "web\\nx"\n', "services.web.hostname", 4, "invalid hostname", id="hostname-newline"),
    pytest.param(HEAD + "    hostname: " + "h" * 65 + "\n", "services.web.hostname", 4, "invalid hostname", id="hostname-too-long"),
    pytest.param(HEAD + "    dns: ['8.8.8.8\\n']\n", "services.web.dns[0]", 4, "not an IP address", id="dns-not-an-ip"),
    pytest.param(HEAD + '    labels: ["a\\nb=c"]\n', "services.web.labels", 4, "control characters", id="label-key-newline"),
    pytest.param(HEAD + "    environment: {'A=B': c}\n", "services.web.environment", 4, "must not be empty or contain '='", id="env-name-with-equals"),
    pytest.param(HEAD + "    cap_add: [SYS_WIZARD]\n", "services.web.cap_add[0]", 4, "unknown capability", id="cap-unknown"),
    pytest.param(HEAD + "    stop_signal: SIGNOPE\n", "services.web.stop_signal", 4, "unknown signal", id="signal-unknown"),
    pytest.param(HEAD + "    sysctls: {vm.swappiness: '1'}\n", "services.web.sysctls", 4, "not namespaced", id="sysctl-not-namespaced"),
    pytest.param(HEAD + "    working_dir: relative\n", "services.web.working_dir", 4, "absolute", id="working-dir-relative"),
    pytest.param("services:\n  web:\n    image: Busybox\n", "services.web.image", 3, "invalid image reference", id="image-uppercase"),
    pytest.param(HEAD + "    ports: ['localhost:80:80']\n", "services.web.ports[0]", 4, "not an IP address", id="port-host-ip-not-an-ip"),
    pytest.param(HEAD + "    networks:\n      n: {ipv4_address: 10.0.0.300}\nnetworks:\n  n:\n", "services.web.networks.n.ipv4_address", 5, "not an IP address", id="ipv4-address"),
    pytest.param(HEAD + "networks:\n  n:\n    ipam:\n      config: [{subnet: 10.0.0.0/33}]\n", "networks.n.ipam.config[0].subnet", 7, "not a subnet", id="subnet"),
    pytest.param(HEAD + "    volumes:\n      - \"/a:/b\\n\"\n", "services.web.volumes[0]", 5, "control characters", id="volume-newline"),
    # --- names the engine accepts
    pytest.param(HEAD + "    volumes: ['d:/d']\nvolumes:\n  d: {name: ../../etc}\n", "volumes.d.name", 6, "not a name the engine accepts", id="volume-name-dotdot"),
    pytest.param(HEAD + "networks:\n  n: {name: 'a b'}\n", "networks.n.name", 5, "not a name the engine accepts", id="network-name-space"),
    pytest.param(HEAD + "networks:\n  n:\n    external: {name: ../x}\n", "networks.n.external", 6, "not a name the engine accepts", id="network-external-name"),
    pytest.param(HEAD + "volumes:\n  ../v:\n", "volumes.../v", 5, "not a name the engine accepts", id="volume-key"),
    pytest.param(HEAD + "configs:\n  ../../x: {content: hi}\n", "configs.../../x", 5, "not a name the engine accepts", id="config-key-is-a-file-name"),
    pytest.param("services:\n  Web.v2:\n    image: busybox\n  " + "a" * 64 + ":\n    image: busybox\n", "services." + "a" * 64, 4, "invalid service name", id="service-name-too-long"),
]


@pytest.mark.parametrize(("text", "path", "line", "message"), INVALID)
def test_invalid(tmp_path: Path, text: str, path: str, line: int, message: str) -> None:
    (tmp_path / "s.txt").write_text("secret")
    problem_at(load_error(tmp_path, text, {"TAG": "1\x00"}), path, line, message)


VALID = [
    pytest.param(LIMITS + "{cpus: 0, memory: 6m, pids: -1}\n", lambda s: web(s).resources.cpus_limit, 0.0, id="cpus-0-is-no-limit"),
    pytest.param(LIMITS + "{cpus: '1024', memory: 0}\n", lambda s: web(s).resources.memory_limit, 0, id="memory-0-is-no-limit"),
    pytest.param(LIMITS + "{memory: 1e9}\n", lambda s: web(s).resources.memory_limit, 10**9, id="memory-whole-float"),
    pytest.param(HEAD + "    stop_grace_period: 8760h\n", lambda s: web(s).stop_grace_period, 365 * 24 * 3600.0, id="grace-one-year"),
    pytest.param(HEAD + "    deploy:\n      replicas: 1e4\n", lambda s: web(s).replicas, 10_000, id="replicas-at-the-limit"),
    pytest.param(HEAD + "    ulimits:\n      nofile: {soft: 1024, hard: -1}\n      core: -1\n",
                 lambda s: web(s).ulimits, (Ulimit("nofile", 1024, -1), Ulimit("core", -1, -1)), id="ulimit-unlimited"),
    pytest.param(HEAD + "    extra_hosts: ['gw:host-gateway', 'v6=[::1]']\n", lambda s: web(s).extra_hosts, ("gw:host-gateway", "v6:::1"), id="extra-hosts-gateway-ipv6"),
    pytest.param(HEAD + "    tmpfs: ['/run:size=64m,mode=1777,uid=1000,noexec']\n", lambda s: web(s).tmpfs, ("/run:size=64m,mode=1777,uid=1000,noexec",), id="tmpfs-options"),
    pytest.param(HEAD + "    cap_add: [cap_net_admin]\n    cap_drop: [ALL]\n    stop_signal: SIGRTMIN+3\n", lambda s: web(s).cap_add, ("cap_net_admin",), id="cap-spelling"),
    pytest.param(HEAD + "    sysctls: {net.core.somaxconn: 1024, kernel.shmmax: 1}\n", lambda s: len(web(s).sysctls), 2, id="sysctls-namespaced"),
    pytest.param(HEAD + "    labels: {a: \"multi\\nline\"}\n", lambda s: web(s).labels["a"], "multi\nline", id="label-value-newline-ok"),
    pytest.param(HEAD + "    networks: [out]\nnetworks:\n  out: {external: true, name: my.net-1}\n", lambda s: s.networks["out"].engine_name, "my.net-1", id="external-network-name"),
]


@pytest.mark.parametrize(("text", "get", "expected"), VALID)
def test_valid(tmp_path: Path, text: str, get: Callable[[StackSpec], Any], expected: Any) -> None:
    assert get(load(tmp_path, text)) == expected


def test_an_image_path_must_be_lowercase_even_with_a_registry(tmp_path: Path) -> None:
    error = load_error(tmp_path, "services:\n  web:\n    image: registry.example.com:5000/team/App:1.2\n")
    assert [(p.path, p.line) for p in error.problems] == [("services.web.image", 3)]
    assert load(tmp_path, "services:\n  web:\n    image: localhost:5000/team/app@sha256:" + "a" * 64 + "\n").services["web"].image


def test_a_5000_digit_number_is_an_error_not_a_crash(tmp_path: Path) -> None:
    error = load_error(tmp_path, HEAD + "    deploy:\n      replicas: " + "9" * 5000 + "\n")
    assert [(p.path, p.line) for p in error.problems] == [("services.web.deploy.replicas", 5)]
    assert len(str(error)) < 400  # the value is cut short in the message
