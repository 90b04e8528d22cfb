"""orchestrator.swarm.convert: a StackSpec → the engine API request bodies for a Swarm manager.

The getting-started stack whole, then one case per mapped key (the part of the body it sets),
then what is an error and what a warning on Swarm."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import UserError
from orchestrator.model.spec import (
    BuildSpec,
    DependsOn,
    FileObjectSpec,
    FileReference,
    GenericResource,
    Healthcheck,
    LoggingSpec,
    MountSpec,
    NetworkAttachment,
    NetworkSpec,
    Placement,
    PortSpec,
    Resources,
    RestartPolicy,
    ServiceSpec,
    StackSpec,
    Ulimit,
    UpdateConfig,
    VolumeSpec,
)
from orchestrator.stackfile import load_stack
from orchestrator.swarm.convert import SwarmConversionError, SwarmStack, convert_stack
from orchestrator.swarm.files import read_file_data

REPO = Path(__file__).resolve().parents[2]
NS = "com.docker.stack.namespace"
UPDATE_DEFAULTS = {"Parallelism": 1, "Delay": 0, "FailureAction": "pause", "Monitor": 5_000_000_000,
                   "MaxFailureRatio": 0.0, "Order": "stop-first"}
SECOND = 1_000_000_000


def test_getting_started_stack_gives_the_bodies_docker_stack_deploy_sends() -> None:
    stack = load_stack([REPO / "stacks/getting-started.yml"], env={"WEB_IMAGE": "demo:1", "REDIS_IMAGE": "redis:7"},
                       name="gs")

    converted = convert_stack(stack)

    assert converted.networks == {"gs_webnet": {
        "Name": "gs_webnet", "Driver": "overlay", "Scope": "swarm", "Attachable": False, "Internal": False,
        "EnableIPv6": False, "Labels": {NS: "gs", "orchestrator.stack": "gs"}, "CheckDuplicate": True,
    }}
    assert converted.services["web"] == {
        "Name": "gs_web",
        "Labels": {NS: "gs", "com.docker.stack.image": "demo:1", "orchestrator.stack": "gs"},
        "TaskTemplate": {
            "ContainerSpec": {"Image": "demo:1", "Env": ["REDIS_HOST=redis"], "Labels": {NS: "gs"},
                              "StopGracePeriod": 10 * SECOND},
            "Resources": {"Limits": {"NanoCPUs": 100_000_000, "MemoryBytes": 50 * 2**20}},
            "RestartPolicy": {"Condition": "on-failure"},
            "Networks": [{"Target": "gs_webnet", "Aliases": ["web"]}],
        },
        "Mode": {"Replicated": {"Replicas": 5}},
        "UpdateConfig": UPDATE_DEFAULTS,
        "RollbackConfig": UPDATE_DEFAULTS,
        "EndpointSpec": {"Mode": "vip", "Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 4000,
                                                   "PublishMode": "ingress"}]},
    }
    assert converted.services["redis"] == {
        "Name": "gs_redis",
        "Labels": {NS: "gs", "com.docker.stack.image": "redis:7", "orchestrator.stack": "gs"},
        "TaskTemplate": {
            "ContainerSpec": {"Image": "redis:7", "Labels": {NS: "gs"}, "StopGracePeriod": 10 * SECOND,
                              "Mounts": [{"Type": "volume", "Target": "/data", "Source": "gs_redis-data",
                                          "VolumeOptions": {"Labels": {NS: "gs"}}}]},
            "RestartPolicy": {"Condition": "any"},
            "Networks": [{"Target": "gs_webnet", "Aliases": ["redis"]}],
        },
        "Mode": {"Replicated": {"Replicas": 1}},
        "UpdateConfig": UPDATE_DEFAULTS,
        "RollbackConfig": UPDATE_DEFAULTS,
        "EndpointSpec": {"Mode": "vip"},
    }
    assert (converted.secrets, converted.configs, converted.external_networks, converted.warnings) == ({}, {}, (), ())


# --------------------------------------------------------------------------- one case per key

WEBNET = NetworkSpec(name="webnet", engine_name="t_webnet")
VOLUMES = {
    "data": VolumeSpec(name="data", engine_name="t_data", labels={"tier": "db"}),
    "cache": VolumeSpec(name="cache", engine_name="t_cache", driver="local", driver_opts={"type": "tmpfs"}),
    "old": VolumeSpec(name="old", engine_name="shared-old", external=True),
}
SECRETS = {"pw": FileObjectSpec(name="pw", content="hunter2")}
CONFIGS = {"conf": FileObjectSpec(name="conf", content="a=1")}
PW = f"t_pw-{hashlib.sha256(b'hunter2').hexdigest()[:10]}"
CONF = f"t_conf-{hashlib.sha256(b'a=1').hexdigest()[:10]}"


def convert(**fields: Any) -> SwarmStack:
    """A stack `t` with one service `web` (image busybox) with `fields`."""
    service = ServiceSpec(name="web", image="busybox", **fields)
    return convert_stack(StackSpec(name="t", services={"web": service}, networks={"webnet": WEBNET},
                                   volumes=VOLUMES, secrets=SECRETS, configs=CONFIGS))


def container(body: dict[str, Any]) -> Any:
    return body["TaskTemplate"]["ContainerSpec"]


def web(getter: Callable[[dict[str, Any]], Any]) -> Callable[[SwarmStack], Any]:
    return lambda converted: getter(converted.services["web"])


KEYS = [
    pytest.param({"entrypoint": ("tini", "--"), "command": ("run", "it")},
                 web(lambda b: (container(b)["Command"], container(b)["Args"])), (["tini", "--"], ["run", "it"]),
                 id="entrypoint-command"),
    pytest.param({"environment": {"B": "2", "A": None, "C": ""}}, web(lambda b: container(b)["Env"]),
                 ["A", "B=2", "C="], id="environment-sorted-name-only"),
    pytest.param({"labels": {"a": "b"}}, web(lambda b: container(b)["Labels"]), {"a": "b", NS: "t"}, id="labels"),
    pytest.param({"deploy_labels": {"a": "b"}}, web(lambda b: b["Labels"]),
                 {"a": "b", NS: "t", "com.docker.stack.image": "busybox", "orchestrator.stack": "t"}, id="deploy-labels"),
    pytest.param({"hostname": "h", "user": "1000:1000", "working_dir": "/srv"},
                 web(lambda b: [container(b)[k] for k in ("Hostname", "User", "Dir")]), ["h", "1000:1000", "/srv"],
                 id="hostname-user-working-dir"),
    pytest.param({"init": True, "read_only": True}, web(lambda b: (container(b)["Init"], container(b)["ReadOnly"])),
                 (True, True), id="init-read-only"),
    pytest.param({"init": False}, web(lambda b: container(b)["Init"]), False, id="init-false-is-sent"),
    pytest.param({"stop_signal": "SIGINT", "stop_grace_period": 1.5},
                 web(lambda b: (container(b)["StopSignal"], container(b)["StopGracePeriod"])),
                 ("SIGINT", 1_500_000_000), id="stop-signal-grace"),
    pytest.param({"healthcheck": Healthcheck(("CMD", "true"), interval=2.0, timeout=1.0, retries=3, start_period=0.5)},
                 web(lambda b: container(b)["Healthcheck"]),
                 {"Test": ["CMD", "true"], "Interval": 2 * SECOND, "Timeout": SECOND, "Retries": 3,
                  "StartPeriod": 500_000_000}, id="healthcheck"),
    pytest.param({"healthcheck": Healthcheck(("NONE",))}, web(lambda b: container(b)["Healthcheck"]),
                 {"Test": ["NONE"]}, id="healthcheck-disabled"),
    pytest.param({"cap_add": ("net_admin", "CAP_SYS_TIME"), "cap_drop": ("all",)},
                 web(lambda b: (container(b)["CapabilityAdd"], container(b)["CapabilityDrop"])),
                 (["CAP_NET_ADMIN", "CAP_SYS_TIME"], ["ALL"]), id="capabilities"),
    pytest.param({"ulimits": (Ulimit("nproc", 10, 20), Ulimit("core", 0, 0))}, web(lambda b: container(b)["Ulimits"]),
                 [{"Name": "core", "Soft": 0, "Hard": 0}, {"Name": "nproc", "Soft": 10, "Hard": 20}], id="ulimits"),
    pytest.param({"sysctls": {"net.core.somaxconn": "1024"}}, web(lambda b: container(b)["Sysctls"]),
                 {"net.core.somaxconn": "1024"}, id="sysctls"),
    pytest.param({"dns": ("10.0.0.2",)}, web(lambda b: container(b)["DNSConfig"]), {"Nameservers": ["10.0.0.2"]}, id="dns"),
    pytest.param({"extra_hosts": ("db:10.0.0.3", "v6:::1")}, web(lambda b: container(b)["Hosts"]),
                 ["10.0.0.3 db", "::1 v6"], id="extra-hosts"),
    pytest.param({"volumes": (MountSpec("volume", "/data", source="data", read_only=True, volume_nocopy=True),)},
                 web(lambda b: container(b)["Mounts"]),
                 [{"Type": "volume", "Target": "/data", "ReadOnly": True, "Source": "t_data",
                   "VolumeOptions": {"NoCopy": True, "Labels": {"tier": "db", NS: "t"}}}], id="volume-named"),
    pytest.param({"volumes": (MountSpec("volume", "/c", source="cache"), MountSpec("volume", "/o", source="old"),
                              MountSpec("volume", "/anon"))},
                 web(lambda b: container(b)["Mounts"]),
                 [{"Type": "volume", "Target": "/c", "Source": "t_cache",
                   "VolumeOptions": {"Labels": {NS: "t"}, "DriverConfig": {"Name": "local", "Options": {"type": "tmpfs"}}}},
                  {"Type": "volume", "Target": "/o", "Source": "shared-old"},
                  {"Type": "volume", "Target": "/anon"}], id="volume-driver-external-anonymous"),
    pytest.param({"volumes": (MountSpec("bind", "/etc/x", source="/srv/x", bind_propagation="rslave"),
                              MountSpec("tmpfs", "/scratch", tmpfs_size=2**20, tmpfs_mode=0o1777))},
                 web(lambda b: container(b)["Mounts"]),
                 [{"Type": "bind", "Target": "/etc/x", "Source": "/srv/x", "BindOptions": {"Propagation": "rslave"}},
                  {"Type": "tmpfs", "Target": "/scratch", "TmpfsOptions": {"SizeBytes": 2**20, "Mode": 0o1777}}],
                 id="bind-tmpfs-mounts"),
    pytest.param({"tmpfs": ("/run", "/tmp:size=64m,mode=1777")}, web(lambda b: container(b)["Mounts"]),
                 [{"Type": "tmpfs", "Target": "/run"},
                  {"Type": "tmpfs", "Target": "/tmp", "TmpfsOptions": {"SizeBytes": 64 * 2**20, "Mode": 0o1777}}],
                 id="service-tmpfs"),
    pytest.param({"secrets": (FileReference("pw", "/run/secrets/pw"),)}, web(lambda b: container(b)["Secrets"]),
                 [{"File": {"Name": "/run/secrets/pw", "UID": "0", "GID": "0", "Mode": 0o444}, "SecretName": PW}],
                 id="secret-reference-defaults"),
    pytest.param({"configs": (FileReference("conf", "/etc/app.conf", uid="33", gid="33", mode=0o440),)},
                 web(lambda b: container(b)["Configs"]),
                 [{"File": {"Name": "/etc/app.conf", "UID": "33", "GID": "33", "Mode": 0o440}, "ConfigName": CONF}],
                 id="config-reference"),
    pytest.param({"resources": Resources(cpus_limit=0.5, memory_limit=2**27, pids_limit=64, cpus_reservation=0.25,
                                         memory_reservation=2**26)},
                 web(lambda b: b["TaskTemplate"]["Resources"]),
                 {"Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 2**27, "Pids": 64},
                  "Reservations": {"NanoCPUs": 250_000_000, "MemoryBytes": 2**26}}, id="resources"),
    pytest.param({"restart_policy": RestartPolicy("on-failure", delay=2.0, max_attempts=3, window=60.0)},
                 web(lambda b: b["TaskTemplate"]["RestartPolicy"]),
                 {"Condition": "on-failure", "Delay": 2 * SECOND, "MaxAttempts": 3, "Window": 60 * SECOND},
                 id="restart-policy"),
    pytest.param({"restart_policy": RestartPolicy("none")}, web(lambda b: b["TaskTemplate"]["RestartPolicy"]),
                 {"Condition": "none"}, id="restart-policy-delay-left-to-swarm"),
    pytest.param({"update_config": UpdateConfig(2, 1.0, "rollback", 10.0, 0.5, "start-first"),
                  "rollback_config": UpdateConfig(0, 0.0, "continue", 0.0, 0.0, "stop-first")},
                 web(lambda b: (b["UpdateConfig"], b["RollbackConfig"])),
                 ({"Parallelism": 2, "Delay": SECOND, "FailureAction": "rollback", "Monitor": 10 * SECOND,
                   "MaxFailureRatio": 0.5, "Order": "start-first"},
                  {"Parallelism": 0, "Delay": 0, "FailureAction": "continue", "Monitor": 0, "MaxFailureRatio": 0.0,
                   "Order": "stop-first"}), id="update-rollback-config"),
    pytest.param({"placement": Placement(("node.role == manager", "node.labels.zone!=b"), ("node.labels.zone",), 2)},
                 web(lambda b: b["TaskTemplate"]["Placement"]),
                 {"Constraints": ["node.role == manager", "node.labels.zone!=b"],
                  "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}], "MaxReplicas": 2},
                 id="placement"),
    pytest.param({"mode": "global", "replicas": 1}, web(lambda b: b["Mode"]), {"Global": {}}, id="mode-global"),
    pytest.param({"replicas": 0}, web(lambda b: b["Mode"]), {"Replicated": {"Replicas": 0}}, id="replicas-zero-is-sent"),
    pytest.param({"mode": "replicated-job", "replicas": 3},
                 web(lambda b: (b["Mode"], "UpdateConfig" in b, "RollbackConfig" in b)),
                 ({"ReplicatedJob": {"MaxConcurrent": 3, "TotalCompletions": 3}}, False, False),
                 id="mode-replicated-job-without-update-config"),
    pytest.param({"mode": "global-job"}, web(lambda b: (b["Mode"], "UpdateConfig" in b)), ({"GlobalJob": {}}, False),
                 id="mode-global-job"),
    pytest.param({"dns": ("10.0.0.2",), "dns_search": ("svc.local", "local"), "dns_options": ("ndots:2", "rotate")},
                 web(lambda b: container(b)["DNSConfig"]),
                 {"Nameservers": ["10.0.0.2"], "Search": ["svc.local", "local"], "Options": ["ndots:2", "rotate"]},
                 id="dns-search-options"),
    pytest.param({"tty": True, "stdin_open": True}, web(lambda b: (container(b)["TTY"], container(b)["OpenStdin"])),
                 (True, True), id="tty-stdin-open"),
    pytest.param({}, web(lambda b: ("TTY" in container(b), "OpenStdin" in container(b))), (False, False),
                 id="tty-stdin-open-false-left-out"),
    pytest.param({"resources": Resources(memory_reservation=2**26),
                  "generic_resources": (GenericResource("gpu", 2), GenericResource("ssd", 1))},
                 web(lambda b: b["TaskTemplate"]["Resources"]["Reservations"]),
                 {"MemoryBytes": 2**26, "GenericResources": [{"DiscreteResourceSpec": {"Kind": "gpu", "Value": 2}},
                                                             {"DiscreteResourceSpec": {"Kind": "ssd", "Value": 1}}]},
                 id="generic-resources"),
    pytest.param({"networks": (NetworkAttachment("webnet", aliases=("www",)),)},
                 web(lambda b: b["TaskTemplate"]["Networks"]), [{"Target": "t_webnet", "Aliases": ["www", "web"]}],
                 id="network-aliases"),
    pytest.param({"logging": LoggingSpec("json-file", {"max-size": "1m"})}, web(lambda b: b["TaskTemplate"]["LogDriver"]),
                 {"Name": "json-file", "Options": {"max-size": "1m"}}, id="logging"),
    pytest.param({"endpoint_mode": "dnsrr", "ports": (PortSpec(80, 8080, mode="host"), PortSpec(53, 53, "udp", "host"),
                                                      PortSpec(9000, mode="host"))},
                 web(lambda b: b["EndpointSpec"]),
                 {"Mode": "dnsrr", "Ports": [
                     {"Protocol": "tcp", "TargetPort": 9000, "PublishMode": "host"},
                     {"Protocol": "udp", "TargetPort": 53, "PublishedPort": 53, "PublishMode": "host"},
                     {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "host"}]},
                 id="endpoint-dnsrr-host-ports-sorted"),
]


@pytest.mark.parametrize(("fields", "getter", "expected"), KEYS)
def test_each_key_maps_to_its_place_in_the_service_body(fields: dict[str, Any], getter: Callable[[SwarmStack], Any],
                                                        expected: Any) -> None:
    assert getter(convert(**fields)) == expected


def test_networks_only_those_services_join_overlay_by_default_external_listed() -> None:
    networks = {
        "front": NetworkSpec("front", "t_front", attachable=True, internal=True, enable_ipv6=True,
                             labels={"a": "b"}, driver_opts={"encrypted": ""}, subnets=("10.9.0.0/24",)),
        "shared": NetworkSpec("shared", "proxy-net", external=True),
        "unused": NetworkSpec("unused", "t_unused"),
    }
    service = ServiceSpec("web", image="busybox", networks=(NetworkAttachment("shared"), NetworkAttachment("front")))

    converted = convert_stack(StackSpec("t", {"web": service}, networks=networks))

    assert converted.networks == {"t_front": {
        "Name": "t_front", "Driver": "overlay", "Scope": "swarm", "Attachable": True, "Internal": True,
        "EnableIPv6": True, "Options": {"encrypted": ""}, "Labels": {"a": "b", NS: "t", "orchestrator.stack": "t"},
        "IPAM": {"Driver": "default", "Config": [{"Subnet": "10.9.0.0/24"}]}, "CheckDuplicate": True,
    }}
    assert converted.external_networks == ("proxy-net",)
    assert converted.services["web"]["TaskTemplate"]["Networks"] == [
        {"Target": "proxy-net", "Aliases": ["web"]}, {"Target": "t_front", "Aliases": ["web"]}]


# --------------------------------------------------------------------------- secrets and configs


def test_secrets_and_configs_get_names_versioned_by_content(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_bytes(b"\x00binary")
    stack = StackSpec("t", {}, secrets={
        "key": FileObjectSpec("key", file=str(key)),
        "token": FileObjectSpec("token", content="abc", engine_name="app_token"),
        "vault": FileObjectSpec("vault", external=True, engine_name="shared_vault"),
        "plain": FileObjectSpec("plain", external=True),
    }, configs={"conf": FileObjectSpec("conf", content="a=1")})

    converted = convert_stack(stack, read_file_data(stack))

    key_hash = hashlib.sha256(b"\x00binary").hexdigest()[:10]
    assert converted.secrets["key"] == {
        "Name": f"t_key-{key_hash}",
        "Labels": {NS: "t", "orchestrator.stack": "t", "orchestrator.object": "key", "orchestrator.content-hash": key_hash},
        "Data": base64.b64encode(b"\x00binary").decode(),
    }
    assert converted.secret_names == {"key": f"t_key-{key_hash}", "token": f"app_token-{hashlib.sha256(b'abc').hexdigest()[:10]}",
                                      "vault": "shared_vault", "plain": "plain"}
    assert set(converted.secrets) == {"key", "token"}
    assert converted.configs["conf"]["Name"] == CONF


def test_secret_and_config_labels_driver_and_template_driver_as_docker_cli() -> None:
    stack = StackSpec("t", {}, secrets={
        "vault": FileObjectSpec("vault", driver="vault-plugin", driver_opts={"path": "kv/app"}, labels={"team": "a"}),
        "tpl": FileObjectSpec("tpl", content="{{ .Service.Name }}", template_driver="golang"),
    }, configs={"conf": FileObjectSpec("conf", content="a=1", labels={"team": "a"}, template_driver="golang")})

    converted = convert_stack(stack)

    vault = converted.secrets["vault"]
    assert vault["Driver"] == {"Name": "vault-plugin", "Options": {"path": "kv/app"}}
    assert "Data" not in vault  # the plugin gives it
    assert vault["Labels"]["team"] == "a" and vault["Labels"][NS] == "t"
    assert converted.secrets["tpl"]["Templating"] == {"Name": "golang"}
    assert converted.configs["conf"]["Templating"] == {"Name": "golang"}
    assert converted.configs["conf"]["Labels"]["team"] == "a"
    assert "Driver" not in converted.configs["conf"]
    # Labels and drivers are part of the version; an object with data only keeps its data's hash.
    assert converted.configs["conf"]["Name"] != CONF
    assert convert_stack(StackSpec("t", {}, configs=CONFIGS)).configs["conf"]["Name"] == CONF


def test_a_changed_content_is_a_new_object_name() -> None:
    def name(content: str) -> str:
        stack = StackSpec("t", {}, secrets={"pw": FileObjectSpec("pw", content=content)})
        return convert_stack(stack).secret_names["pw"]

    assert name("one") != name("two")
    assert name("one") == name("one")


def test_secret_data_is_not_in_the_repr() -> None:
    assert "hunter2" not in repr(convert())
    assert base64.b64encode(b"hunter2").decode() not in repr(convert())


def test_reading_secret_files_is_bounded_and_names_the_key(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * 500 * 1024)
    stack = StackSpec("t", {}, secrets={"big": FileObjectSpec("big", file=str(big))})
    with pytest.raises(UserError, match=r"secrets\.big\.file: .* too large for Swarm"):
        read_file_data(stack)
    gone = StackSpec("t", {}, configs={"c": FileObjectSpec("c", file=str(tmp_path / "gone"))})
    with pytest.raises(UserError, match=r"configs\.c\.file: cannot read .*gone"):
        read_file_data(gone)


# --------------------------------------------------------------------------- errors and warnings


def problems(stack: StackSpec) -> list[str]:
    with pytest.raises(SwarmConversionError) as info:
        convert_stack(stack)
    return info.value.problems


def one(service: ServiceSpec, **top: Any) -> StackSpec:
    return StackSpec("t", {service.name: service}, **top)


ERRORS = [
    pytest.param(one(ServiceSpec("web", build=BuildSpec("/src"))), "services.web.build: Swarm cannot build images",
                 id="build-without-image"),
    pytest.param(one(ServiceSpec("web.1", image="busybox")), "services.web.1: the Swarm service name 't_web.1' is not valid",
                 id="service-name-with-dot"),
    pytest.param(StackSpec("s" * 40, {"w" * 30: ServiceSpec("w" * 30, image="busybox")}),
                 f"services.{'w' * 30}: the Swarm service name", id="service-name-too-long"),
    pytest.param(one(ServiceSpec("web", image="busybox", endpoint_mode="dnsrr", ports=(PortSpec(80, 8080),))),
                 "services.web.ports[0]: Swarm cannot publish a port in ingress mode", id="dnsrr-with-ingress-port"),
    pytest.param(one(ServiceSpec("web", image="busybox", placement=Placement(("node.role=manager",)))),
                 "services.web.deploy.placement.constraints[0]: 'node.role=manager' needs an operator",
                 id="constraint-without-operator"),
    pytest.param(one(ServiceSpec("web", image="busybox", placement=Placement(("no de == x",)))),
                 "services.web.deploy.placement.constraints[0]: 'no de == x': the key 'no de' is not valid",
                 id="constraint-bad-key"),
    pytest.param(one(ServiceSpec("web", image="busybox", mode="global", placement=Placement(max_replicas_per_node=1))),
                 "services.web.deploy.placement.max_replicas_per_node: applies only to mode: replicated",
                 id="max-replicas-with-global"),
    pytest.param(StackSpec("t", {}, secrets={"pw": FileObjectSpec("pw", content="")}),
                 "secrets.pw: Swarm takes 1 to 511999 bytes of data, not 0", id="empty-secret"),
    pytest.param(StackSpec("t", {}, configs={"c": FileObjectSpec("c", content="x" * 1000 * 1024)}),
                 "configs.c: Swarm takes 1 to 1023999 bytes of data", id="config-too-big"),
    pytest.param(StackSpec("s" * 50, {}, secrets={"password": FileObjectSpec("password", content="x")}),
                 "secrets.password: the Swarm name", id="secret-name-too-long"),
    pytest.param(StackSpec("t", {}, secrets={"pw": FileObjectSpec("pw", file="/nowhere")}),
                 "secrets.pw.file: the file /nowhere was not read", id="secret-file-not-read"),
    pytest.param(one(ServiceSpec("web", image="busybox", tmpfs=("/t:size=lots",))),
                 "services.web.tmpfs[0]: invalid byte size 'lots'", id="tmpfs-bad-size"),
]


@pytest.mark.parametrize(("stack", "expected"), ERRORS)
def test_what_cannot_run_on_swarm_is_an_error_with_its_key_path(stack: StackSpec, expected: str) -> None:
    found = problems(stack)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_every_problem_is_reported_at_once() -> None:
    stack = StackSpec("t", {"a.b": ServiceSpec("a.b", build=BuildSpec("/src"))},
                      secrets={"pw": FileObjectSpec("pw", content="")})
    assert [problem.split(":")[0] for problem in problems(stack)] == ["secrets.pw", "services.a.b", "services.a.b.build"]


WARNINGS = [
    pytest.param({"build": BuildSpec("/src")}, "services.web.build: Swarm does not build", id="build-beside-image"),
    pytest.param({"depends_on": (DependsOn("db"),)}, "services.web.depends_on: Swarm starts services in no particular order",
                 id="depends-on"),
    pytest.param({"ports": (PortSpec(80, 8080, host_ip="127.0.0.1"),)},
                 "services.web.ports[0]: Swarm publishes on every address of a node", id="host-ip"),
    pytest.param({"volumes": (MountSpec("bind", "/x", source="/srv/x"),)},
                 "services.web.volumes[0]: Swarm does not create a missing bind source", id="bind-source"),
    pytest.param({"networks": (NetworkAttachment("webnet", ipv4_address="10.0.0.9"),)},
                 "services.web.networks[0]: Swarm gives tasks addresses of its own", id="static-address"),
    pytest.param({"healthcheck": Healthcheck(("CMD", "true"), start_interval=1.0)},
                 "services.web.healthcheck.start_interval: needs engine 25.0", id="healthcheck-start-interval"),
    pytest.param({"tmpfs": ("/t:uid=1000",)}, "services.web.tmpfs[0]: tmpfs option 'uid=1000' has no Swarm equivalent",
                 id="tmpfs-option"),
]


@pytest.mark.parametrize(("fields", "expected"), WARNINGS)
def test_keys_without_effect_on_swarm_are_warnings(fields: dict[str, Any], expected: str) -> None:
    warnings = convert(**fields).warnings
    assert len(warnings) == 1 and warnings[0].startswith(expected), warnings


def test_a_network_driver_other_than_overlay_is_a_warning() -> None:
    service = ServiceSpec("web", image="busybox", networks=(NetworkAttachment("n"),))
    stack = StackSpec("t", {"web": service}, networks={"n": NetworkSpec("n", "t_n", driver="weave")})
    converted = convert_stack(stack)
    assert converted.networks["t_n"]["Driver"] == "weave"
    assert converted.warnings == ("networks.n.driver: services join only swarm-scoped networks; driver 'weave' must "
                                  "provide them",)


def test_conversion_is_the_same_for_the_same_stack() -> None:
    fields = {"environment": {"Z": "1", "A": "2"}, "ulimits": (Ulimit("b", 1, 1), Ulimit("a", 1, 1)),
              "cap_add": ("b", "a")}
    reordered = {"environment": {"A": "2", "Z": "1"}, "ulimits": (Ulimit("a", 1, 1), Ulimit("b", 1, 1)),
                 "cap_add": ("a", "b")}
    assert convert(**fields).services == convert(**reordered).services


def test_conversion_leaves_the_stack_spec_alone() -> None:
    service = ServiceSpec("web", image="busybox", labels={"a": "b"}, deploy_labels={"c": "d"})
    stack = StackSpec("t", {"web": service})
    before = dataclasses.replace(stack)
    convert_stack(stack)
    assert stack == before and dict(service.labels) == {"a": "b"} and dict(service.deploy_labels) == {"c": "d"}


def test_the_conversion_imports_no_io_library() -> None:
    code = ("import sys, orchestrator.swarm.convert; "
            "print(sorted(m for m in ('aiodocker', 'aiohttp', 'redis', 'asyncio') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert done.stdout.strip() == "[]"
