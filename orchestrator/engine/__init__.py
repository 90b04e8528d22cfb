"""The Docker engine implementation of `orchestrator.backend.Backend`: the only package that
imports aiodocker.

Everything outside it sees `Engine`, our model's ContainerState, `EngineEvent` (backend.py) and
the errors of orchestrator.errors (EngineError, EngineUnavailable, ImageUnavailable).
"""

from orchestrator.engine.client import Engine
from orchestrator.engine.connect import wait_for_engine
from orchestrator.engine.events import EventStream

__all__ = ["Engine", "EventStream", "wait_for_engine"]
