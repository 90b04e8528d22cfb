"""Functions for tests to run in worker processes (orchestrator/workers.py): a worker imports
them by name, so they live in a module that imports little."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def sleep_after_touch(path: str, seconds: float) -> None:
    Path(path).touch()
    time.sleep(seconds)


def fail() -> None:
    raise ValueError("from the worker")
