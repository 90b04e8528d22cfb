"""One rule per kind of name, the same for the stack-file loader, the API and the CLI."""

from __future__ import annotations

import pytest

from orchestrator import names


@pytest.mark.parametrize("name", ["web", "Web", "api.v2", "a", "x_1-2", "9" * 63])
def test_service_names_that_compose_accepts_are_valid(name: str) -> None:
    assert names.is_service_name(name)


@pytest.mark.parametrize("name", ["", "-web", ".web", "web\n", "we b", "x/../y", "é", "9" * 64, None, 3])
def test_service_names_outside_the_rule_are_invalid(name: object) -> None:
    assert not names.is_service_name(name)


@pytest.mark.parametrize("name", ["shop", "t1234", "a_b-c", "0"])
def test_stack_names(name: str) -> None:
    assert names.is_stack_name(name)


@pytest.mark.parametrize("name", ["Shop", "a.b", "probe\n", "x/..", "", "_a", "a" * 64])
def test_invalid_stack_names(name: str) -> None:
    assert not names.is_stack_name(name)
