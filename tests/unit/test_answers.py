"""`as_json` (api/routes.py): the same JSON whether an answer is built on the loop or, when big,
in a thread."""

from __future__ import annotations

import dataclasses
import json

from orchestrator.api.routes import ROWS_INLINE, as_json
from orchestrator.views import TaskView


def row(slot: int) -> TaskView:
    return TaskView("shop", "web", slot, f"t{slot}", "c" * 64, f"shop_web.{slot}.t{slot}", "busybox",
                    "running", "running", 1.5, exit_code=None, error="", health=None)


async def test_small_and_big_answers_are_the_same_json() -> None:
    for count in (1, ROWS_INLINE + 1):
        rows = [row(i) for i in range(count)]
        answer = await as_json(rows)
        assert answer.content_type == "application/json"
        assert json.loads(answer.text) == [dataclasses.asdict(r) for r in rows]


async def test_nested_views_in_a_mapping() -> None:
    answer = await as_json({"name": "shop", "summary": None, "rows": (row(1),)}, status=503, rows=10_000)
    assert answer.status == 503
    assert json.loads(answer.text) == {"name": "shop", "summary": None, "rows": [dataclasses.asdict(row(1))]}
