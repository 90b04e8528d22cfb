"""orchestrator: compose-style stacks kept running on one Docker engine, with an event stream."""

__version__ = "0.1.0"
