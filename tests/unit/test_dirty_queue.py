"""Stacks waiting for a pass are served in the order they were first marked (issue 18): a stack
marked again and again cannot starve another."""

from orchestrator.loop.dirty_queue import DirtyQueue


def test_a_stack_marked_during_its_own_pass_queues_behind_those_already_waiting() -> None:
    queue = DirtyQueue(["big"])
    served = [queue.pop_first(excluding=())]
    queue.add("big")  # an event of its converge marks it again during its pass...
    queue.add("small")  # ...then a small stack is deployed
    for _ in range(3):
        served.append(queue.pop_first(excluding=()))
        queue.add("big")  # and every one of big's passes is followed by more of its events
    assert served == ["big", "big", "small", "big"]


def test_marking_a_waiting_stack_again_keeps_its_place() -> None:
    queue = DirtyQueue()
    queue.update(["a", "b", "c"])
    queue.add("a")
    queue.update(["c", "d"])
    assert [queue.pop_first(excluding=()) for _ in range(len(queue))] == ["a", "b", "c", "d"]
    assert not queue


def test_a_stack_whose_pass_is_in_flight_keeps_its_place_for_after_it() -> None:
    queue = DirtyQueue(["a", "b", "c"])
    assert queue.pop_first(excluding={"a"}) == "b"
    assert queue.has_any(excluding={"a"}) and not queue.has_any(excluding={"a", "c"})
    assert queue.pop_first(excluding={"a", "c"}) is None
    assert queue.pop_first(excluding=set()) == "a"  # first once its pass has ended
    assert queue.pop_first(excluding=set()) == "c" and not queue
