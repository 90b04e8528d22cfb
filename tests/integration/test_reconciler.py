"""The reconciler's promises (issue 3), each proven against the real engine."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiodocker
import pytest

from orchestrator.engine import Engine
from orchestrator.labels import LABEL_STACK
from tests.integration.conftest import BUSYBOX
from tests.integration.orchestrator_harness import Running, running_orchestrator

pytestmark = pytest.mark.integration


def stack_yaml(services: str) -> str:
    return "services:\n" + textwrap.indent(textwrap.dedent(services), "  ")


def service(name: str, command: str, *, replicas: int = 1, restart: str = "", extra: str = "") -> str:
    restart_block = f"    restart_policy:\n{textwrap.indent(textwrap.dedent(restart), '      ')}" if restart else ""
    return (
        f"{name}:\n"
        f"  image: {BUSYBOX}\n"
        f"  command: [\"sh\", \"-c\", {command!r}]\n"
        f"  stop_grace_period: 1s\n"
        f"{textwrap.indent(textwrap.dedent(extra), '  ')}"
        f"  deploy:\n"
        f"    replicas: {replicas}\n"
        f"{restart_block}"
    )


async def started(orch: Running, stack: str) -> list:
    """The stack's containers that were started (tasks, not waiting standbys), in start order:
    a restart that starts a standby made earlier is timed by its start (docs/standby.md)."""
    cs = [c for c in await orch.containers(stack) if c.started_at is not None]
    return sorted(cs, key=lambda c: c.started_at)


@pytest.fixture
async def orch(tmp_path: Path, stack_name: str) -> AsyncIterator[Running]:
    async with running_orchestrator(tmp_path / "state", backoff_base=0.3, backoff_cap=2.0, healthy_run=3.0) as running:
        yield running


async def test_replicas_reached_with_swarm_names_and_aliases(orch: Running, stack_name: str, tmp_path: Path) -> None:
    await orch.deploy(stack_name, stack_yaml(service("web", "sleep 600", replicas=3)), tmp_path)
    running = await orch.wait_running(stack_name, "web", 3)
    assert [c.key.slot for c in running] == [1, 2, 3]
    assert all(c.name.startswith(f"{stack_name}_web.{c.key.slot}.") for c in running)

    async def converged() -> list:
        return [e for e in orch.events if e["type"] == "service.converged" and e["service"] == "web"]

    assert (await orch.wait_for(converged, 10))[-1]["running"] == 3


async def test_scale_up_fills_lowest_free_slots_and_down_removes_highest(
    orch: Running, stack_name: str, tmp_path: Path, docker: aiodocker.Docker
) -> None:
    await orch.deploy(stack_name, stack_yaml(service("web", "sleep 600", replicas=4)), tmp_path)
    running = await orch.wait_running(stack_name, "web", 4)
    slot2 = next(c for c in running if c.key.slot == 2)
    await orch.controller.scale(stack_name, {"web": 2})
    running = await orch.wait_running(stack_name, "web", 2)
    assert [c.key.slot for c in running] == [1, 2]
    assert slot2.id in {c.id for c in running}, "scale-down must keep the low slots' containers"
    await orch.controller.scale(stack_name, {"web": 3})
    running = await orch.wait_running(stack_name, "web", 3)
    assert [c.key.slot for c in running] == [1, 2, 3]


async def test_scale_down_stops_every_surplus_replica_at_once(stack_name: str, tmp_path: Path) -> None:
    """Stops are not held to the creation bound: with `concurrency` 1, every surplus replica gets
    its stop signal before the first one's grace period has run out (as Swarm stops them)."""
    # sleep as PID 1 ignores SIGTERM: each stop waits out its grace period, then SIGKILL.
    yaml_text = stack_yaml(
        f"web:\n  image: {BUSYBOX}\n  command: [\"sleep\", \"600\"]\n  stop_grace_period: 5s\n"
        "  deploy:\n    replicas: 3\n"
    )
    async with running_orchestrator(tmp_path / "state", concurrency=1) as orch:
        await orch.deploy(stack_name, yaml_text, tmp_path)
        await orch.wait_running(stack_name, "web", 3)
        observer = await Engine.connect()
        seen = []
        try:
            since = time.time_ns()
            async with observer.events(stack=stack_name, actions=("kill", "die"), since_ns=since) as stream:
                await orch.controller.scale(stack_name, {"web": 0})
                async with asyncio.timeout(60):
                    async for event in stream:
                        seen.append(event)
                        if event.action == "die":
                            break
        finally:
            await observer.close()
    signalled = {e.actor_id for e in seen if e.action == "kill"}
    assert len(signalled) == 3, f"before the first die, only {len(signalled)} of 3 replicas were told to stop"


