"""The Redis names the daemon publishes under, in one place: the channels, the stream and the
fields of its entries. Every name takes the configurable prefix (settings.prefix, default
"orchestrator"), so several daemons can share one Redis."""

from __future__ import annotations


def events_channel(prefix: str, stack: str | None = None) -> str:
    return f"{prefix}:events" if stack is None else f"{prefix}:events:{stack}"


def events_stream(prefix: str) -> str:
    return f"{prefix}:stream"


#: Fields of a stream entry: the message's seq (also its entry id, `<seq>-0`) and its JSON.
STREAM_FIELD_SEQ = "seq"
STREAM_FIELD_EVENT = "event"


def stream_entry_id(seq: int) -> str:
    """The stream entry id of message `seq`: readers resume with XRANGE from `<seq>-0`."""
    return f"{seq}-0"


def swarm_observed_key(prefix: str) -> str:
    """The Swarm watcher's last published states (swarm/observed_store.py): in Redis, so that a
    daemon Swarm moves to another manager tells nothing twice."""
    return f"{prefix}:swarm:observed"
