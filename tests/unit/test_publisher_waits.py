"""Waiting on the publisher never swallows a cancellation.

On Python 3.11 `asyncio.wait_for` returns the result instead of raising when the task is
cancelled in the same turn as the awaited future completes. A reconciler pass waiting for Redis's
confirmation at the moment of SIGTERM then went on running forever and the daemon never stopped.
No Redis is needed: the publisher is never started, its confirmations are driven by hand.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from orchestrator.publishing import events
from orchestrator.publishing.publisher import Publisher
from orchestrator.publishing.seq_store import SeqStore


def idle_publisher(tmp_path: Path) -> Publisher:
    return Publisher("redis://127.0.0.1:1", "unit", SeqStore(tmp_path / "seq"))


async def test_a_cancel_that_comes_with_the_confirmation_still_cancels(tmp_path: Path) -> None:
    publisher = idle_publisher(tmp_path)
    publisher.publish(events.engine_reconnected())
    waiting = asyncio.create_task(publisher.wait_confirmed(5.0))
    await asyncio.sleep(0)  # it waits for the confirmation now
    assert not waiting.done()
    publisher._settle(1)  # Redis confirms, and SIGTERM cancels, in one turn of the loop
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_a_confirmation_ends_the_wait_and_a_missing_one_times_out(tmp_path: Path) -> None:
    publisher = idle_publisher(tmp_path)
    publisher.publish(events.engine_reconnected())
    waiting = asyncio.create_task(publisher.wait_confirmed(5.0))
    await asyncio.sleep(0)
    publisher._settle(1)
    await asyncio.wait_for(waiting, 1.0)
    publisher.publish(events.engine_reconnected())
    started = asyncio.get_running_loop().time()
    await publisher.wait_confirmed(0.05)
    assert asyncio.get_running_loop().time() - started >= 0.05


def test_the_package_never_uses_wait_for() -> None:
    """`asyncio.timeout` instead, everywhere: it never loses a cancellation (see above)."""
    package = Path(__file__).resolve().parents[2] / "orchestrator"
    users = [str(path.relative_to(package)) for path in package.rglob("*.py") if "wait_for(" in path.read_text()]
    assert users == []
