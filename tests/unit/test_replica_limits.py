from __future__ import annotations

import pytest

from orchestrator.errors import LimitExceeded
from orchestrator.planning.replica_limits import check_replicas


@pytest.mark.parametrize(("before", "after", "others"), [
    pytest.param({}, {"web": 10}, 0, id="at-the-limits"),
    pytest.param({"web": 50}, {"web": 40}, 0, id="shrinking-over-a-lowered-limit"),
    pytest.param({"web": 5}, {"web": 2}, 100, id="daemon-over-its-total-shrinks"),
])
def test_within_the_limits_or_not_growing(before: dict[str, int], after: dict[str, int], others: int) -> None:
    check_replicas("s", before, after, others, per_service=10, total=12)


@pytest.mark.parametrize(("before", "after", "others", "message", "path"), [
    pytest.param({}, {"web": 11}, 0, "s_web: 11 replicas is over the limit of 10 per service", "web",
                 id="per-service"),
    pytest.param({}, {"web": 10**30}, 0, "over the limit of 10 per service", "web", id="huge"),
    pytest.param({"web": 1}, {"web": 5}, 8, "the daemon would run 13 replicas in all, over the limit of 12",
                 None, id="total"),
])
def test_over_a_limit(before: dict[str, int], after: dict[str, int], others: int, message: str,
                      path: str | None) -> None:
    with pytest.raises(LimitExceeded, match=message) as raised:
        check_replicas("s", before, after, others, per_service=10, total=12)
    assert raised.value.path == path


def test_a_service_left_over_a_lowered_limit_does_not_block_the_others() -> None:
    check_replicas("s", {"web": 50}, {"web": 50, "db": 1}, 0, per_service=10, total=1000)


def test_the_path_names_the_key_of_the_request() -> None:
    with pytest.raises(LimitExceeded) as raised:
        check_replicas("s", {}, {"web": 11}, 0, per_service=10, total=100, path="services.{}.deploy.replicas")
    assert raised.value.path == "services.web.deploy.replicas"
    assert "ORCHESTRATOR_MAX_REPLICAS" in str(raised.value)
