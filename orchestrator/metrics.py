"""The daemon's Prometheus metrics, in one registry that `GET /metrics` renders.

The reconciler and the publisher increment these objects; the API refreshes the replica gauges
from `Control.replica_counts` (the daemon's last look, no engine call) at scrape time, so they
are never stale after a stack is removed.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from orchestrator.views import ReplicaCount

REGISTRY = CollectorRegistry()
CONTENT_TYPE = CONTENT_TYPE_LATEST

REPLICAS_DESIRED = Gauge(
    "orchestrator_replicas_desired", "Replicas a service should run.", ["stack", "service"],
    registry=REGISTRY,
)
REPLICAS_RUNNING = Gauge(
    "orchestrator_replicas_running", "Replicas of a service that are running.", ["stack", "service"],
    registry=REGISTRY,
)
RESTARTS = Counter(
    "orchestrator_restarts", "Replacement containers started by a restart policy.",
    ["stack", "service"], registry=REGISTRY,
)
RECONCILE_PASS_SECONDS = Histogram(
    "orchestrator_reconcile_pass_seconds", "Duration of one reconcile pass of one stack.",
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
EVENTS_PUBLISHED = Counter(
    "orchestrator_events_published", "State-change events written to Redis.", registry=REGISTRY,
)
EVENTS_DROPPED = Counter(
    "orchestrator_events_dropped", "State-change events lost (queue full while Redis was down).",
    registry=REGISTRY,
)
ENGINE_CALLS = Counter(
    "orchestrator_engine_calls", "Container requests sent to the engine, by kind (list: of a stack or all, slot_list: "
    "of one slot, inspect, create, connect, start, stop, remove): what the daemon costs the engine.",
    ["call"], registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "orchestrator_http_requests", "HTTP API requests answered, by route template and status.",
    ["method", "route", "status"], registry=REGISTRY,
)


def refresh_replicas(counts: Iterable[ReplicaCount]) -> None:
    """Replace the replica gauges with the given services (removed stacks disappear)."""
    REPLICAS_DESIRED.clear()
    REPLICAS_RUNNING.clear()
    for count in counts:
        REPLICAS_DESIRED.labels(count.stack, count.service).set(count.desired)
        REPLICAS_RUNNING.labels(count.stack, count.service).set(count.running)


def render() -> bytes:
    return generate_latest(REGISTRY)
