"""The Docker engine gateway: the only package that imports aiodocker.

Everything outside it sees `Engine`, our model's ContainerState, `EngineEvent` and the errors of
orchestrator.errors (EngineError, EngineUnavailable, ImageUnavailable).
"""

from orchestrator.engine.client import Engine
from orchestrator.backend import EngineEvent
from orchestrator.engine.events import EventStream

__all__ = ["Engine", "EngineEvent", "EventStream"]