async def test_on_failure_restarts_failures_not_success(orch: Running, stack_name: str, tmp_path: Path) -> None:
    yaml_text = stack_yaml(
        service("ok", "sleep 0.5; exit 0", restart="condition: on-failure\ndelay: 0s\n")
        + service("bad", "sleep 0.5; exit 1", restart="condition: on-failure\ndelay: 0s\nmax_attempts: 2\n")
    )
    await orch.deploy(stack_name, yaml_text, tmp_path)

    async def settled() -> bool:
        cs = await orch.containers(stack_name)
        bad = [c for c in cs if c.key.service == "bad"]
        return len(bad) == 3 and all(c.status == "exited" for c in cs)

    await orch.wait_for(settled, 30, "bad to fail three times (first run + 2 restarts)")
    await asyncio.sleep(1.5)
    cs = await orch.containers(stack_name)
    ok = [c for c in cs if c.key.service == "ok"]
    assert len(ok) == 1 and ok[0].exit_code == 0, "exit 0 under on-failure is complete: no restart"
    assert len([c for c in cs if c.key.service == "bad"]) == 3, "gave up after max_attempts=2"
    assert [e["exit_code"] for e in orch.task_events(stack_name, "failed")] == [1, 1, 1]


async def test_a_container_whose_start_failed_is_retried_under_its_policy(
    orch: Running, stack_name: str, tmp_path: Path
) -> None:
    # The engine sends no event for a failed start and the container stays "created": only an
    # inspect shows its error, so a daemon that trusts the list waits for it forever.
    yaml_text = stack_yaml(
        "web:\n"
        f"  image: {BUSYBOX}\n"
        "  command: [\"/no/such/command\"]\n"
        "  deploy:\n"
        "    restart_policy: {condition: on-failure, delay: 0s, max_attempts: 1}\n"
    )
    await orch.deploy(stack_name, yaml_text, tmp_path)

    async def retried_once() -> bool:
        cs = await orch.containers(stack_name)
        return len(cs) == 2 and all(c.status == "created" and c.error for c in cs)

    await orch.wait_for(retried_once, 20, "a second container after the first one's failed start")

    async def gave_up() -> bool:
        return any(e["type"] == "task.gave_up" for e in orch.events)

    await orch.wait_for(gave_up, 10, "task.gave_up")
    assert len(await orch.containers(stack_name)) == 2, "max_attempts 1: no third container"


async def test_sigkill_is_a_failure_and_is_replaced(orch: Running, stack_name: str, tmp_path: Path,
                                                     docker: aiodocker.Docker) -> None:
    await orch.deploy(stack_name, stack_yaml(service("web", "sleep 600", restart="condition: on-failure\n")), tmp_path)
    (first,) = await orch.wait_running(stack_name, "web", 1)
    await docker.containers.container(first.id).kill(signal="SIGKILL")

    async def replaced() -> bool:
        return any(c.id != first.id for c in await orch.running(stack_name, "web"))

    await orch.wait_for(replaced, 20, "a replacement container in slot 1")
    cs = await orch.containers(stack_name)
    old = next(c for c in cs if c.id == first.id)
    assert old.status == "exited" and old.exit_code == 137, "the killed container is kept as history"
    assert {c.key.slot for c in cs} == {1}


async def test_condition_none_never_restarts(orch: Running, stack_name: str, tmp_path: Path) -> None:
    await orch.deploy(stack_name, stack_yaml(service("job", "exit 3", restart="condition: none\n")), tmp_path)

    async def exited() -> bool:
        return any(c.status == "exited" for c in await orch.containers(stack_name))

    await orch.wait_for(exited, 20)
    await asyncio.sleep(2)
    assert len(await orch.containers(stack_name)) == 1


