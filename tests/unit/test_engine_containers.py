"""ServiceSpec → create request, without an engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.engine.containers import create_request
from orchestrator.labels import image_name
from orchestrator.errors import UserError
from orchestrator.labels import LABEL_SLOT, LABEL_STACK
from orchestrator.model.observed import SlotKey
from orchestrator.model.spec import (
    BuildSpec,
    FileObjectSpec,
    FileReference,
    Healthcheck,
    MountSpec,
    NetworkAttachment,
    NetworkSpec,
    PortSpec,
    Resources,
    ServiceSpec,
    StackSpec,
    VolumeSpec,
)


def _request(service: ServiceSpec, stack: StackSpec | None = None, files_dir: Path = Path("/files")):
    stack = stack or StackSpec(name="s", services={service.name: service})
    return create_request(
        stack, service, SlotKey(stack.name, service.name, 2),
        spec_hash="h", task_id="t1", created_ns=5, files_dir=files_dir,
    )  # fmt: skip


def test_name_labels_and_restart_policy() -> None:
    request = _request(ServiceSpec(name="web", image="img", labels={"a": "b", LABEL_STACK: "spoof"}))
    assert request.name == "s_web.2.t1"
    assert request.config["Labels"]["a"] == "b"
    assert request.config["Labels"][LABEL_STACK] == "s"  # ours override the user's
    assert request.config["Labels"][LABEL_SLOT] == "2"
    assert request.config["HostConfig"]["RestartPolicy"] == {"Name": "no"}


def test_first_network_at_create_others_connected_later_all_with_aliases() -> None:
    stack = StackSpec(
        name="s",
        services={},
        networks={"front": NetworkSpec("front", "custom-front"), "back": NetworkSpec("back", "s_back")},
    )
    service = ServiceSpec(
        name="web", image="img",
        networks=(NetworkAttachment("front", aliases=("www",)), NetworkAttachment("back", ipv4_address="10.0.0.9")),
    )  # fmt: skip
    request = _request(service, stack)
    assert request.config["HostConfig"]["NetworkMode"] == "custom-front"
    assert request.config["NetworkingConfig"]["EndpointsConfig"] == {
        "custom-front": {"Aliases": ["web", "tasks.web", "www"]}
    }
    assert request.extra_networks == (
        ("s_back", {"Aliases": ["web", "tasks.web"], "IPAMConfig": {"IPv4Address": "10.0.0.9"}}),
    )


def test_no_networks_means_the_stack_default_network() -> None:
    request = _request(ServiceSpec(name="web", image="img"))
    assert request.config["HostConfig"]["NetworkMode"] == "s_default"
    assert request.extra_networks == ()


def test_ports_ingress_on_loopback_ephemeral_host_mode_direct() -> None:
    service = ServiceSpec(
        name="web", image="img",
        ports=(PortSpec(80, 8080), PortSpec(53, 5353, protocol="udp", mode="host", host_ip="127.0.0.1")),
    )  # fmt: skip
    config = _request(service).config
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert config["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
        "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
    }


def test_resources_healthcheck_and_process_settings() -> None:
    service = ServiceSpec(
        name="web", image="img", command=("sh", "-c", "x"), entrypoint=("/init",),
        environment={"A": "1", "B": None},
        resources=Resources(cpus_limit=0.5, memory_limit=64 << 20, pids_limit=50, memory_reservation=32 << 20),
        healthcheck=Healthcheck(test=("CMD", "true"), interval=1.5, timeout=2, retries=3, start_period=0.25),
        stop_grace_period=2.5, stop_signal="SIGINT", user="1000", working_dir="/w", hostname="h",
        init=True, read_only=True, tmpfs=("/run:size=1m", "/tmp"),
    )  # fmt: skip
    config = _request(service).config
    host = config["HostConfig"]
    assert (host["NanoCpus"], host["Memory"], host["PidsLimit"], host["MemoryReservation"]) == (
        500_000_000, 64 << 20, 50, 32 << 20,
    )  # fmt: skip
    assert config["Healthcheck"] == {
        "Test": ["CMD", "true"], "Interval": 1_500_000_000, "Timeout": 2_000_000_000,
        "Retries": 3, "StartPeriod": 250_000_000,
    }  # fmt: skip
    assert config["Env"] == ["A=1", "B"]
    assert (config["Cmd"], config["Entrypoint"]) == (["sh", "-c", "x"], ["/init"])
    assert (config["StopTimeout"], config["StopSignal"]) == (3, "SIGINT")
    assert (config["User"], config["WorkingDir"], config["Hostname"]) == ("1000", "/w", "h")
    assert (host["Init"], host["ReadonlyRootfs"]) == (True, True)
    assert host["Tmpfs"] == {"/run": "size=1m", "/tmp": ""}


def test_unset_options_are_left_to_the_engine() -> None:
    config = _request(ServiceSpec(name="web", image="img")).config
    for key in ("Cmd", "Entrypoint", "Healthcheck", "StopSignal", "User", "WorkingDir", "Hostname"):
        assert key not in config
    assert "Init" not in config["HostConfig"] and "NanoCpus" not in config["HostConfig"]


def test_volumes_binds_and_tmpfs_mounts() -> None:
    stack = StackSpec(name="s", services={}, volumes={"data": VolumeSpec("data", "s_data")})
    service = ServiceSpec(
        name="web", image="img",
        volumes=(
            MountSpec("volume", "/data", source="data", read_only=True),
            MountSpec("volume", "/anon"),
            MountSpec("bind", "/host", source="/srv/x", bind_propagation="rshared"),
            MountSpec("bind", "/strict", source="/srv/y", bind_create_host_path=False),
            MountSpec("tmpfs", "/scratch", tmpfs_size=1 << 20),
        ),
    )  # fmt: skip
    request = _request(service, stack)
    host = request.config["HostConfig"]
    assert host["Binds"] == ["/srv/x:/host:rw,rshared"]
    assert host["Mounts"] == [
        {"Type": "volume", "Target": "/data", "ReadOnly": True, "Source": "s_data", "VolumeOptions": {"NoCopy": False}},
        {"Type": "volume", "Target": "/anon", "ReadOnly": False, "Source": "",
         "VolumeOptions": {"NoCopy": False, "Labels": {LABEL_STACK: "s"}}},
        {"Type": "bind", "Target": "/strict", "ReadOnly": False, "Source": "/srv/y"},
        {"Type": "tmpfs", "Target": "/scratch", "ReadOnly": False, "TmpfsOptions": {"SizeBytes": 1 << 20}},
    ]  # fmt: skip


def test_secrets_and_configs_are_read_only_file_binds() -> None:
    stack = StackSpec(
        name="s",
        services={},
        secrets={"pw": FileObjectSpec("pw", file="/etc/pw.txt")},
        configs={"conf": FileObjectSpec("conf", content="x=1\n"), "abs": FileObjectSpec("abs", content="y")},
    )
    service = ServiceSpec(
        name="web", image="img",
        secrets=(FileReference("pw", "pw"),),
        configs=(FileReference("conf", "conf", mode=0o440), FileReference("abs", "/etc/app.conf")),
    )  # fmt: skip
    request = _request(service, stack, files_dir=Path("/state/s"))
    assert request.config["HostConfig"]["Mounts"] == [
        {"Type": "bind", "Source": "/etc/pw.txt", "Target": "/run/secrets/pw", "ReadOnly": True},
        {"Type": "bind", "Source": "/state/s/configs/conf", "Target": "/conf", "ReadOnly": True},
        {"Type": "bind", "Source": "/state/s/configs/abs", "Target": "/etc/app.conf", "ReadOnly": True},
    ]
    assert request.files == {
        Path("/state/s/configs/conf"): ("x=1\n", 0o440),
        Path("/state/s/configs/abs"): ("y", 0o444),
    }


def test_a_secret_without_file_or_content_is_the_users_mistake() -> None:
    stack = StackSpec(name="s", services={}, secrets={"pw": FileObjectSpec("pw", external=True)})
    with pytest.raises(UserError, match="'pw' has no file or content"):
        _request(ServiceSpec(name="web", image="img", secrets=(FileReference("pw", "pw"),)), stack)


def test_a_build_only_service_is_named_after_its_stack() -> None:
    assert image_name("s", ServiceSpec(name="web", build=BuildSpec(context="/ctx"))) == "s_web"
    assert image_name("s", ServiceSpec(name="web", image="nginx", build=BuildSpec(context="/ctx"))) == "nginx"
