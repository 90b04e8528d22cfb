"""The engine gateway against the real engine: every mapped field lands, state reads back,
removals are idempotent, images are pulled-or-built-or-rejected with the engine's reason."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import aiodocker
import aiohttp
import pytest
from structlog.testing import capture_logs

from orchestrator.engine import Engine
from orchestrator.engine.observe import parse_time
from orchestrator.engine.client import MAX_LOG_LINE
from orchestrator.errors import ImageUnavailable, UserError
from orchestrator.labels import LABEL_MANAGED, LABEL_STACK, spec_hash
from orchestrator.model.observed import ContainerState, SlotKey
from orchestrator.model.spec import (
    BuildSpec,
    FileObjectSpec,
    FileReference,
    Healthcheck,
    LoggingSpec,
    NetworkAttachment,
    NetworkSpec,
    PortSpec,
    Resources,
    ServiceSpec,
    StackSpec,
    Ulimit,
    VolumeSpec,
)
from tests.integration.conftest import BUSYBOX
from tests.integration.orchestrator_harness import engine_calls

pytestmark = pytest.mark.integration


async def run_task(engine: Engine, stack: StackSpec, service: ServiceSpec, files_dir: Path, slot: int = 1) -> ContainerState:
    created = await engine.create_task(stack, service, SlotKey(stack.name, service.name, slot), spec_hash(service), files_dir)
    await engine.start(created.id)
    return created


async def wait_for_state(
    engine: Engine, stack: str, container_id: str, ready: Callable[[ContainerState], bool], timeout: float = 30
) -> ContainerState:
    async with asyncio.timeout(timeout):
        while True:
            for state in await engine.list_containers(stack):
                if state.id == container_id and ready(state):
                    return state
            await asyncio.sleep(0.1)


async def read_file(docker: aiodocker.Docker, container_id: str, path: str) -> str:
    archive = await docker.containers.container(container_id).get_archive(path)
    member = archive.extractfile(archive.getmembers()[0])
    assert member is not None
    return member.read().decode()


def two_network_stack(name: str, tmp_path: Path) -> StackSpec:
    secret = tmp_path / "pw.txt"
    secret.write_text("s3cret")
    return StackSpec(
        name=name,
        services={},
        networks={"front": NetworkSpec("front", f"{name}_front"), "back": NetworkSpec("back", f"{name}_back")},
        secrets={"pw": FileObjectSpec("pw", file=str(secret))},
        configs={"conf": FileObjectSpec("conf", content="mode=test\n")},
    )


WEB = ServiceSpec(
    name="web", image=BUSYBOX,
    command=("httpd", "-f", "-p", "8080", "-h", "/www"),
    environment={"GREETING": "hi"}, labels={"team": "a"},
    ports=(PortSpec(8080, 18080),),
    networks=(NetworkAttachment("front", aliases=("www",)), NetworkAttachment("back")),
    secrets=(FileReference("pw", "pw"),), configs=(FileReference("conf", "conf"),),
    resources=Resources(cpus_limit=0.5, memory_limit=64 << 20, pids_limit=100, memory_reservation=32 << 20),
    healthcheck=Healthcheck(test=("CMD", "true"), interval=1, timeout=2, retries=2, start_period=0.5),
    stop_grace_period=3, stop_signal="SIGINT", user="1000", working_dir="/www", hostname="webhost",
    init=True, read_only=True, cap_add=("NET_ADMIN",), cap_drop=("MKNOD",),
    ulimits=(Ulimit("nofile", 1024, 2048),), sysctls={"net.core.somaxconn": "512"},
    extra_hosts=("db.local:10.1.2.3",), dns=("127.0.0.1",), tmpfs=("/tmp",),
    logging=LoggingSpec("json-file", {"max-size": "1m"}),
)  # fmt: skip


async def test_create_task_maps_every_field(engine: Engine, docker: aiodocker.Docker, stack_name: str, tmp_path: Path) -> None:
    stack = two_network_stack(stack_name, tmp_path)
    for net in stack.networks.values():
        await engine.ensure_network(stack_name, net)
    created = await run_task(engine, stack, WEB, tmp_path / "files")
    assert created.status == "created" and created.name.startswith(f"{stack_name}_web.1.")

    info = await docker.containers.container(created.id).show()
    config, host = info["Config"], info["HostConfig"]
    assert (host["NanoCpus"], host["Memory"], host["PidsLimit"], host["MemoryReservation"]) == (
        500_000_000, 64 << 20, 100, 32 << 20,
    )  # fmt: skip
    assert config["Healthcheck"] == {
        "Test": ["CMD", "true"], "Interval": 10**9, "Timeout": 2 * 10**9, "Retries": 2, "StartPeriod": 5 * 10**8,
    }  # fmt: skip
    assert "GREETING=hi" in config["Env"]
    assert config["Labels"]["team"] == "a" and config["Labels"][LABEL_STACK] == stack_name
    assert (config["StopSignal"], config["StopTimeout"], config["User"]) == ("SIGINT", 3, "1000")
    assert (config["WorkingDir"], config["Hostname"]) == ("/www", "webhost")
    assert (host["Init"], host["ReadonlyRootfs"], host["RestartPolicy"]["Name"]) == (True, True, "no")
    assert (host["CapAdd"], host["CapDrop"]) == (["NET_ADMIN"], ["MKNOD"])
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
    assert host["Sysctls"] == {"net.core.somaxconn": "512"}
    assert (host["ExtraHosts"], host["Dns"], host["Tmpfs"]) == (["db.local:10.1.2.3"], ["127.0.0.1"], {"/tmp": ""})
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m"}}
    networks = info["NetworkSettings"]["Networks"]
    assert set(networks) == {f"{stack_name}_front", f"{stack_name}_back"}
    assert {"web", "tasks.web", "www"} <= set(networks[f"{stack_name}_front"]["Aliases"])
    assert {"web", "tasks.web"} <= set(networks[f"{stack_name}_back"]["Aliases"])
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert not mounts["/run/secrets/pw"]["RW"] and not mounts["/conf"]["RW"]
    assert await read_file(docker, created.id, "/run/secrets/pw") == "s3cret"
    assert await read_file(docker, created.id, "/conf") == "mode=test\n"

    # The ingress half of the port: the target, on 127.0.0.1 only, at an ephemeral host port.
    running = await wait_for_state(engine, stack_name, created.id, lambda s: s.status == "running")
    host_port = running.ports["8080/tcp"]
    assert host_port != 18080
    assert info["HostConfig"]["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{host_port}/") as response:
        assert (response.status, await response.text()) == (200, "ok\n")
    # The ingress's one-hop route: the replica's address on its first network (sorted by name).
    back = (await docker.containers.container(created.id).show())["NetworkSettings"]["Networks"]
    assert running.address == back[f"{stack_name}_back"]["IPAddress"] != ""


async def test_aliases_resolve_on_each_network(engine: Engine, stack_name: str, tmp_path: Path) -> None:
    stack = two_network_stack(stack_name, tmp_path)
    for net in stack.networks.values():
        await engine.ensure_network(stack_name, net)
    web = ServiceSpec(name="web", image=BUSYBOX, networks=(NetworkAttachment("front"), NetworkAttachment("back")))
    await run_task(engine, stack, web, tmp_path)
    probe_script = "nslookup tasks.web && nslookup web && ping -c1 -W2 web"
    probes = [
        await run_task(
            engine, stack,
            ServiceSpec(name=f"probe_{net}", image=BUSYBOX, command=("sh", "-c", probe_script),
                        networks=(NetworkAttachment(net),)),
            tmp_path,
        )  # fmt: skip
        for net in ("front", "back")
    ]
    for probe in probes:
        done = await wait_for_state(engine, stack_name, probe.id, lambda s: s.status == "exited")
        output = "\n".join([line async for line in engine.logs(probe.id, follow=False)])
        assert done.exit_code == 0, output


async def test_list_reports_exit_code_once_inspected(engine: Engine, stack_name: str, default_stack: StackSpec, tmp_path: Path) -> None:
    quitter = await run_task(engine, default_stack, ServiceSpec(name="quit", image=BUSYBOX, command=("sh", "-c", "exit 3")), tmp_path)
    state = await wait_for_state(engine, stack_name, quitter.id, lambda s: s.status == "exited")
    assert state.exit_code == 3 and not state.oom_killed
    # Both set; for an instant exit the engine may record FinishedAt a hair before StartedAt.
    assert state.started_at is not None and state.finished_at is not None
    assert state.key == SlotKey(stack_name, "quit", 1)
    with capture_logs() as logs:  # a steady pass asks the engine nothing beyond the list
        again = await engine.list_containers(stack_name)
    assert [s for s in again if s.id == quitter.id] == [state]
    assert not [entry for entry in logs if entry["event"] == "container_inspected"]


async def test_a_crash_is_listed_from_its_die_event(
    engine: Engine, docker: aiodocker.Docker, stack_name: str, default_stack: StackSpec, tmp_path: Path
) -> None:
    """Right after `die` the engine's list still says running (and an inspect waits for its
    clean-up); the event's exit code and time are what the list reports meanwhile, and once the
    list says exited too they stand, with no inspect (issue 18)."""
    sleeper = await run_task(engine, default_stack, ServiceSpec(name="s", image=BUSYBOX, command=("sleep", "300")), tmp_path)
    running = await wait_for_state(engine, stack_name, sleeper.id, lambda s: s.status == "running")
    assert running.started_at is not None
    async with engine.events(stack=stack_name, actions=("die",), since_ns=time.time_ns()) as events:
        pid = (await docker.containers.container(sleeper.id).show())["State"]["Pid"]
        os.kill(pid, signal.SIGKILL)  # a crash: no API call tells the engine beforehand
        async with asyncio.timeout(30):
            died = await anext(events)
        listed = {s.id: s for s in await engine.list_containers(stack_name)}[sleeper.id]
    assert died.actor_id == sleeper.id
    assert (listed.status, listed.exit_code, listed.alive) == ("exited", 137, False)
    assert listed.started_at == running.started_at  # from the inspect while it ran
    assert listed.finished_at is not None and listed.finished_at >= listed.started_at
    inspects = engine_calls()["inspect"]
    while (await docker.containers.container(sleeper.id).show())["State"]["Status"] != "exited":
        await asyncio.sleep(0.05)  # (our own client: not counted)
    settled = {s.id: s for s in await engine.list_containers(stack_name)}[sleeper.id]
    assert engine_calls()["inspect"] == inspects
    assert (settled.status, settled.exit_code, settled.started_at) == ("exited", 137, running.started_at)
    engine_says = parse_time((await docker.containers.container(sleeper.id).show())["State"]["FinishedAt"])
    assert engine_says is not None and abs(settled.finished_at - engine_says) < 1.0  # type: ignore[operator]


async def test_list_reports_an_unhealthy_container(engine: Engine, stack_name: str, default_stack: StackSpec, tmp_path: Path) -> None:
    sick = ServiceSpec(
        name="sick", image=BUSYBOX, command=("sleep", "300"),
        healthcheck=Healthcheck(test=("CMD", "false"), interval=0.2, timeout=1, retries=1),
    )  # fmt: skip
    created = await run_task(engine, default_stack, sick, tmp_path)
    state = await wait_for_state(engine, stack_name, created.id, lambda s: s.health == "unhealthy")
    assert state.status == "running"


async def test_stop_and_remove_are_idempotent(engine: Engine, stack_name: str, default_stack: StackSpec, tmp_path: Path) -> None:
    created = await run_task(engine, default_stack, ServiceSpec(name="s", image=BUSYBOX, command=("sleep", "300")), tmp_path)
    await engine.stop(created.id, timeout=0)
    await engine.stop(created.id, timeout=0)  # already stopped: 304
    await engine.remove(created.id)
    await engine.remove(created.id)  # already gone: 404
    await engine.stop("0" * 64, timeout=1)
    assert await engine.list_containers(stack_name) == []


async def test_a_create_abandoned_midway_leaves_no_container(
    engine: Engine, docker: aiodocker.Docker, stack_name: str, default_stack: StackSpec, tmp_path: Path
) -> None:
    """The engine finishes a create whose caller was cancelled (a daemon shutting down, `rm`
    cancelling a slot's work): the container it makes must not stay behind. Cancelled at
    several moments so that some land while the engine is creating."""
    service = ServiceSpec(name="s", image=BUSYBOX, command=("sleep", "300"))
    label = {"label": [f"{LABEL_STACK}={stack_name}"]}
    cancelled = 0
    for slot, delay in enumerate((0.0, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08), start=1):
        creating = asyncio.create_task(
            engine.create_task(default_stack, service, SlotKey(stack_name, "s", slot), spec_hash(service), tmp_path))
        await asyncio.sleep(delay)
        creating.cancel()
        try:
            await creating
        except asyncio.CancelledError:
            cancelled += 1
        else:
            await engine.remove(creating.result().id)  # it finished before the cancel
        assert await docker.containers.list(all=True, filters=label) == [], f"left after a cancel at {delay} s"
    assert cancelled >= 2, "no cancel landed during a create: the test proved nothing"


async def test_missing_image_is_rejected_with_the_engines_reason(engine: Engine) -> None:
    # A registry on a closed loopback port: the pull fails without leaving this machine.
    service = ServiceSpec(name="app", image="127.0.0.1:1/orchestrator-test/missing:latest")
    with pytest.raises(ImageUnavailable) as caught:
        await engine.ensure_image(service)
    assert "127.0.0.1:1" in caught.value.reason
    assert caught.value.image == service.image


async def test_present_image_needs_nothing(engine: Engine) -> None:
    await engine.ensure_image(ServiceSpec(name="app", image=BUSYBOX))


async def test_build_only_service_is_built_through_the_engine(
    engine: Engine, docker: aiodocker.Docker, stack_name: str, default_stack: StackSpec, tmp_path: Path
) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {BUSYBOX}\nRUN echo built > /built\n")
    service = ServiceSpec(name="app", build=BuildSpec(context=str(tmp_path)), command=("cat", "/built"))
    image = f"{stack_name}_app"
    try:
        await engine.ensure_image(service, stack_name)
        await docker.images.inspect(image)
        created = await run_task(engine, default_stack, service, tmp_path)
        await wait_for_state(engine, stack_name, created.id, lambda s: s.status == "exited")
        assert [line async for line in engine.logs(created.id, follow=False)] == ["built"]
        await engine.remove(created.id)
    finally:
        await _remove_image(docker, image)


async def test_failed_build_is_rejected_with_the_engines_reason(engine: Engine, docker: aiodocker.Docker, stack_name: str, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {BUSYBOX}\nRUN exit 7\n")
    service = ServiceSpec(name="app", build=BuildSpec(context=str(tmp_path)))
    try:
        with pytest.raises(ImageUnavailable, match="build failed") as caught:
            await engine.ensure_image(service, stack_name)
        assert "7" in caught.value.reason
    finally:
        await _remove_image(docker, f"{stack_name}_app")


async def _remove_image(docker: aiodocker.Docker, image: str) -> None:
    try:
        await docker.images.delete(image, force=True)
    except aiodocker.DockerError as exc:
        if exc.status != 404:
            raise


async def test_networks_and_volumes_are_labelled_reused_and_removed(engine: Engine, docker: aiodocker.Docker, stack_name: str) -> None:
    net = NetworkSpec("front", f"{stack_name}_front", labels={"x": "y"}, internal=True)
    vol = VolumeSpec("data", f"{stack_name}_data")
    for _ in range(2):  # the second round finds them and changes nothing
        await engine.ensure_network(stack_name, net)
        await engine.ensure_volume(stack_name, vol)
    shown = await (await docker.networks.get(net.engine_name)).show()
    assert (shown["Driver"], shown["Internal"]) == ("bridge", True)
    assert shown["Labels"] == {"x": "y", LABEL_STACK: stack_name, LABEL_MANAGED: "true"}
    assert (await (await docker.volumes.get(vol.engine_name)).show())["Labels"][LABEL_STACK] == stack_name

    await engine.remove_stack_networks(stack_name)
    await engine.remove_stack_volumes(stack_name)
    label = {"label": [f"{LABEL_STACK}={stack_name}"]}
    assert await docker.networks.list(filters=label) == []
    assert not (await docker.volumes.list(filters=label)).get("Volumes")


async def test_missing_external_network_or_volume_is_the_users_mistake(engine: Engine, stack_name: str) -> None:
    with pytest.raises(UserError, match="external"):
        await engine.ensure_network(stack_name, NetworkSpec("ext", f"{stack_name}_nowhere", external=True))
    with pytest.raises(UserError, match="external"):
        await engine.ensure_volume(stack_name, VolumeSpec("ext", f"{stack_name}_nowhere", external=True))


async def test_logs_split_into_lines_and_honour_tail(engine: Engine, stack_name: str, default_stack: StackSpec, tmp_path: Path) -> None:
    talker = ServiceSpec(name="talk", image=BUSYBOX, command=("sh", "-c", "echo one; echo two >&2; sleep 0.2; echo three"))
    created = await run_task(engine, default_stack, talker, tmp_path)
    await wait_for_state(engine, stack_name, created.id, lambda s: s.status == "exited")
    assert sorted([line async for line in engine.logs(created.id, follow=False)]) == ["one", "three", "two"]
    assert [line async for line in engine.logs(created.id, follow=False, tail=1)] == ["three"]
    followed = [line async for line in engine.logs(created.id, follow=True)]  # ends: the container has exited
    assert len(followed) == 3




async def test_a_log_is_streamed_and_a_line_without_end_comes_in_bounded_pieces(
    engine: Engine, default_stack: StackSpec, stack_name: str, tmp_path: Path
) -> None:
    long_line = 3 * MAX_LOG_LINE + 5
    writer = ServiceSpec(name="talk", image=BUSYBOX, command=(
        "sh", "-c", f"echo first; head -c {long_line} /dev/zero | tr '\\000' x; echo; echo last"))
    created = await run_task(engine, default_stack, writer, tmp_path)
    await wait_for_state(engine, stack_name, created.id, lambda s: s.status == "exited")
    for follow in (False, True):
        lines = [line async for line in engine.logs(created.id, follow=follow)]
        assert lines[0] == "first" and lines[-1] == "last", lines[:1] + lines[-1:]
        pieces = lines[1:-1]
        assert all(len(piece) <= MAX_LOG_LINE for piece in pieces) and len(pieces) == 4
        assert "".join(pieces) == "x" * long_line