@pytest.mark.parametrize(
    ("window", "gives_up"),
    [pytest.param("", True, id="lifetime-cap"), pytest.param("window: 60s\n", True, id="window-60s")],
)
async def test_max_attempts_gives_up_like_swarm(
    orch: Running, stack_name: str, tmp_path: Path, window: str, gives_up: bool
) -> None:
    policy = f"condition: any\ndelay: 0.2s\nmax_attempts: 2\n{window}"
    await orch.deploy(stack_name, stack_yaml(service("crash", "sleep 0.3; exit 1", restart=policy)), tmp_path)

    async def three_dead() -> bool:
        cs = await orch.containers(stack_name)
        return len(cs) == 3 and all(c.status == "exited" for c in cs)

    await orch.wait_for(three_dead, 30)
    await asyncio.sleep(1.5)
    assert len(await orch.containers(stack_name)) == 3, "no fourth container after giving up"
    assert any(e["type"] == "task.gave_up" for e in orch.events)


async def test_window_lets_slow_crashes_go_on(orch: Running, stack_name: str, tmp_path: Path) -> None:
    # max_attempts 1 within 1 s, crashes every ~1.5 s: never more than one restart inside the window
    policy = "condition: any\ndelay: 0.1s\nmax_attempts: 1\nwindow: 1s\n"
    await orch.deploy(stack_name, stack_yaml(service("crash", "sleep 1.5; exit 1", restart=policy)), tmp_path)

    async def four() -> bool:
        return len(await orch.containers(stack_name)) >= 4

    await orch.wait_for(four, 30, "restarts to continue past max_attempts thanks to the window")


async def test_delay_is_honoured(orch: Running, stack_name: str, tmp_path: Path) -> None:
    policy = "condition: any\ndelay: 2s\n"
    await orch.deploy(stack_name, stack_yaml(service("crash", "sleep 0.2; exit 1", restart=policy)), tmp_path)

    async def two() -> list | None:
        cs = await started(orch, stack_name)
        return cs if len(cs) >= 2 and cs[0].finished_at else None

    first, second = (await orch.wait_for(two, 20))[:2]
    assert second.started_at - first.finished_at >= 1.9


async def test_default_backoff_is_immediate_then_grows(orch: Running, stack_name: str, tmp_path: Path) -> None:
    # no delay: first restart at once, then 0.3 s, 0.6 s, 1.2 s (backoff_base 0.3 in the fixture).
    # Timings on a shared machine only ever come out longer, so only lower bounds are asserted;
    # "at once" is read from the decisions: no restart was scheduled for the first failure.
    await orch.deploy(stack_name, stack_yaml(service("crash", "exit 1", restart="condition: any\n")), tmp_path)

    async def five() -> list | None:
        cs = await started(orch, stack_name)
        return cs if len(cs) >= 5 and all(c.finished_at for c in cs[:4]) else None

    cs = await orch.wait_for(five, 30)
    gaps = [b.started_at - a.finished_at for a, b in zip(cs, cs[1:5], strict=False)]
    assert gaps[1] >= 0.25 and gaps[2] >= 0.55 and gaps[3] >= 1.1, gaps
    scheduled = {e["container_id"] for e in orch.events if e["type"] == "task.restart_scheduled"}
    assert cs[0].id not in scheduled, "the first restart must not wait"


async def test_unhealthy_replica_is_stopped_and_replaced(orch: Running, stack_name: str, tmp_path: Path) -> None:
    health = (
        "healthcheck:\n"
        "  test: [\"CMD-SHELL\", \"test ! -f /tmp/sick\"]\n"
        "  interval: 0.5s\n  timeout: 1s\n  retries: 1\n"
    )
    await orch.deploy(
        stack_name,
        stack_yaml(service("web", "sleep 2; touch /tmp/sick; sleep 600", extra=health, restart="condition: any\n")),
        tmp_path,
    )

    async def replaced() -> bool:
        cs = await started(orch, stack_name)
        return len(cs) >= 2 and any(c.status == "running" for c in cs)

    await orch.wait_for(replaced, 40, "the unhealthy replica replaced")
    assert any(e["type"] == "task.unhealthy" for e in orch.events) or any(
        e.get("reason") == "unhealthy" for e in orch.task_events(stack_name)
    )
    failed = orch.task_events(stack_name, "failed")
    assert failed, "an unhealthy replica counts as failed"


async def test_hand_removed_container_is_replaced(orch: Running, stack_name: str, tmp_path: Path,
                                                  docker: aiodocker.Docker) -> None:
    await orch.deploy(stack_name, stack_yaml(service("web", "sleep 600", replicas=2)), tmp_path)
    running = await orch.wait_running(stack_name, "web", 2)
    await docker.containers.container(running[0].id).delete(force=True)

    async def back() -> bool:
        now = await orch.running(stack_name, "web")
        return len(now) == 2 and running[0].id not in {c.id for c in now}

    await orch.wait_for(back, 20)
    assert orch.task_events(stack_name, "removed")


