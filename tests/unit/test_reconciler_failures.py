"""A pass that raises (a bug, a value nobody foresaw) is retried with backoff, and its
traceback is logged once per run of failures, not every second."""

from __future__ import annotations

import time
from pathlib import Path

from structlog.testing import capture_logs

from orchestrator.model.observed import ContainerState
from orchestrator.model.spec import ServiceSpec, StackSpec
from orchestrator.daemon import build_loop
from orchestrator.settings import Settings
from orchestrator.loop.store import StackRecord, Store


class BrokenEngine:
    """Lists raise until `healed`."""

    def __init__(self) -> None:
        self.healed = False

    async def list_containers(self, stack: str | None = None) -> list[ContainerState]:
        if not self.healed:
            raise ValueError("cannot convert float NaN to integer")
        return []


async def test_a_failing_pass_backs_off_and_logs_its_traceback_once(tmp_path: Path) -> None:
    engine = BrokenEngine()
    settings = Settings.from_env({}, state_dir=str(tmp_path))
    loop = build_loop(engine, Store(tmp_path), settings, emit=lambda _e: None)  # type: ignore[arg-type]
    reconciler = loop.reconciler
    spec = StackSpec("app", {"web": ServiceSpec(name="web", image="orchestrator-test/busybox", replicas=0)})
    loop.desired.put(StackRecord(spec))
    waits = []
    with capture_logs() as logs:
        for _ in range(4):
            await reconciler.reconcile_guarded("app")
            waits.append(round(reconciler._wake_at["app"] - time.time()))
        engine.healed = True
        await reconciler.reconcile_guarded("app")
        engine.healed = False
        await reconciler.reconcile_guarded("app")
    assert waits == [1, 2, 4, 8]
    failed = [e for e in logs if e["event"] == "reconcile_failed"]
    assert [bool(e.get("exc_info")) for e in failed] == [True, False, False, False, True]
    assert failed[1]["error"] == "ValueError: cannot convert float NaN to integer"
