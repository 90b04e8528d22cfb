"""A stack's listing is kept between passes and relisted only where events said something
changed (issue 18); anything else, or too much at once, lists the whole stack."""

from __future__ import annotations

from orchestrator.loop.listing import SLOTS_PER_PASS, ListingCache, Scope
from orchestrator.model.observed import ContainerState, SlotKey


def container(cid: str, slot: int, status: str = "running", service: str = "web") -> ContainerState:
    return ContainerState(cid, f"app_{service}.{slot}", SlotKey("app", service, slot), "h", f"t{cid}", 1.0, status)  # type: ignore[arg-type]


def listed(cache: ListingCache, n: int = 1000) -> list[ContainerState]:
    scope = cache.take("app")
    assert scope.whole
    return cache.merge(scope, [container(f"c{i}", i) for i in range(1, n + 1)])


def test_a_stacks_first_pass_and_an_unslotted_mark_list_everything() -> None:
    cache = ListingCache()
    cache.touch("app", SlotKey("app", "web", 3))
    assert cache.take("app").whole  # nothing cached yet
    listed(cache)
    cache.touch("app", SlotKey("app", "web", 3))
    cache.touch("app")  # a deploy or a scale
    assert cache.take("app").whole
    assert cache.take("app").whole  # a pass nothing marked is a caller's own: everything


def test_one_death_relists_its_slot_only_and_the_view_stays_whole() -> None:
    cache = ListingCache()
    listed(cache)
    key = SlotKey("app", "web", 7)
    cache.touch("app", key)
    scope = cache.take("app")
    assert scope == Scope("app", frozenset({key}))
    view = cache.merge(scope, [container("c7", 7, "exited"), container("n7", 7, "created")])
    assert len(view) == 1001
    in_slot = sorted((c.id, c.status) for c in view if c.key == key)
    assert in_slot == [("c7", "exited"), ("n7", "created")]


def test_a_container_gone_from_its_relisted_slot_is_dropped() -> None:
    cache = ListingCache()
    listed(cache, 3)
    cache.touch("app", SlotKey("app", "web", 2))
    view = cache.merge(cache.take("app"), [])
    assert sorted(c.id for c in view) == ["c1", "c3"]


def test_many_changed_slots_list_the_whole_stack_in_one_call() -> None:
    cache = ListingCache()
    listed(cache)
    for slot in range(1, SLOTS_PER_PASS + 2):
        cache.touch("app", SlotKey("app", "web", slot))
    assert cache.take("app").whole


def test_a_reconnect_lists_every_stack_in_full_and_a_failed_pass_gives_its_slots_back() -> None:
    cache = ListingCache()
    listed(cache)
    cache.touch("app", SlotKey("app", "web", 1))
    scope = cache.take("app")
    cache.giveback(scope)
    assert cache.take("app") == scope
    cache.touch_all()
    assert cache.take("app").whole
    cache.forget("app")
    cache.touch("app", SlotKey("app", "web", 1))
    assert cache.take("app").whole