async def test_foreign_container_untouched(orch: Running, stack_name: str, tmp_path: Path,
                                           docker: aiodocker.Docker) -> None:
    # A container with our stack's name pattern but without our labels (the fixture's label is
    # only there so that the test cleans it up): the daemon must never touch it.
    foreign = await docker.containers.run(
        {"Image": BUSYBOX, "Cmd": ["sleep", "600"], "Labels": {"test.owner": stack_name}},
        name=f"{stack_name}_web.1.foreign",
    )
    try:
        await orch.deploy(stack_name, stack_yaml(service("web", "sleep 600")), tmp_path)
        await orch.wait_running(stack_name, "web", 1)
        await orch.controller.remove(stack_name)
        info = await foreign.show()
        assert info["State"]["Running"]
    finally:
        await foreign.delete(force=True)


async def test_another_daemons_stack_is_neither_watched_nor_reported(
    orch: Running, stack_name: str, tmp_path: Path, docker: aiodocker.Docker
) -> None:
    """Daemons share an engine: a stack this one never deployed carries our label keys, but its
    events must not cost this daemon passes, nor appear in its task.state messages."""
    other = f"{stack_name}-other"
    foreign = await docker.containers.run(
        {"Image": BUSYBOX, "Cmd": ["sleep", "600"], "Labels": {"orchestrator.stack": other,
         "orchestrator.service": "web", "orchestrator.slot": "1", "test.owner": stack_name}},
        name=f"{other}_web.1.foreign",
    )  # fmt: skip
    try:
        await orch.deploy(stack_name, stack_yaml(service("web", "sleep 600")), tmp_path)
        (ours,) = await orch.wait_running(stack_name, "web", 1)
        await foreign.kill()
        await docker.containers.container(ours.id).kill()  # after the foreign die, in the stream
        await orch.wait_for(lambda: _async(orch.task_events(stack_name, "failed")), 30)
        await orch.wait_running(stack_name, "web", 1)
        await asyncio.sleep(0.5)
        assert not [e for e in orch.events if e.get("stack") == other]
        assert other not in orch.reconciler.observed
    finally:
        await foreign.delete(force=True)


async def _async(value: object) -> object:
    return value


async def test_missing_image_is_rejected_with_reason_others_run(orch: Running, stack_name: str, tmp_path: Path) -> None:
    yaml_text = stack_yaml(service("web", "sleep 600")) + textwrap.indent(
        "ghost:\n  image: orchestrator-test/does-not-exist:1\n", "  "
    )
    await orch.deploy(stack_name, yaml_text, tmp_path)
    await orch.wait_running(stack_name, "web", 1)

    async def rejected() -> list:
        return orch.task_events(stack_name, "rejected")

    (first, *_) = await orch.wait_for(rejected, 30)
    assert first["service"] == "ghost" and first["reason"]
    await asyncio.sleep(1.0)
    # retried with backoff, not in a tight loop
    assert len(orch.task_events(stack_name, "rejected")) <= 4


async def test_remove_stops_gracefully_and_leaves_volumes(orch: Running, stack_name: str, tmp_path: Path,
                                                          docker: aiodocker.Docker) -> None:
    yaml_text = (
        stack_yaml(service("web", "trap 'exit 0' TERM; sleep 600 & wait", replicas=2,
                           extra="volumes: [\"data:/data\"]\n"))
        + "volumes:\n  data: {}\n"
    )
    await orch.deploy(stack_name, yaml_text, tmp_path)
    await orch.wait_running(stack_name, "web", 2)
    await orch.controller.remove(stack_name)
    flt = {"label": [f"{LABEL_STACK}={stack_name}"]}
    assert await docker.containers.list(all=True, filters=flt) == []
    assert await docker.networks.list(filters=flt) == []
    volumes = (await docker.volumes.list(filters=flt)).get("Volumes") or []
    assert [v["Name"] for v in volumes] == [f"{stack_name}_data"], "named volumes stay unless asked"
    shutdown = orch.task_events(stack_name, "shutdown")
    assert [e.get("exit_code") for e in shutdown] == [0, 0], "stopped by the stop signal, not killed"
