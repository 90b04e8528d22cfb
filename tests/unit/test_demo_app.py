"""The demo app's settings and page, without I/O."""

from __future__ import annotations

import pytest

from app.demo_app import DISABLED, Config, render_page


def test_defaults_match_the_tutorial() -> None:
    config = Config.from_env({})
    assert (config.name, config.redis_host, config.redis_port, config.port) == ("World", "redis", 6379, 80)
    assert config.counter_key == "counter"


def test_environment_overrides() -> None:
    env = {"NAME": "Ada", "REDIS_HOST": "db", "REDIS_PORT": "6380", "REDIS_DB": "3",
           "COUNTER_KEY": "t:counter", "PORT": "8080"}
    config = Config.from_env(env)
    assert (config.name, config.redis_host, config.redis_port, config.redis_db) == ("Ada", "db", 6380, 3)
    assert (config.counter_key, config.port) == ("t:counter", 8080)


def test_malformed_number_names_the_variable() -> None:
    with pytest.raises(ValueError, match="PORT must be a whole number, not 'eighty'"):
        Config.from_env({"PORT": "eighty"})


@pytest.mark.parametrize(
    ("visits", "shown"),
    [pytest.param(7, "<b>Visits:</b> 7", id="counted"), pytest.param(None, DISABLED, id="disabled")],
)
def test_page_shows_visits_or_disabled(visits: int | None, shown: str) -> None:
    page = render_page("World", "abc123", visits)
    assert page.startswith("<h3>Hello World!</h3><b>Hostname:</b> abc123<br/>")
    assert page.endswith(shown)


def test_name_is_escaped() -> None:
    assert "Hello &lt;b&gt;!" in render_page("<b>", "h", 1)
